/** The pool's thread and process modules (see core/module-entry.ts). */
import { moduleEntry as entryBeside, type ModuleEntry } from '../core/module-entry.js';

export type { ModuleEntry } from '../core/module-entry.js';

/** The inference worker's, the load thread's or the update thread's module. */
export function moduleEntry(name: 'worker' | 'load-worker' | 'update-worker'): ModuleEntry {
  return entryBeside(import.meta.url, name);
}
