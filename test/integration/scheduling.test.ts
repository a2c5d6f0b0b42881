/**
 * Scheduling through the real server: max_queue_size rejects, the per-request timeout parameter,
 * and a client that goes away (cancels) has its queued request dropped, each counted by reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { GrpcInferenceClient, type InferenceServerError, dense, initializers, sequential } from '../../src/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import type { Executor } from '../../src/serving/batcher.js';
import { addVersion, inputs, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 64;
const ROWS = 64;
let server: RunningServer;
let client: GrpcInferenceClient;

beforeAll(async () => {
  const model = sequential({
    layers: [
      dense({
        units: 128,
        activation: 'relu',
        inputShape: [WIDTH],
        kernelInitializer: initializers.glorotUniform({ seed: 1 }),
      }),
      dense({ units: 128, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  const root = await tempRepository();
  await addVersion(root, 'slow', 1, model, {
    max_batch_size: ROWS,
    dynamic_batching: { default_queue_policy: { max_queue_size: 4, allow_timeout_override: true } },
    // The queue forms in front of the pool's one worker: a batch this small would otherwise run inline.
    parameters: { placement: { string_value: 'pool' } },
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
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: InferenceServerError) => `${e.status}:${e.message}`,
  );

const batcher = () => server.dataplane.repository.servedVersions('slow')[0]!.batcher;

/** Polls `condition` every millisecond; fails with `what` after 10 s instead of hanging the suite. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * Holds the model's executions until release(): the one worker's execution cannot finish, so the
 * requests behind it stay queued however fast the machine is. The batcher's executor is private;
 * the test wraps it, as the batcher's unit tests hold theirs.
 */
function holdExecutions(): { running: () => number; release: () => void } {
  const target = batcher() as unknown as { execute: Executor };
  const inner = target.execute;
  let running = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  target.execute = async (rows, count) => {
    running++;
    await gate;
    return inner(rows, count);
  };
  return {
    running: () => running,
    release: () => {
      target.execute = inner;
      open();
    },
  };
}

/** The value of one failure-reason counter of model 'slow' on /metrics. */
async function failures(reason: 'REJECTED' | 'CANCELED'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  const line = new RegExp(
    `^nv_inference_request_failure\\{model="slow",version="1",reason="${reason}"\\} (\\d+)$`,
    'm',
  );
  return Number(line.exec(text)?.[1] ?? 0);
}

describe('scheduling', () => {
  it('rejects requests beyond max_queue_size with UNAVAILABLE, and serves the rest', async () => {
    const rejectedBefore = await failures('REJECTED');
    const hold = holdExecutions();
    try {
      const first = outcome(ask());
      await until(() => hold.running() === 1, 'the first execution to start');
      const queued = Array.from({ length: 4 }, () => outcome(ask()));
      await until(() => batcher().pending === 5, 'four queued requests');
      // The queue is full: every further request is refused at once, while the worker is still held.
      const refused = await Promise.all(Array.from({ length: 6 }, () => outcome(ask())));
      expect(refused).toEqual(Array(6).fill(`${status.UNAVAILABLE}:Exceeds maximum queue size (4)`));
      hold.release();
      expect(await Promise.all([first, ...queued])).toEqual(Array(5).fill('ok'));
      expect((await failures('REJECTED')) - rejectedBefore).toBe(6);
    } finally {
      hold.release();
    }
  });

  it('times a queued request out by its timeout parameter (µs)', async () => {
    const hold = holdExecutions();
    try {
      const busy = [outcome(ask())];
      await until(() => hold.running() === 1, 'the first execution to start');
      busy.push(outcome(ask()), outcome(ask()));
      await until(() => batcher().pending === 3, 'two queued requests');
      const late = await outcome(ask({ parameters: { timeout: 1 } }));
      expect(late).toMatch(new RegExp(`^${status.UNAVAILABLE}:Request timeout expired`));
      hold.release();
      expect(await Promise.all(busy)).toEqual(['ok', 'ok', 'ok']);
    } finally {
      hold.release();
    }
  });

  it('drops a queued request whose client gave up, and counts it as CANCELED', async () => {
    const canceledBefore = await failures('CANCELED');
    const hold = holdExecutions();
    try {
      const busy = [outcome(ask())];
      await until(() => hold.running() === 1, 'the first execution to start');
      busy.push(outcome(ask()), outcome(ask()));
      await until(() => batcher().pending === 3, 'two queued requests');
      const controller = new AbortController();
      const gone = outcome(ask({ signal: controller.signal }));
      await until(() => batcher().pending === 4, 'our request to be queued');
      controller.abort();
      expect(await gone).toMatch(new RegExp(`^${status.CANCELLED}:`));
      await until(() => batcher().pending === 3, 'the cancelled request to leave the queue');
      hold.release();
      expect(await Promise.all(busy)).toEqual(['ok', 'ok', 'ok']);
      expect((await failures('CANCELED')) - canceledBefore).toBe(1);
    } finally {
      hold.release();
    }
  });
});
