/**
 * DynamicBatcher against a controllable executor: batch formation (max, preferred, delay),
 * queue limits, timeouts, priorities, cancellation, draining, and inline placement.
 */
import { describe, expect, it, vi } from 'vitest';
import { DynamicBatcher, type Execution, type Executor } from '../../src/serving/batcher.js';
import { testPolicy } from '../helpers.js';
import { Cancellation } from '../../src/serving/cancellation.js';
import { type MaasError } from '../../src/core/errors.js';

const policy = testPolicy;

/** An executor whose executions finish when the test says; y = 10·x + row index within the batch. */
function gatedExecutor() {
  const calls: { rows: number; x: number[]; release: () => void }[] = [];
  const execute: Executor = (x, rows) =>
    new Promise((resolve) => {
      const xs = Array.from(x);
      calls.push({ rows, x: xs, release: () => resolve({ y: Float32Array.from(xs, (v) => v * 10), computeNs: 1000 }) });
    });
  return { calls, execute };
}

const one = (v: number) => Float32Array.of(v);
const tick = () => new Promise((r) => setImmediate(r));

describe('DynamicBatcher', () => {
  it('batches what queues while the executor is busy, up to max_batch_size, and routes each answer back', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(policy({ maxBatchSize: 4 }), 1, 1, 1, execute);
    const first = b.submit(one(1), 1);
    const rest = [2, 3, 4, 5, 6, 7].map((v) => b.submit(one(v), 1));
    expect(calls.map((c) => c.rows)).toEqual([1]);
    calls[0]!.release();
    expect((await first).y[0]).toBe(10);
    await tick();
    expect(calls.map((c) => c.x)).toEqual([[1], [2, 3, 4, 5]]);
    calls[1]!.release();
    await tick();
    calls[2]!.release();
    const ys = await Promise.all(rest);
    expect(ys.map((r) => r.y[0])).toEqual([20, 30, 40, 50, 60, 70]);
    expect(ys.map((r) => r.batchRows)).toEqual([4, 4, 4, 4, 2, 2]);
  });

  it('runs one request per execution when dynamic batching is off', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(policy({ dynamic: false }), 1, 1, 1, execute);
    const all = [1, 2, 3].map((v) => b.submit(one(v), 1));
    for (let i = 0; i < 3; i++) {
      await tick();
      calls[i]!.release();
    }
    await Promise.all(all);
    expect(calls.map((c) => c.rows)).toEqual([1, 1, 1]);
  });

  it('waits up to max_queue_delay for a preferred batch size', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(policy({ preferredBatchSizes: [3], maxQueueDelayUs: 200_000 }), 1, 1, 2, execute);
    const a = b.submit(one(1), 1);
    await tick();
    expect(calls.length).toBe(0); // waiting for more
    const rest = [b.submit(one(2), 1), b.submit(one(3), 1)];
    expect(calls.map((c) => c.rows)).toEqual([3]); // preferred size reached: sent at once
    calls[0]!.release();
    await Promise.all([a, ...rest]);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const late = b.submit(one(4), 1);
      vi.advanceTimersByTime(199);
      expect(calls.length).toBe(1); // still waiting for a preferred batch
      vi.advanceTimersByTime(2);
      expect(calls.map((c) => c.rows)).toEqual([3, 1]); // the delay expired: the partial batch goes
      calls[1]!.release();
      expect((await late).y[0]).toBe(40);
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects beyond max_queue_size with a coded error', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(policy({ maxQueueSize: 2, maxBatchSize: 1 }), 1, 1, 1, execute);
    const running = b.submit(one(1), 1);
    const queued = [b.submit(one(2), 1), b.submit(one(3), 1)];
    await expect(b.submit(one(4), 1)).rejects.toMatchObject({ code: 'MAAS_ERR_QUEUE_FULL', kind: 'Unavailable' });
    calls[0]!.release();
    await running;
    await tick();
    calls[1]!.release();
    await tick();
    calls[2]!.release();
    await Promise.all(queued);
  });

  it('rejects once the queued inputs pass maxQueueBytes, counting only queued requests', async () => {
    const { calls, execute } = gatedExecutor();
    // Each request is 4 floats (16 bytes); the queue holds 40 bytes: two requests, not three.
    const b = new DynamicBatcher(policy({ maxBatchSize: 4, maxQueueBytes: 40 }), 4, 4, 1, execute);
    const four = (v: number) => new Float32Array(4).fill(v);
    const running = b.submit(four(1), 1); // dispatched at once: no longer queued
    await tick();
    const queued = [b.submit(four(2), 1), b.submit(four(3), 1)];
    await expect(b.submit(four(4), 1)).rejects.toMatchObject({
      code: 'MAAS_ERR_QUEUE_FULL',
      message: 'Exceeds maximum queue size (40 bytes of queued inputs)',
    });
    calls[0]!.release();
    await running;
    await tick();
    calls[1]!.release(); // takes both queued requests as one batch of 2 rows
    await Promise.all(queued);
    // The queue is empty again: a request larger than the bound still fits an empty queue.
    const big = b.submit(new Float32Array(16), 4);
    await tick();
    calls[2]!.release();
    await big;
  });

  it('times a queued request out, and honours a per-request timeout only when overrides are allowed', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(policy({ maxBatchSize: 1, defaultTimeoutUs: 0 }), 1, 1, 1, execute);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const running = b.submit(one(1), 1);
      let error: unknown = null;
      b.submit(one(2), 1, { timeoutUs: 20_000 }).catch((e: MaasError) => (error = e));
      await vi.advanceTimersByTimeAsync(19);
      expect(error).toBeNull();
      await vi.advanceTimersByTimeAsync(2);
      expect(error).toMatchObject({ code: 'MAAS_ERR_REQUEST_TIMEOUT' });
      const strict = new DynamicBatcher(
        policy({ maxBatchSize: 1, allowTimeoutOverride: false }),
        1,
        1,
        1,
        gatedExecutor().execute,
      );
      strict.submit(one(1), 1).catch(() => {});
      let settled = false;
      strict.submit(one(2), 1, { timeoutUs: 1000 }).then(
        () => (settled = true),
        () => (settled = true),
      );
      await vi.advanceTimersByTimeAsync(60_000);
      expect(settled).toBe(false); // the override is ignored and the default is no timeout
      calls[0]!.release();
      await running;
    } finally {
      vi.useRealTimers();
    }
  });

  it('serves the highest priority level first', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(
      policy({ maxBatchSize: 1, priorityLevels: 2, defaultPriorityLevel: 2 }),
      1,
      1,
      1,
      execute,
    );
    const order: number[] = [];
    const all = [
      b.submit(one(1), 1).then(() => order.push(1)),
      b.submit(one(2), 1).then(() => order.push(2)),
      b.submit(one(3), 1, { priority: 1 }).then(() => order.push(3)),
    ];
    for (let i = 0; i < 3; i++) {
      await tick();
      calls[i]!.release();
      await tick();
    }
    await Promise.all(all);
    expect(order).toEqual([1, 3, 2]);
    expect(() => b.submit(one(4), 1, { priority: 3 })).toThrow(/priority in \[0, 2\]/);
  });

  it('drops a request whose client went away before it ran, and drains', async () => {
    const { calls, execute } = gatedExecutor();
    const b = new DynamicBatcher(policy({ maxBatchSize: 1 }), 1, 1, 1, execute);
    const running = b.submit(one(1), 1);
    const cancellation = new Cancellation();
    const gone = b.submit(one(2), 1, { cancellation });
    cancellation.abort();
    await expect(gone).rejects.toMatchObject({ code: 'MAAS_ERR_REQUEST_CANCELLED', kind: 'Cancelled' });
    let drained = false;
    const waiting = b.drained().then(() => (drained = true));
    await tick();
    expect(drained).toBe(false);
    calls[0]!.release();
    await running;
    await waiting;
    expect(calls.length).toBe(1); // the cancelled request never ran
  });

  it('fails every request of a batch whose execution failed, and keeps going', async () => {
    let fail = true;
    const b = new DynamicBatcher(policy(), 1, 1, 1, async (x) => {
      if (fail) throw new Error('native exploded');
      return { y: x.map((v) => v + 1), computeNs: 1 };
    });
    await expect(b.submit(one(1), 1)).rejects.toMatchObject({ code: 'MAAS_ERR_NATIVE_INTERNAL' });
    fail = false;
    expect((await b.submit(one(1), 1)).y[0]).toBe(2);
  });

  describe('inline placement', () => {
    /** An inline runner that records its batches; y = 100·x. */
    function inlineRunner(maxRows: number, fail = false) {
      const batches: number[][] = [];
      const run = (x: Float32Array, rows: number) => {
        if (fail) throw new Error('native fault');
        batches.push(Array.from(x.subarray(0, rows)));
        return { y: Float32Array.from(x.subarray(0, rows), (v) => v * 100), computeNs: 5 };
      };
      return { batches, placement: { maxRows, run } };
    }

    it('runs batches up to maxRows on this thread, without a worker, and larger ones in the pool', async () => {
      const { calls, execute } = gatedExecutor();
      const executions: Execution[] = [];
      const b = new DynamicBatcher(policy({ maxBatchSize: 8 }), 1, 1, 1, execute, (e) => executions.push(e));
      const inline = inlineRunner(2);
      b.placeInline(inline.placement);
      const small = await b.submit(Float32Array.of(1, 2), 2);
      expect(small.y).toEqual(Float32Array.of(100, 200));
      expect(inline.batches).toEqual([[1, 2]]);
      expect(calls.length).toBe(0);
      const large = b.submit(Float32Array.of(3, 4, 5), 3);
      expect(calls.map((c) => c.rows)).toEqual([3]);
      calls[0]!.release();
      expect((await large).y).toEqual(Float32Array.of(30, 40, 50));
      expect(executions.map((e) => [e.placement, e.rows])).toEqual([
        ['inline', 2],
        ['pool', 3],
      ]);
      await tick();
      expect(b.pending).toBe(0);
    });

    it('runs inline even while every worker is busy, and keeps batching: a delayed batch runs inline whole', async () => {
      const { calls, execute } = gatedExecutor();
      const b = new DynamicBatcher(policy({ maxBatchSize: 8, maxQueueDelayUs: 50_000 }), 1, 1, 1, execute);
      const inline = inlineRunner(4);
      b.placeInline(inline.placement);
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
      try {
        const waiting = [1, 2, 3].map((v) => b.submit(one(v), 1));
        expect(inline.batches).toEqual([]); // waiting out the queue delay for more rows
        vi.advanceTimersByTime(51);
        expect(inline.batches).toEqual([[1, 2, 3]]);
        expect((await Promise.all(waiting)).map((r) => [r.y[0], r.batchRows])).toEqual([
          [100, 3],
          [200, 3],
          [300, 3],
        ]);
      } finally {
        vi.useRealTimers();
      }
      expect(calls.length).toBe(0);
    });

    it('fails every request of an inline batch whose run throws, with a coded error, and goes on', async () => {
      const { execute } = gatedExecutor();
      const b = new DynamicBatcher(policy({ maxBatchSize: 8 }), 1, 1, 1, execute);
      b.placeInline(inlineRunner(8, true).placement);
      const error = (await b.submit(one(1), 1).catch((e: unknown) => e)) as MaasError;
      expect(error.code).toBe('MAAS_ERR_NATIVE_INTERNAL');
      expect(error.message).toMatch(/native fault/);
      b.placeInline(inlineRunner(8).placement);
      expect((await b.submit(one(2), 1)).y[0]).toBe(200);
      expect(b.pending).toBe(0);
    });

    it('watches a client only while its request waits: an inline run never subscribes', async () => {
      const { calls, execute } = gatedExecutor();
      const b = new DynamicBatcher(policy({ maxBatchSize: 1, defaultTimeoutUs: 60_000_000 }), 1, 1, 1, execute);
      b.placeInline(inlineRunner(1).placement);
      let watched = 0;
      const watching = (gone: boolean) =>
        new Cancellation((abort) => {
          watched++;
          if (gone) abort(); // the client left before anyone listened
        });
      expect((await b.submit(one(1), 1, { cancellation: watching(false) })).y[0]).toBe(100);
      expect(watched).toBe(0);
      b.placeInline(null);
      const running = b.submit(one(2), 1, { cancellation: watching(false) });
      expect(watched).toBe(0); // handed to the worker at once
      const gone = b.submit(one(3), 1, { cancellation: watching(true) });
      expect(watched).toBe(1);
      await expect(gone).rejects.toMatchObject({ code: 'MAAS_ERR_REQUEST_CANCELLED' });
      calls[0]!.release();
      expect((await running).y[0]).toBe(20);
      expect(calls.length).toBe(1);
      await tick();
      expect(b.pending).toBe(0);
    });

    it('gathers raw bytes into a reused input batch after batch, and a larger batch into its own', async () => {
      const { execute } = gatedExecutor();
      const b = new DynamicBatcher(policy({ maxBatchSize: 512 }), 2, 2, 1, execute);
      const seen: Float32Array[] = [];
      b.placeInline({
        maxRows: 512,
        run: (x, rows) => {
          seen.push(x);
          return { y: x.slice(0, rows * 2).map((v) => v + 1), computeNs: 1 };
        },
      });
      // Raw little-endian bytes at an odd offset, as a received message holds them.
      const rawRows = (values: number[]) => {
        const bytes = new Uint8Array(values.length * 4 + 1);
        new DataView(bytes.buffer).setFloat32(1, 0, true);
        values.forEach((v, i) => new DataView(bytes.buffer).setFloat32(1 + 4 * i, v, true));
        return bytes.subarray(1);
      };
      expect(Array.from((await b.submit(rawRows([1, 2]), 1)).y)).toEqual([2, 3]);
      expect(Array.from((await b.submit(rawRows([5, 6, 7, 8]), 2)).y)).toEqual([6, 7, 8, 9]);
      expect(seen[1]!.buffer).toBe(seen[0]!.buffer);
      const big = Array.from({ length: 600 }, (_, i) => i);
      expect(Array.from((await b.submit(rawRows(big), 300)).y)).toEqual(big.map((v) => v + 1));
      expect(seen[2]!.buffer).not.toBe(seen[0]!.buffer);
      expect(Array.from((await b.submit(rawRows([9, 10]), 1)).y)).toEqual([10, 11]);
    });

    it('maxRows 0 or null sends everything to the pool', async () => {
      const { calls, execute } = gatedExecutor();
      const b = new DynamicBatcher(policy({ maxBatchSize: 8 }), 1, 1, 1, execute);
      const inline = inlineRunner(0);
      b.placeInline(inline.placement);
      const answer = b.submit(one(1), 1);
      expect(calls.length).toBe(1);
      calls[0]!.release();
      await answer;
      b.placeInline(null);
      const again = b.submit(one(2), 1);
      await tick();
      calls[1]!.release();
      await again;
      expect(inline.batches).toEqual([]);
    });
  });
});
