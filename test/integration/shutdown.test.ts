/**
 * Shutdown: close() answers what is in flight, then, past its grace period, cancels an idle
 * ModelStreamInfer stream and drops a client that never finishes its upload, instead of waiting
 * for them forever.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/index.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 6;

describe('close()', () => {
  it('ends an idle stream and a stalled upload after the grace period', { timeout: 30_000 }, async () => {
    const root = await tempRepository();
    const model = smallModel(WIDTH, 2, 4);
    await addVersion(root, 'm', 1, model);
    const server = await startServer(root, { shutdownGraceMs: 300 });
    const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
    try {
      // A stream that answered once and then stays open, idle.
      const stream = client.openStream();
      const x = inputs(1, WIDTH, 2);
      const answer = await stream.send({
        model: 'm',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x }],
      });
      expect(Array.from(answer.outputs[0]!.data as Float32Array)).toEqual(Array.from(model.predict(x).values));
      // An upload that declares 1000 bytes and sends 10.
      const upload = request({
        host: '127.0.0.1',
        port: server.httpPort!,
        method: 'POST',
        path: '/v2/models/m/infer',
        headers: { 'content-type': 'application/json', 'content-length': '1000' },
      });
      const uploadEnded = new Promise<string>((done) => {
        upload.on('error', (e) => done(`error: ${e.message}`));
        upload.on('response', (r) => done(`status ${r.statusCode}`));
      });
      upload.write('{"inputs":');
      await new Promise((r) => setTimeout(r, 50));

      // Without the grace period close() never resolves and the test runs into its deadline.
      await server.close();
      expect(await uploadEnded).toMatch(/^error: /);
      // The stream was cancelled by the server: a request on it fails instead of hanging.
      await expect(
        stream.send({ model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x }] }),
      ).rejects.toThrow();
    } finally {
      client.close();
    }
  });

  it('returns without waiting for the grace period when nothing is open', { timeout: 30_000 }, async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 2, 4));
    const server = await startServer(root, { shutdownGraceMs: 600_000 });
    await server.close(); // within the test's 30 s deadline, far inside the grace period
  });
});
