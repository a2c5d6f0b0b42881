/**
 * The import graph of src/ against DESIGN.md's layers: no cycles, no layer importing one above
 * it, adapters reaching only the DataPlane, and the protocol and clients free of the addon.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/core/package-root.js';

const SRC = join(packageRoot(), 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** Each file's relative imports (static, dynamic and re-exports), as paths relative to src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const specifier = /(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g;
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(join(SRC, file), 'utf8');
    const targets: string[] = [];
    for (const m of text.matchAll(specifier)) {
      const spec = (m[1] ?? m[2])!;
      targets.push(relative(SRC, resolve(SRC, dirname(file), spec)).replace(/\.js$/, '.ts'));
    }
    graph.set(file, targets);
  }
  return graph;
}

/** Which part of src/ a file belongs to, at the granularity of DESIGN.md's diagram. */
function layerOf(file: string): string {
  if (file.startsWith('serving/grpc/') || file.startsWith('serving/http/')) return 'adapter';
  if (file === 'serving/dataplane.ts' || file === 'serving/cancellation.ts') return 'dataplane';
  // Access control and TLS: a protocol-free decision each adapter's one hook consults.
  if (file.startsWith('serving/auth/')) return 'access';
  // serve(): the one place that wires the adapters to a DataPlane.
  if (file === 'serving/server.ts') return 'composition';
  const top = file.split('/')[0]!;
  if (top === 'serving') return 'serving';
  if (['model', 'layers', 'train', 'quant', 'data', 'io', 'explain', 'lifecycle'].includes(top)) return 'library';
  return top.replace(/\.ts$/, '');
}

/** What the package's entry points (the index and the CLI) may import. */
const ENTRY_LAYERS = [
  'composition',
  'access',
  'serving',
  'dataplane',
  'pool',
  'library',
  'native',
  'runtime',
  'core',
  'protocol',
  'client',
] as const;

/** What each layer may import besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  protocol: ['core'],
  native: ['core'],
  library: ['native', 'core', 'protocol'],
  runtime: ['native', 'core'],
  pool: ['library', 'native', 'core'],
  serving: ['dataplane', 'pool', 'library', 'native', 'core', 'protocol'],
  dataplane: ['serving', 'pool', 'library', 'native', 'core', 'protocol'],
  access: ['library', 'core'],
  adapter: ['dataplane', 'access', 'core', 'protocol'],
  composition: ['adapter', 'access', 'dataplane', 'serving', 'pool', 'library', 'native', 'core', 'protocol'],
  client: ['protocol', 'core'],
  // The entry points see every layer below them; the CLI also reaches the adapters and the index.
  cli: [...ENTRY_LAYERS, 'adapter', 'index'],
  index: ENTRY_LAYERS,
};

describe('the import graph of src/', () => {
  const graph = importGraph();

  it('resolves every relative import to a file', () => {
    const missing = [...graph].flatMap(([file, targets]) =>
      targets.filter((t) => !graph.has(t)).map((t) => `${file} -> ${t}`),
    );
    expect(missing).toEqual([]);
  });

  it('has no cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
        else if (!state.has(next)) visit(next);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  it('imports only downwards, and adapters reach only the DataPlane', () => {
    const violations = [...graph].flatMap(([file, targets]) => {
      const from = layerOf(file);
      const allowed = ALLOWED[from];
      if (!allowed) return [`${file}: layer '${from}' has no rule`];
      return targets
        .filter((t) => layerOf(t) !== from && !allowed.includes(layerOf(t)))
        .map((t) => `${file} (${from}) -> ${t} (${layerOf(t)})`);
    });
    expect(violations).toEqual([]);
  });
});
