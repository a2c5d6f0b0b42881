/**
 * Child processes running TypeScript sources (through tsx, as the tests do): the server under
 * fuzz and the file loaders. Their stderr is kept (its tail) to explain a crash.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** How a child ended: its exit code or the signal that killed it, and the tail of its stderr. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** A forked TypeScript module, its stderr tail, and how it ended once it has. */
export class TsChild {
  readonly process: ChildProcess;
  exit: ChildExit | null = null;
  readonly exited: Promise<ChildExit>;
  private stderr = '';

  constructor(module: URL, options: { heapMb?: number; args?: string[] } = {}) {
    const execArgv = ['--import', import.meta.resolve('tsx')];
    if (options.heapMb) execArgv.push(`--max-old-space-size=${options.heapMb}`);
    this.process = fork(fileURLToPath(module), options.args ?? [], {
      execArgv,
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.process.stderr!.setEncoding('utf8');
    this.process.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.exit = { code, signal, stderr: this.stderr };
        resolve(this.exit);
      });
    });
    this.process.on('error', () => {}); // an IPC send to a child that just died: its exit says the rest
  }

  /** The first message the child sends, or a rejection if it exits or stays silent for `timeoutMs`. */
  firstMessage<T>(timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child sent nothing in ${timeoutMs} ms`)), timeoutMs);
      this.process.once('message', (message) => {
        clearTimeout(timer);
        resolve(message as T);
      });
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`child exited (${describeExit(exit)}) before it was ready: ${exit.stderr.slice(-1000)}`));
      });
    });
  }

  /** Ends the child: a disconnect (it closes itself), then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exit) return;
    if (this.process.connected) this.process.disconnect();
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kills the child now. */
  async kill(): Promise<void> {
    if (this.exit) return;
    this.process.kill('SIGKILL');
    await this.exited;
  }
}

/** "signal SIGABRT" or "exit code 1". */
export function describeExit(exit: ChildExit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}
