/**
 * A small pool of loader children, one job each at a time: a job that outlives its timeout is a
 * hang (the child is killed and replaced), a child that dies during a job is a crash (replaced).
 */
import { TsChild, describeExit } from '../process.js';
import type { JobOutcome, LoadJob, LoadReply } from './messages.js';

/** One loader child, started and ready for a job. */
class Loader {
  private constructor(readonly child: TsChild) {}

  static async start(heapMb: number): Promise<Loader> {
    const child = new TsChild(new URL('./loader.ts', import.meta.url), { heapMb });
    await child.firstMessage<{ kind: 'ready' }>(120_000);
    return new Loader(child);
  }

  run(job: LoadJob, timeoutMs: number): Promise<JobOutcome> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done({ kind: 'hang' }), timeoutMs);
      const onMessage = (reply: LoadReply) => done(reply);
      const onExit = () => {
        const exit = this.child.exit!;
        done({
          kind: 'crash',
          detail: `${describeExit(exit)}: ${exit.stderr.trim().split('\n').slice(-6).join(' | ')}`,
        });
      };
      const done = (outcome: JobOutcome) => {
        clearTimeout(timer);
        this.child.process.off('message', onMessage);
        this.child.process.off('exit', onExit);
        resolve(outcome);
      };
      this.child.process.on('message', onMessage);
      this.child.process.once('exit', onExit);
      this.child.process.send(job);
    });
  }
}

/** Loader children, `size` of them, each with a job timeout and a heap cap. */
export class LoaderPool {
  private readonly idle: Loader[] = [];
  private readonly waiting: ((loader: Loader) => void)[] = [];
  /** Children started in all (replacements included). */
  started = 0;

  private constructor(
    private readonly timeoutMs: number,
    private readonly heapMb: number,
  ) {}

  static async start(size: number, timeoutMs: number, heapMb: number): Promise<LoaderPool> {
    const pool = new LoaderPool(timeoutMs, heapMb);
    const loaders = await Promise.all(Array.from({ length: size }, () => Loader.start(heapMb)));
    pool.started = size;
    pool.idle.push(...loaders);
    return pool;
  }

  /** Runs a job on the next free child; a child that hung or crashed is replaced before it is reused. */
  async run(job: LoadJob): Promise<JobOutcome> {
    const loader = this.idle.pop() ?? (await new Promise<Loader>((resolve) => this.waiting.push(resolve)));
    const outcome = await loader.run(job, this.timeoutMs);
    let next = loader;
    if (outcome.kind === 'hang' || outcome.kind === 'crash') {
      await loader.child.kill();
      next = await Loader.start(this.heapMb);
      this.started++;
    }
    const waiter = this.waiting.shift();
    if (waiter) waiter(next);
    else this.idle.push(next);
    return outcome;
  }

  async close(): Promise<void> {
    await Promise.all(this.idle.map((l) => l.child.stop()));
  }
}
