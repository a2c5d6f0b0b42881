/**
 * Connections are not held for ever: a gRPC connection and a REST keep-alive connection with
 * nothing in flight are closed after the idle timeout, and the clients reconnect on their next call.
 */
import { connectivityState, type Client } from '@grpc/grpc-js';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 4;
let server: RunningServer;

beforeAll(async () => {
  const root = await tempRepository();
  await addVersion(root, 'm', 1, smallModel(WIDTH, 2, 8));
  server = await startServer(root, { connectionIdleMs: 300 });
});
afterAll(() => server?.close());

const ask = { model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: inputs(1, WIDTH, 1) }] };

/** Resolves when `done` holds, polling every 20 ms; fails after 10 s. */
async function until(done: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('idle connections', () => {
  it('gRPC: an idle connection gets GOAWAY, and the next call reconnects', async () => {
    const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
    try {
      await client.infer(ask);
      const channel = (client as unknown as { client: Client }).client.getChannel();
      expect(channel.getConnectivityState(false)).toBe(connectivityState.READY);
      await until(() => channel.getConnectivityState(false) !== connectivityState.READY, 'the server to close');
      expect((await client.infer(ask)).outputs[0]!.shape).toEqual([1, 2]);
    } finally {
      client.close();
    }
  });

  it('REST: an idle keep-alive connection is closed by the server', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let closed = false;
      await new Promise<void>((done, fail) => {
        const req = request({ host: '127.0.0.1', port: server.httpPort!, path: '/v2/health/live', agent }, (res) => {
          res.resume();
          res.on('end', () => done());
        });
        req.on('socket', (socket) => socket.once('close', () => (closed = true)));
        req.on('error', fail);
        req.end();
      });
      await until(() => closed, 'the server to close the idle socket');
    } finally {
      agent.destroy();
    }
  });
});
