/**
 * A promotion under load: while 8 closed-loop clients infer without a pause, publishVersion writes
 * a new version into a polled repository; the server switches to it, and not one request fails.
 */
import { describe, expect, it } from 'vitest';
import { HttpInferenceClient } from '../../src/client/index.js';
import { publishVersion } from '../../src/lifecycle/publish.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const D = 6;
const CLIENTS = 8;

describe('promotion under load', () => {
  it('switches 8 closed-loop clients to the published version without a failed request', async () => {
    const root = await tempRepository();
    const before = smallModel(D, 2, 1);
    const after = smallModel(D, 2, 2);
    await addVersion(root, 'm', 1, before, { max_batch_size: 16 });
    const server = await startServer(root, { modelControlMode: 'poll', repositoryPollSeconds: 0.2 });
    try {
      const client = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
      const x = inputs(1, D, 3);
      const want = { '1': Array.from(before.predict(x).values), '2': Array.from(after.predict(x).values) };
      const seen = { '1': 0, '2': 0 } as Record<string, number>;
      const failures: unknown[] = [];
      let stop = false;
      const loop = async () => {
        while (!stop) {
          try {
            const r = await client.infer({
              model: 'm',
              inputs: [{ name: 'input', datatype: 'FP32', shape: [1, D], data: x }],
            });
            seen[r.version] = (seen[r.version] ?? 0) + 1;
            // Each answer is the whole of one version: its outputs, not a mix.
            expect(Array.from(r.outputs[0]!.data as ArrayLike<number>)).toEqual(want[r.version as '1' | '2']);
          } catch (error) {
            failures.push(error);
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, loop);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await publishVersion(root, 'm', after, { source: 'test', parent: 1 })).toBe(2);
      // Until version 2 has answered for a while, then stop.
      const deadline = Date.now() + 20_000;
      while (seen['2']! < 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      stop = true;
      await Promise.all(clients);
      expect(failures).toEqual([]);
      expect(seen['1']).toBeGreaterThan(0);
      expect(seen['2']).toBeGreaterThanOrEqual(200);
    } finally {
      await server.close();
    }
  }, 40_000);
});
