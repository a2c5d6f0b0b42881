/**
 * WorkerShares through real batchers over gated executors: instance counts cap a version's
 * executions, a lone version may use every worker, and a waiting version gets the next free
 * worker and keeps a fair share while a slow one has work.
 */
import { describe, expect, it } from 'vitest';
import { DynamicBatcher, type Executor } from '../../src/serving/batcher.js';
import { testPolicy } from '../helpers.js';
import { WorkerShares } from '../../src/serving/worker-shares.js';

const policy = testPolicy({ maxBatchSize: 1, dynamic: false });

/** An executor whose executions finish when the test releases them, oldest first. */
function gated() {
  const running: (() => void)[] = [];
  const execute: Executor = (x) =>
    new Promise((resolve) => running.push(() => resolve({ y: Float32Array.from(x), computeNs: 1 })));
  return { running, execute, finishOne: () => running.shift()!() };
}

const tick = () => new Promise((r) => setImmediate(r));

function batcherOn(shares: WorkerShares, instances: number) {
  const g = gated();
  const batcher = new DynamicBatcher(policy, 1, 1, { shares, instances }, g.execute);
  const submit = (n: number) => Array.from({ length: n }, (_, i) => batcher.submit(Float32Array.of(i), 1));
  return { ...g, batcher, submit };
}

describe('WorkerShares', () => {
  it('lets a lone version use every worker, and no more than its instance count', async () => {
    const shares = new WorkerShares(4);
    const all = batcherOn(shares, 4);
    const capped = batcherOn(new WorkerShares(4), 2);
    void all.submit(10);
    void capped.submit(10);
    await tick();
    expect(all.running.length).toBe(4);
    expect(capped.running.length).toBe(2);
  });

  it('gives a waiting version the next free worker, then holds the slow one to its share', async () => {
    const shares = new WorkerShares(2, { activeWindowMs: 50 });
    const slow = batcherOn(shares, 2);
    const fast = batcherOn(shares, 2);
    void slow.submit(20);
    await tick();
    expect(slow.running.length).toBe(2); // alone: both workers
    const answers = fast.submit(5);
    await tick();
    expect(fast.running.length).toBe(0); // no pre-emption: it waits for the first slow execution
    slow.finishOne();
    await tick();
    expect([slow.running.length, fast.running.length]).toEqual([1, 1]);
    // From here the fast model always has its worker: each of its requests runs as soon as the previous one ends.
    for (let i = 0; i < 4; i++) {
      fast.finishOne();
      await tick();
      expect([slow.running.length, fast.running.length]).toEqual([1, 1]);
    }
    // The fast model's last request ends: its worker stays reserved while it is recently active
    // (its next request would find it free), then the slow one takes it.
    fast.finishOne();
    await tick();
    expect([slow.running.length, fast.running.length]).toEqual([1, 0]);
    expect(await Promise.all(answers)).toHaveLength(5);
    while (slow.running.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(fast.running.length).toBe(0);
  });

  it('shares three ways on two workers without leaving a worker idle', async () => {
    const shares = new WorkerShares(2);
    const [a, b, c] = [batcherOn(shares, 2), batcherOn(shares, 2), batcherOn(shares, 2)];
    void a.submit(10);
    await tick();
    void b.submit(10);
    void c.submit(10);
    await tick();
    expect(a.running.length).toBe(2);
    a.finishOne();
    await tick();
    expect(a.running.length + b.running.length + c.running.length).toBe(2);
    expect(b.running.length + c.running.length).toBe(1);
    a.finishOne();
    await tick();
    expect([a.running.length, b.running.length, c.running.length].sort()).toEqual([0, 1, 1]);
  });

  it('keeps a worker free for a model with sporadic requests while it is recently active', async () => {
    const shares = new WorkerShares(2, { activeWindowMs: 60_000 });
    const slow = batcherOn(shares, 2);
    const sporadic = batcherOn(shares, 2);
    void sporadic.submit(1);
    await tick();
    sporadic.finishOne();
    await tick();
    void slow.submit(20);
    await tick();
    expect(slow.running.length).toBe(1); // the other worker is kept for the sporadic model
    void sporadic.submit(1);
    await tick();
    expect(sporadic.running.length).toBe(1); // and its next request runs at once
  });

  it("frees a retired version's seat", async () => {
    const shares = new WorkerShares(2);
    const gone = batcherOn(shares, 2);
    const stays = batcherOn(shares, 2);
    gone.batcher.close();
    void stays.submit(4);
    await tick();
    expect(stays.running.length).toBe(2);
  });

  it('keeps reserved workers from inference until the reservation is released', async () => {
    const shares = new WorkerShares(4);
    const model = batcherOn(shares, 4);
    void model.submit(10);
    await tick();
    expect(model.running.length).toBe(4);
    const release = shares.reserve(3);
    // Running executions finish; only one worker takes new ones while three are reserved.
    for (let i = 0; i < 4; i++) model.finishOne();
    await tick();
    expect(model.running.length).toBe(1);
    model.finishOne();
    await tick();
    expect(model.running.length).toBe(1);
    release();
    await tick();
    expect(model.running.length).toBe(4);
    release(); // a second call does nothing
    // At most every worker but one, however much is asked, together.
    void model.submit(10);
    const a = shares.reserve(9);
    const b = shares.reserve(2);
    for (let i = 0; i < 4; i++) model.finishOne();
    await tick();
    expect(model.running.length).toBe(1);
    a();
    b();
  });
});
