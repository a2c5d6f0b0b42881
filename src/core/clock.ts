/** The serving clock: one monotonic time source for the batcher, the DataPlane and statistics. */

/** Nanoseconds since an arbitrary origin, as a double (no BigInt allocation per call). */
export function nowNs(): number {
  // The global performance, read at each call, so tests can drive the clock with fake timers.
  return globalThis.performance.now() * 1e6;
}
