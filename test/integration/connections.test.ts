/**
 * Connections are not held for ever: a gRPC connection and a REST connection (kept alive, or never
 * used) with nothing in flight are closed after the idle timeout, and the clients reconnect on their
 * next call; a request that takes longer than the idle time is still answered.
 */
import { connectivityState, type Client } from '@grpc/grpc-js';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 4;
let server: RunningServer;

beforeAll(async () => {
  const root = await tempRepository();
  await addVersion(root, 'm', 1, smallModel(WIDTH, 2, 8));
  // A request waits a second in its queue: longer than the idle time, with nothing on the wire.
  await addVersion(root, 'slow', 1, smallModel(WIDTH, 2, 9), {
    max_batch_size: 8,
    dynamic_batching: { max_queue_delay_microseconds: 1_000_000 },
  });
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

  it('REST: a connection that never sends a request is closed after the idle time too', async () => {
    const socket = connect(server.httpPort!, '127.0.0.1');
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    // Before: node closed it only at headersTimeout (60 s), checked every 30 s.
    await until(() => closed, 'the server to close a connection that never asked anything');
  });

  it('REST: a request that runs longer than the idle time is answered, not cut off', async () => {
    const response = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/slow/infer`, {
      method: 'POST',
      body: JSON.stringify({
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: Array.from(inputs(1, WIDTH, 2)) }],
      }),
    });
    expect(response.status).toBe(200);
  });
});

describe('connection max age', () => {
  it('REST: a kept-alive connection past its age is told to close after its next answer; gRPC reconnects', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 2, 8));
    const aged = await startServer(root, { connectionMaxAgeMs: 300 });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const client = new GrpcInferenceClient(`127.0.0.1:${aged.grpcPort}`);
    const get = () =>
      new Promise<{ connection: string | undefined; socket: object }>((done, fail) => {
        const req = request({ host: '127.0.0.1', port: aged.httpPort!, path: '/v2/health/live', agent }, (res) => {
          res.resume();
          res.on('end', () => done({ connection: res.headers.connection, socket: req.socket! }));
        });
        req.on('error', fail);
        req.end();
      });
    try {
      const young = await get();
      expect(young.connection).toBe('keep-alive');
      await client.infer(ask);
      await new Promise((r) => setTimeout(r, 400)); // past the age (not a timing assertion: any longer wait passes too)
      const old = await get();
      expect(old.socket).toBe(young.socket); // the same connection, now past its age
      expect(old.connection).toBe('close');
      expect((await get()).socket).not.toBe(young.socket); // the next request needs a new one
      expect((await client.infer(ask)).outputs[0]!.shape).toEqual([1, 2]);
    } finally {
      client.close();
      agent.destroy();
      await aged.close();
    }
  });
});
