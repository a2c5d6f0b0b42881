/** A request's cancellation token, shared by the adapters (which abort it) and the batcher (which listens). */

/**
 * A request's cancellation: the adapter aborts it when the client goes away. Lighter than an
 * AbortController (no DOMException, no EventTarget), which matters at tens of thousands per second.
 *
 * `watch`, when given, is how the adapter learns the client went away (a listener on its call);
 * it runs only when someone first listens, so a request answered without ever waiting in a
 * queue (an inline execution) never subscribes to its call at all.
 */
export class Cancellation {
  private listener: (() => void) | null = null;
  private done = false;
  private watch: ((abort: () => void) => void) | null;

  constructor(watch?: (abort: () => void) => void) {
    this.watch = watch ?? null;
  }

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
    if (listener && this.watch) {
      const watch = this.watch;
      this.watch = null;
      watch(() => this.abort());
    }
  }
}
