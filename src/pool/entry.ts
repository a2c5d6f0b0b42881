/**
 * Where the pool's thread and process modules are: compiled JavaScript next to this file, or the
 * TypeScript sources under tsx (tests and benches run the sources).
 */
import { fileURLToPath } from 'node:url';

/** How to start one of the pool's modules in a thread or a process. */
export interface ModuleEntry {
  /** The module, for a process (child_process.fork runs it directly). */
  module: string;
  /** The file a thread starts at, and the workerData field naming the module it should load (sources only). */
  threadEntry: string;
  threadModule?: string;
  execArgv: string[];
}

/**
 * A process runs the module directly (under tsx's hooks from the sources). A thread from the
 * sources starts at a small JavaScript file that requires the TypeScript module through tsx's
 * CommonJS hook: a worker thread cannot take a .ts entry.
 */
export function moduleEntry(name: 'worker' | 'load-worker'): ModuleEntry {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const module = fileURLToPath(new URL(`./${name}.ts`, here));
    return {
      module,
      threadEntry: fileURLToPath(new URL('../../scripts/ts-thread-entry.mjs', here)),
      threadModule: module,
      execArgv: ['--import', import.meta.resolve('tsx')],
    };
  }
  const module = fileURLToPath(new URL(`./${name}.js`, here));
  return { module, threadEntry: module, execArgv: [] };
}
