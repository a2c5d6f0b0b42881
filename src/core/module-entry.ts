/**
 * Where a thread's or child process's module is: compiled JavaScript beside the calling file, or
 * the TypeScript source under tsx (tests and benches run the sources).
 */
import { fileURLToPath } from 'node:url';

/** How to start one module in a thread or a process. */
export interface ModuleEntry {
  /** The module's path, for a process (child_process.fork runs it directly) or piscina. */
  module: string;
  /** The file a thread starts at, and the workerData field naming the module it should load (sources only). */
  threadEntry: string;
  threadModule?: string;
  execArgv: string[];
}

/**
 * The module `name` beside `callerUrl` (the caller's import.meta.url). A process runs it directly,
 * under tsx's hooks from the sources; a thread from the sources starts at a small JavaScript
 * file that requires the TypeScript module through tsx's CommonJS hook: a worker thread cannot
 * take a .ts entry.
 */
export function moduleEntry(callerUrl: string, name: string): ModuleEntry {
  if (callerUrl.endsWith('.ts')) {
    const module = fileURLToPath(new URL(`./${name}.ts`, callerUrl));
    return {
      module,
      threadEntry: fileURLToPath(new URL('../../scripts/ts-thread-entry.mjs', import.meta.url)),
      threadModule: module,
      execArgv: ['--import', import.meta.resolve('tsx')],
    };
  }
  const module = fileURLToPath(new URL(`./${name}.js`, callerUrl));
  return { module, threadEntry: module, execArgv: [] };
}
