/**
 * The serving bench's server children: each runs child.mjs from the built package (dist/, as
 * `npm start` runs), prints `READY <port>` when listening and answers `rss` over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';

/** A forked server: resolves with its port once it prints `READY <port>`. */
export async function forkServer(
  script: string,
  args: string[],
  execArgv: string[],
  label = 'server child',
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(script, args, { execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${label} exited with ${code} before it was ready`)));
  });
  return { child, port };
}

/** A server child running child.mjs from the built package. */
export function startChild(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  // An explicit execArgv so the child does not inherit tsx's loader: it runs the built package as npm start does.
  return forkServer(join(packageRoot(), 'bench', 'serve', 'child.mjs'), args, ['--expose-gc']);
}

/** Stops a child: at once (SIGKILL), or with `graceMs`, SIGTERM first and SIGKILL after that long. */
export function stopChild(child: ChildProcess, graceMs = 0): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    if (graceMs === 0) {
      child.kill('SIGKILL');
      return;
    }
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
  });
}

export interface Rss {
  rss: number;
  rssAfterGc: number;
}

export function rssOf(child: ChildProcess): Promise<Rss> {
  return new Promise((resolve) => {
    child.once('message', (m: Rss) => resolve(m));
    child.send('rss');
  });
}
