/** Finds the package's root folder, for files shipped beside the code (proto/, build/). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The package root: the nearest folder above this file whose package.json is named maas. */
export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'maas')
      return (cached = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error('maas: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
