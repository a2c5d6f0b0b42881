/**
 * Where the pool's thread and process modules are: compiled JavaScript next to this file, or the
 * TypeScript sources under tsx (tests and benches run the sources).
 */
import { fileURLToPath } from 'node:url';

const fromSources = import.meta.url.endsWith('.ts');

/** The module file of a piscina thread entry (`load-worker`) and the execArgv that runs it. */
export function workerEntry(name: 'load-worker'): { filename: string; execArgv: string[] } {
  const here = import.meta.url;
  if (fromSources) {
    return { filename: new URL(`./${name}.ts`, here).href, execArgv: ['--import', import.meta.resolve('tsx')] };
  }
  return { filename: new URL(`./${name}.js`, here).href, execArgv: [] };
}

/**
 * How to start an inference worker. A process runs the module directly (under tsx's hooks from
 * the sources). A thread from the sources starts at a small JavaScript file that requires the
 * TypeScript module through tsx's CommonJS hook: a worker thread cannot take a .ts entry.
 */
export function inferenceWorkerEntry(): {
  module: string;
  threadEntry: string;
  threadModule?: string;
  execArgv: string[];
} {
  const here = import.meta.url;
  if (fromSources) {
    const module = fileURLToPath(new URL('./worker.ts', here));
    return {
      module,
      threadEntry: fileURLToPath(new URL('../../scripts/ts-thread-entry.mjs', here)),
      threadModule: module,
      execArgv: ['--import', import.meta.resolve('tsx')],
    };
  }
  const module = fileURLToPath(new URL('./worker.js', here));
  return { module, threadEntry: module, execArgv: [] };
}
