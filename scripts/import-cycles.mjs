/**
 * Reports import cycles among the TypeScript sources (static imports and re-exports, type-only
 * ones included): `node scripts/import-cycles.mjs [dir]` (default src). Exits 1 on a cycle.
 * A stand-in for `madge --circular` that needs nothing installed.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? 'src');
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (path.endsWith('.ts')) files.push(path);
  }
};
walk(root);
const known = new Set(files);
const graph = new Map(
  files.map((file) => {
    const deps = [];
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/g))
      deps.push(resolve(dirname(file), m[1].replace(/\.js$/, '.ts')));
    return [file, deps.filter((d) => known.has(d))];
  }),
);
const state = new Map();
const stack = [];
const cycles = [];
const visit = (node) => {
  state.set(node, 'open');
  stack.push(node);
  for (const dep of graph.get(node)) {
    if (state.get(dep) === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
    else if (!state.has(dep)) visit(dep);
  }
  stack.pop();
  state.set(node, 'done');
};
for (const file of files) if (!state.has(file)) visit(file);
for (const cycle of cycles) console.log(cycle.map((f) => relative(root, f)).join(' -> '));
console.log(cycles.length === 0 ? `no import cycles in ${files.length} files` : `${cycles.length} cycle(s)`);
process.exitCode = cycles.length === 0 ? 0 : 1;
