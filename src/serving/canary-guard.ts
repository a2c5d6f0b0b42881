/**
 * The canary's guard: the outcomes of the stable and canary versions' requests over a sliding
 * window, and the verdict that rolls the canary back — its error rate above stable's by more than a
 * bound, or its p99 latency above a multiple of stable's — once each side has enough requests in
 * the window to compare.
 */

/** When a canary is rolled back (config.json's canary_* parameters). */
export interface CanaryBounds {
  /** Roll back when the canary's error rate exceeds stable's by more than this (a fraction). */
  maxErrorIncrease?: number;
  /** Roll back when the canary's p99 exceeds this multiple of stable's. */
  maxP99Ratio?: number;
  /** The window compared, ms. */
  windowMs: number;
  /** Requests each side needs in the window before a verdict. */
  minRequests: number;
}

/** Outcomes kept per side (the oldest go first): bounds the memory and the p99's sort. */
const MAX_OUTCOMES = 4096;
/** Canary outcomes between two verdicts: a verdict sorts the window's latencies, too much per request. */
const CHECK_EVERY = 8;

/** A side's recent requests: when each ended, whether it succeeded, how long it took. */
class Outcomes {
  private readonly at = new Float64Array(MAX_OUTCOMES);
  private readonly ok = new Uint8Array(MAX_OUTCOMES);
  private readonly ns = new Float64Array(MAX_OUTCOMES);
  private next = 0;
  private size = 0;

  add(atMs: number, ok: boolean, latencyNs: number): void {
    this.at[this.next] = atMs;
    this.ok[this.next] = ok ? 1 : 0;
    this.ns[this.next] = latencyNs;
    this.next = (this.next + 1) % MAX_OUTCOMES;
    this.size = Math.min(this.size + 1, MAX_OUTCOMES);
  }

  /** The window's requests: how many, the error rate, and the p99 of the successful ones' latency. */
  since(fromMs: number): { count: number; errorRate: number; p99Ns: number } {
    let count = 0;
    let errors = 0;
    const latencies: number[] = [];
    for (let i = 0; i < this.size; i++) {
      if (this.at[i]! < fromMs) continue;
      count++;
      if (this.ok[i]) latencies.push(this.ns[i]!);
      else errors++;
    }
    latencies.sort((a, b) => a - b);
    const p99Ns = latencies.length
      ? latencies[Math.min(latencies.length - 1, Math.floor(0.99 * latencies.length))]!
      : 0;
    return { count, errorRate: count ? errors / count : 0, p99Ns };
  }
}

export class CanaryGuard {
  private readonly stable = new Outcomes();
  private readonly canary = new Outcomes();
  private canarySinceVerdict = 0;

  constructor(readonly bounds: CanaryBounds) {}

  /**
   * One finished request of the stable or the canary version; true when a verdict is due (every
   * CHECK_EVERY canary outcomes), so the request path sorts the window only that often.
   */
  record(side: 'stable' | 'canary', ok: boolean, latencyNs: number, nowMs: number): boolean {
    (side === 'stable' ? this.stable : this.canary).add(nowMs, ok, latencyNs);
    if (side === 'stable' || ++this.canarySinceVerdict < CHECK_EVERY) return false;
    this.canarySinceVerdict = 0;
    return true;
  }

  /** Why the canary should be rolled back now, or null (too few requests, or within bounds). */
  breach(nowMs: number): string | null {
    const from = nowMs - this.bounds.windowMs;
    const s = this.stable.since(from);
    const c = this.canary.since(from);
    if (s.count < this.bounds.minRequests || c.count < this.bounds.minRequests) return null;
    const { maxErrorIncrease, maxP99Ratio } = this.bounds;
    if (maxErrorIncrease !== undefined && c.errorRate - s.errorRate > maxErrorIncrease)
      return `the canary's error rate ${pct(c.errorRate)} exceeds stable's ${pct(s.errorRate)} by more than ${pct(maxErrorIncrease)} (${c.count} and ${s.count} requests)`;
    if (maxP99Ratio !== undefined && s.p99Ns > 0 && c.p99Ns > maxP99Ratio * s.p99Ns)
      return `the canary's p99 ${us(c.p99Ns)} is more than ${maxP99Ratio}× stable's ${us(s.p99Ns)} (${c.count} and ${s.count} requests)`;
    return null;
  }
}

const pct = (f: number) => `${(100 * f).toFixed(1)}%`;
const us = (ns: number) => `${(ns / 1000).toFixed(0)} µs`;
