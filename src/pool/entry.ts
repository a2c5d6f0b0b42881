/**
 * Where the pool's thread modules are: compiled JavaScript next to this file, or the TypeScript
 * source under tsx (tests and benches run the sources).
 */

/** The module file of a thread entry (`worker`, `load-worker`) and the execArgv that runs it. */
export function workerEntry(name: 'worker' | 'load-worker'): { filename: string; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return { filename: new URL(`./${name}.ts`, here).href, execArgv: ['--import', import.meta.resolve('tsx')] };
  }
  return { filename: new URL(`./${name}.js`, here).href, execArgv: [] };
}
