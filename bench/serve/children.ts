/**
 * The serving bench's server children: each runs child.mjs from the built package (dist/, as
 * `npm start` runs), prints `READY <port>` when listening and answers `rss` over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';

/** A server child process: resolves with its port once it prints READY. */
export async function startChild(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  // An explicit execArgv so the child does not inherit tsx's loader: it runs the built package as npm start does.
  const child = fork(join(packageRoot(), 'bench', 'serve', 'child.mjs'), args, {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`server child exited with ${code} before it was ready`)));
  });
  return { child, port };
}

export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
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
