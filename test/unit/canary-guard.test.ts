/**
 * The canary guard's verdicts on known outcomes: none before each side has its minimum of requests
 * in the window, a breach on the error rate's increase and on the p99's ratio (each alone), none
 * within bounds, and outcomes that leave the window no longer count.
 */
import { describe, expect, it } from 'vitest';
import { CanaryGuard } from '../../src/serving/canary-guard.js';

function fill(
  guard: CanaryGuard,
  side: 'stable' | 'canary',
  count: number,
  opts: { fail?: number; ns?: number; at?: number },
) {
  for (let i = 0; i < count; i++) guard.record(side, i >= (opts.fail ?? 0), opts.ns ?? 1000, opts.at ?? 0);
}

describe('canary guard', () => {
  it('waits for the minimum of requests on each side', () => {
    const guard = new CanaryGuard({ maxErrorIncrease: 0.05, windowMs: 60_000, minRequests: 20 });
    fill(guard, 'stable', 20, {});
    fill(guard, 'canary', 19, { fail: 19 });
    expect(guard.breach(0)).toBeNull();
    fill(guard, 'canary', 1, { fail: 1 });
    expect(guard.breach(0)).toMatch(/error rate 100.0% exceeds stable's 0.0% by more than 5.0% \(20 and 20 requests\)/);
  });

  it('breaks on the error rate alone, and not within the bound', () => {
    const within = new CanaryGuard({ maxErrorIncrease: 0.1, windowMs: 1000, minRequests: 10 });
    fill(within, 'stable', 100, { fail: 5 });
    fill(within, 'canary', 100, { fail: 14 });
    expect(within.breach(0)).toBeNull();
    fill(within, 'canary', 100, { fail: 30 });
    // 44 of 200 failed: 22% against 5%.
    expect(within.breach(0)).toMatch(/error rate 22.0%/);
  });

  it("breaks on the p99 ratio alone (the successful requests' latency)", () => {
    const guard = new CanaryGuard({ maxP99Ratio: 2, windowMs: 1000, minRequests: 10 });
    fill(guard, 'stable', 100, { ns: 1_000_000 });
    fill(guard, 'canary', 100, { ns: 1_900_000 });
    expect(guard.breach(0)).toBeNull();
    fill(guard, 'canary', 5, { ns: 5_000_000 });
    expect(guard.breach(0)).toMatch(/p99 5000 µs is more than 2× stable's 1000 µs/);
  });

  it('asks for a verdict every 8 canary outcomes, never on a stable one', () => {
    const guard = new CanaryGuard({ maxErrorIncrease: 0.05, windowMs: 1000, minRequests: 1 });
    const due = Array.from({ length: 24 }, (_, i) => guard.record(i % 2 ? 'canary' : 'stable', true, 1000, 0));
    expect(due.flatMap((d, i) => (d ? [i] : []))).toEqual([15]);
  });

  it('forgets what left the window', () => {
    const guard = new CanaryGuard({ maxErrorIncrease: 0.05, windowMs: 1000, minRequests: 10 });
    fill(guard, 'stable', 10, { at: 0 });
    fill(guard, 'canary', 10, { fail: 10, at: 0 });
    expect(guard.breach(500)).not.toBeNull();
    // A second later both sides have too few requests in the window to judge.
    expect(guard.breach(1500)).toBeNull();
  });
});
