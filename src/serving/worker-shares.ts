/**
 * WorkerShares: how the model versions share the pool's workers. Each version may run at most
 * its instance count of executions at once (Triton's instance_group count; by default every
 * worker). While more than one version is active (it has work, or had some within the activity
 * window, one second by default), each is held to a fair share of the workers: a slow model keeps
 * its share busy but cannot take the workers a model with sporadic requests needs, so that
 * model's next request finds a worker free instead of queueing behind slow executions. A version
 * alone uses every worker. A free worker goes to the waiting version holding the fewest.
 *
 * Workers are not pre-empted: a model that arrives while a slow one holds every worker waits for
 * the first of those executions to finish, and from then on has its share.
 */
import { nowNs } from '../core/clock.js';

/** One version's seat: what its batcher asks before each execution and tells after it. */
export interface ExecutionShare {
  /** Takes a worker for one execution, or says no and remembers that this version is waiting. */
  tryAcquire(): boolean;
  /** Gives the worker back (the execution finished); the version's own wake runs first. */
  release(): void;
  /** The version has nothing queued: it no longer waits. */
  idle(): void;
  /** The version is gone. */
  leave(): void;
}

interface Member {
  readonly cap: number;
  held: number;
  waiting: boolean;
  /** When the version last asked for a worker (ns), for the activity window. */
  lastDemand: number;
  /** A retry armed for when the activity window of the others runs out. */
  retry: NodeJS.Timeout | null;
  readonly wake: () => void;
}

/** WorkerShares settings. */
export interface WorkerSharesOptions {
  /** A version that asked for a worker this recently still counts as active (default 1000 ms). */
  activeWindowMs?: number;
}

export class WorkerShares {
  private readonly members = new Set<Member>();
  private held = 0;
  /** Workers kept from inference (an update trains on them). */
  private reserved = 0;
  private readonly windowNs: number;

  constructor(
    readonly workers: number,
    options: WorkerSharesOptions = {},
  ) {
    this.windowNs = (options.activeWindowMs ?? 1000) * 1e6;
  }

  /**
   * A seat for a version that may run `instances` executions at once (clamped to the workers);
   * `wake` is called when a worker may be free for it (the batcher then tries again).
   */
  join(instances: number, wake: () => void): ExecutionShare {
    const member: Member = {
      cap: Math.max(1, Math.min(instances, this.workers)),
      held: 0,
      waiting: false,
      lastDemand: -Infinity,
      retry: null,
      wake,
    };
    this.members.add(member);
    return {
      tryAcquire: () => this.tryAcquire(member),
      release: () => this.release(member),
      idle: () => void (member.waiting = false),
      leave: () => {
        if (member.retry) clearTimeout(member.retry);
        this.members.delete(member);
      },
    };
  }

  /**
   * Keeps `count` workers from inference until the returned function is called: executions
   * already running finish, and no new one starts while they would take a kept worker. One worker
   * always stays with inference (with one worker, nothing is kept); the executions placed inline
   * (on the event loop) are not held back.
   */
  reserve(count: number): () => void {
    const n = Math.max(0, Math.min(Math.floor(count), this.workers - 1 - this.reserved));
    this.reserved += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reserved -= n;
      // The workers are free for inference again: whoever waits may take them.
      for (const m of [...this.members]) if (m.waiting) m.wake();
    };
  }

  /** Workers inference may use now. */
  private get available(): number {
    return this.workers - this.reserved;
  }

  private active(m: Member, now: number): boolean {
    return m.held > 0 || m.waiting || now - m.lastDemand < this.windowNs;
  }

  private tryAcquire(member: Member): boolean {
    const now = nowNs();
    member.lastDemand = now;
    if (this.held < this.available && member.held < member.cap) {
      const share = this.shareFor(member, now);
      if (member.held < share.limit) {
        member.held++;
        this.held++;
        member.waiting = false;
        return true;
      }
      // A worker is free but kept for another active version: ask again when its window ends.
      this.retryAt(member, share.othersQuietAt);
    }
    member.waiting = true;
    return false;
  }

  /** How many workers `member` may hold now, and when the other active versions would turn quiet. */
  private shareFor(member: Member, now: number): { limit: number; othersQuietAt: number } {
    let active = 1;
    let othersQuietAt = -Infinity;
    for (const m of this.members) {
      if (m === member || !this.active(m, now)) continue;
      active++;
      othersQuietAt = Math.max(othersQuietAt, m.held > 0 || m.waiting ? Infinity : m.lastDemand + this.windowNs);
    }
    if (active === 1) return { limit: this.available, othersQuietAt };
    return { limit: Math.max(1, Math.floor(this.available / active)), othersQuietAt };
  }

  private retryAt(member: Member, atNs: number): void {
    if (member.retry || !Number.isFinite(atNs)) return; // a busy or waiting version wakes us on release
    member.retry = setTimeout(
      () => {
        member.retry = null;
        member.wake();
      },
      Math.max(1, Math.ceil((atNs - nowNs()) / 1e6)),
    );
    member.retry.unref();
  }

  private release(member: Member): void {
    let woken: Set<Member> | null = null;
    member.held--;
    this.held--;
    // The releasing version asks first: within its share it keeps the worker (no hand-off
    // cost); above it, it now waits. Then the free worker goes to whoever waits with the fewest.
    member.wake();
    // Once per finished execution: nothing is allocated unless another version waits.
    while (this.held < this.available) {
      let next: Member | null = null;
      for (const m of this.members)
        if (m.waiting && m !== member && !woken?.has(m) && (!next || m.held < next.held)) next = m;
      if (!next) break;
      (woken ??= new Set()).add(next);
      next.wake();
    }
  }
}
