/**
 * Per-caller limits: a request rate (a token bucket: `ratePerSecond` sustained, `burst` at once)
 * and a number of requests running at once. A caller is a token or certificate identity, or the
 * client's address when the call carries no credentials. Refusals say when a retry can succeed.
 */
import { MaasError } from '../../core/errors.js';

/** The limits of one caller; an absent one is not limited. */
export interface RateLimits {
  /** Requests per second, sustained. */
  ratePerSecond?: number;
  /** Requests allowed at once above the rate (default: one second's worth, at least 1). */
  burst?: number;
  /** Requests of one caller running at once. */
  concurrent?: number;
}

interface Bucket {
  tokens: number;
  /** ms of the last refill. */
  at: number;
  running: number;
}

/** Callers remembered at most (buckets of idle callers are forgotten first). */
const MAX_CALLERS = 100_000;

/** Releases a concurrent-request slot; calling it twice releases once. */
export type Release = () => void;

/** Admits or refuses requests per caller under one set of limits. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;

  constructor(
    readonly limits: RateLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = limits.burst ?? Math.max(1, Math.ceil(limits.ratePerSecond ?? 1));
  }

  /** Whether any limit is set (with none, admit() only counts). */
  get active(): boolean {
    return this.limits.ratePerSecond !== undefined || this.limits.concurrent !== undefined;
  }

  /**
   * Takes one request for `caller`, or throws MAAS_ERR_RATE_LIMITED with retryAfterMs. The
   * returned release() ends the request (for the concurrency limit).
   */
  admit(caller: string): Release {
    const bucket = this.bucketOf(caller);
    const { concurrent } = this.limits;
    if (concurrent !== undefined && bucket.running >= concurrent)
      throw new MaasError(
        'MAAS_ERR_RATE_LIMITED',
        `Too many requests at once: at most ${concurrent} may run for one caller`,
        { retryAfterMs: 1000 },
      );
    this.takeRate(bucket);
    bucket.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      bucket.running--;
    };
  }

  /** Takes one request's worth of rate without a concurrent slot (a message on an admitted stream). */
  take(caller: string): void {
    this.takeRate(this.bucketOf(caller));
  }

  /** How long until `caller` may make a request under the rate (0: now); takes nothing. */
  refusalMs(caller: string): number {
    const rate = this.limits.ratePerSecond;
    const bucket = this.buckets.get(caller);
    if (rate === undefined || !bucket) return 0;
    this.refill(bucket, rate);
    return bucket.tokens >= 1 ? 0 : Math.ceil(((1 - bucket.tokens) / rate) * 1000);
  }

  /** Takes one request's worth of rate if there is one (a failure counted, never refused). */
  tryTake(caller: string): void {
    const rate = this.limits.ratePerSecond;
    if (rate === undefined) return;
    const bucket = this.bucketOf(caller);
    this.refill(bucket, rate);
    bucket.tokens = Math.max(0, bucket.tokens - 1);
  }

  private takeRate(bucket: Bucket): void {
    const rate = this.limits.ratePerSecond;
    if (rate === undefined) return;
    this.refill(bucket, rate);
    if (bucket.tokens < 1) {
      const waitMs = Math.ceil(((1 - bucket.tokens) / rate) * 1000);
      throw new MaasError(
        'MAAS_ERR_RATE_LIMITED',
        `Too many requests: at most ${rate} per second (burst ${this.burst}) for one caller`,
        { retryAfterMs: waitMs },
      );
    }
    bucket.tokens -= 1;
  }

  private refill(bucket: Bucket, ratePerSecond: number): void {
    const now = this.now();
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * ratePerSecond);
    bucket.at = now;
  }

  private bucketOf(caller: string): Bucket {
    let bucket = this.buckets.get(caller);
    if (bucket) return bucket;
    if (this.buckets.size >= MAX_CALLERS) this.forgetIdle();
    bucket = { tokens: this.burst, at: this.now(), running: 0 };
    this.buckets.set(caller, bucket);
    return bucket;
  }

  /** Drops callers with nothing running and a full bucket: forgetting them changes no decision. */
  private forgetIdle(): void {
    const rate = this.limits.ratePerSecond;
    for (const [caller, bucket] of this.buckets) {
      if (bucket.running > 0) continue;
      if (rate !== undefined) this.refill(bucket, rate);
      if (rate === undefined || bucket.tokens >= this.burst) this.buckets.delete(caller);
    }
    // Still full (a flood of distinct callers): forget the oldest half rather than grow.
    if (this.buckets.size >= MAX_CALLERS) {
      let drop = this.buckets.size / 2;
      for (const [caller, bucket] of this.buckets) {
        if (drop-- <= 0) break;
        if (bucket.running === 0) this.buckets.delete(caller);
      }
    }
  }
}
