/**
 * WorkerShares: how the model versions share the pool's workers. Each version may run at most
 * its instance count of executions at once (Triton's instance_group count; by default every
 * worker), and while more than one version has work, each is held to a fair share of the
 * workers: a slow model can keep a worker busy but cannot take the others from a model that
 * is waiting. A free worker goes to the waiting version holding the fewest.
 *
 * Workers are not pre-empted: a model that arrives while a slow one holds every worker waits for
 * the first of those executions to finish, and from then on has its share.
 */

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
  readonly wake: () => void;
}

export class WorkerShares {
  private readonly members = new Set<Member>();
  private held = 0;

  constructor(readonly workers: number) {}

  /**
   * A seat for a version that may run `instances` executions at once (clamped to the workers);
   * `wake` is called when a worker may be free for it (the batcher then tries again).
   */
  join(instances: number, wake: () => void): ExecutionShare {
    const member: Member = { cap: Math.max(1, Math.min(instances, this.workers)), held: 0, waiting: false, wake };
    this.members.add(member);
    return {
      tryAcquire: () => this.tryAcquire(member),
      release: () => this.release(member),
      idle: () => void (member.waiting = false),
      leave: () => void this.members.delete(member),
    };
  }

  private tryAcquire(member: Member): boolean {
    if (this.held < this.workers && member.held < member.cap && this.withinShare(member)) {
      member.held++;
      this.held++;
      member.waiting = false;
      return true;
    }
    member.waiting = true;
    return false;
  }

  /** Below its fair share, or nobody else is waiting for a worker. */
  private withinShare(member: Member): boolean {
    let active = 0;
    let othersWaiting = false;
    for (const m of this.members) {
      if (m.held > 0 || m.waiting || m === member) active++;
      if (m !== member && m.waiting) othersWaiting = true;
    }
    return !othersWaiting || member.held < Math.max(1, Math.floor(this.workers / active));
  }

  private release(member: Member): void {
    member.held--;
    this.held--;
    // The releasing version asks first: within its share it keeps the worker (no hand-off
    // cost); above it, it now waits. Then the free worker goes to whoever waits with the fewest.
    member.wake();
    const waiting = [...this.members].filter((m) => m.waiting && m !== member).sort((a, b) => a.held - b.held);
    for (const m of waiting) {
      if (this.held >= this.workers) break;
      m.wake();
    }
  }
}
