/** A request's cancellation token, shared by the adapters (which abort it) and the batcher (which listens). */

/**
 * A request's cancellation: the adapter aborts it when the client goes away. Lighter than an
 * AbortController (no DOMException, no EventTarget), which matters at tens of thousands per second.
 */
export class Cancellation {
  private listener: (() => void) | null = null;
  private done = false;

  get aborted(): boolean {
    return this.done;
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    const listener = this.listener;
    this.listener = null;
    listener?.();
  }

  /** The one listener (the batcher's); null removes it. */
  onAbort(listener: (() => void) | null): void {
    this.listener = listener;
  }
}
