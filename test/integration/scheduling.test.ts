/**
 * Scheduling through the real server: max_queue_size rejects, the per-request timeout parameter,
 * and a client that goes away (cancels) has its queued request dropped, each counted by reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { GrpcInferenceClient, type InferenceServerError, dense, initializers, sequential } from '../../src/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 1024;
const ROWS = 64;
let server: RunningServer;
let client: GrpcInferenceClient;

beforeAll(async () => {
  // Slow enough per 64-row request (≈ 0.8 GFLOP, milliseconds on one thread) that a queue forms behind one worker.
  const model = sequential({
    layers: [
      dense({
        units: 2048,
        activation: 'relu',
        inputShape: [WIDTH],
        kernelInitializer: initializers.glorotUniform({ seed: 1 }),
      }),
      dense({ units: 2048, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  const root = await tempRepository();
  await addVersion(root, 'slow', 1, model, {
    max_batch_size: ROWS,
    dynamic_batching: { default_queue_policy: { max_queue_size: 4, allow_timeout_override: true } },
  });
  server = await startServer(root, { workers: 1 });
  client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const x = inputs(ROWS, WIDTH, 3);
const ask = (extra: object = {}) =>
  client.infer({
    model: 'slow',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [ROWS, WIDTH], data: x }],
    ...extra,
  });
/** Waits until the server holds at least n requests of the model (queued or running). */
async function until(n: number): Promise<void> {
  const pending = () => server.dataplane.repository.servedVersions('slow')[0]!.batcher.pending;
  while (pending() < n) await new Promise((r) => setTimeout(r, 1));
}
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: InferenceServerError) => `${e.status}:${e.message}`,
  );

describe('scheduling', () => {
  it('rejects requests beyond max_queue_size with UNAVAILABLE, and serves the rest', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, () => outcome(ask())));
    const rejected = results.filter((r) => r !== 'ok');
    expect(results.filter((r) => r === 'ok').length).toBeGreaterThanOrEqual(5);
    expect(rejected.length).toBeGreaterThan(0);
    for (const r of rejected) expect(r).toBe(`${status.UNAVAILABLE}:Exceeds maximum queue size (4)`);
  });

  it('times a queued request out by its timeout parameter (µs)', async () => {
    const busy = Array.from({ length: 3 }, () => outcome(ask()));
    await until(3); // one running, two queued
    const late = await outcome(ask({ parameters: { timeout: 1 } }));
    expect(late).toMatch(new RegExp(`^${status.UNAVAILABLE}:Request timeout expired`));
    expect(await Promise.all(busy)).toEqual(['ok', 'ok', 'ok']);
  });

  it('drops a queued request whose client gave up, and counts it as CANCELED', async () => {
    const busy = Array.from({ length: 3 }, () => outcome(ask()));
    await until(3); // one running, two queued
    const controller = new AbortController();
    const gone = outcome(ask({ signal: controller.signal }));
    await until(4); // ours is queued behind them
    controller.abort();
    expect(await gone).toMatch(new RegExp(`^${status.CANCELLED}:`));
    expect(await Promise.all(busy)).toEqual(['ok', 'ok', 'ok']);
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^nv_inference_request_failure\{model="slow",version="1",reason="CANCELED"\} 1$/m);
    expect(text).toMatch(/^nv_inference_request_failure\{model="slow",version="1",reason="REJECTED"\} [1-9]\d*$/m);
  });
});
