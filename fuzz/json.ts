/**
 * Structure-aware JSON mutation: pick a node of a parsed document and replace, delete, repeat or
 * retype it with values at the edges (huge numbers, deep nesting, long strings, wrong types).
 * Deep nesting and similar values are spliced in as text, since building them as objects would
 * overflow the very stack JSON.stringify needs.
 */
import { type Rng } from './random.js';

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Text spliced into the output as it is (not a JSON value the mutator could build). */
class RawJson {
  constructor(readonly text: string) {}
}

type Path = (string | number)[];

/** Every node's path, the root first. */
function paths(value: Json, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out));
  else if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  return out;
}

/** Nesting `depth` deep, around `leaf`: arrays or objects. */
function nested(rng: Rng, leaf: string): RawJson {
  const depth = rng.pick([64, 200, 5000, 100_000]);
  return rng.chance(0.5)
    ? new RawJson('['.repeat(depth) + leaf + ']'.repeat(depth))
    : new RawJson('{"a":'.repeat(depth) + leaf + '}'.repeat(depth));
}

/** The values a node is replaced with, by kind: scalars at their edges, wrong types, deep or huge structures. */
function edgeValue(rng: Rng): Json | RawJson {
  const kind = rng.weighted<() => Json | RawJson>([
    [
      () =>
        rng.pick<Json | RawJson>([
          null,
          true,
          0,
          -1,
          1.5,
          2 ** 53 + 1,
          -(2 ** 63),
          1e308,
          new RawJson('1e999'),
          new RawJson('-0'),
          new RawJson('123456789012345678901234567890'),
        ]),
      8,
    ],
    [
      () =>
        rng.pick<Json>([
          '',
          'x'.repeat(rng.pick([1, 300, 70_000])),
          '\u0000\ud800\uffff',
          'FP32',
          'BYTES',
          'constructor',
          '__proto__',
        ]),
      5,
    ],
    [() => rng.pick<Json>([[], {}, [[]], [{}], { a: [] }]), 3],
    [() => nested(rng, rng.pick(['1', '"x"', '[]', '{}', 'null'])), 5],
    [() => new RawJson('['.repeat(rng.pick([64, 5000, 200_000]))), 1], // never closed
    [() => new RawJson(`[${new Array<string>(rng.pick([1000, 100_000])).fill('0').join(',')}]`), 2],
    [() => new RawJson(`[${new Array<string>(rng.pick([1000, 20_000])).fill('"x"').join(',')}]`), 1],
    [() => new RawJson('{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}'), 1],
  ]);
  return kind();
}

function childOf(parent: Json, key: string | number): Json {
  return (parent as Record<string | number, Json>)[key]!;
}

/** Serialises a document holding RawJson pieces: each becomes a placeholder string, then its text. */
function stringify(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof RawJson) {
      raws.push(v.text);
      return `\u0000raw${raws.length - 1}\u0000`;
    }
    return v;
  });
  return raws.length === 0 ? text : text.replace(/"\\u0000raw(\d+)\\u0000"/g, (_m, i: string) => raws[Number(i)]!);
}

/** One structural mutation of a parsed document, as JSON text. */
export function mutateJson(rng: Rng, document: Json): { text: string; what: string } {
  const copy = structuredClone(document);
  const all = paths(copy);
  // Members of objects (parameters, names, shapes) are outnumbered by array elements (tensor
  // data): half the time the choice is among members only.
  const members = all.filter((p) => typeof p[p.length - 1] === 'string');
  const path = rng.pick(members.length > 0 && rng.chance(0.5) ? members : all);
  const where = path.length === 0 ? '<root>' : path.join('.');
  if (path.length === 0) {
    const replacement = edgeValue(rng);
    return { text: stringify(replacement), what: `root := ${describe(replacement)}` };
  }
  const parent = path.slice(0, -1).reduce<Json>((node, key) => childOf(node, key), copy) as
    Record<string | number, Json | RawJson> | (Json | RawJson)[];
  const key = path[path.length - 1]!;
  const op = rng.weighted<'replace' | 'delete' | 'repeat' | 'add'>([
    ['replace', 6],
    ['delete', 2],
    ['repeat', 1],
    ['add', 1],
  ]);
  if (op === 'delete') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
    return { text: stringify(copy), what: `delete ${where}` };
  }
  if (op === 'repeat' && Array.isArray(parent)) {
    const copies = rng.pick([2, 100, 10_000]);
    parent.splice(key as number, 0, ...new Array<Json | RawJson>(copies).fill(parent[key as number]!));
    return { text: stringify(copy), what: `repeat ${where} ×${copies}` };
  }
  if (op === 'add' && !Array.isArray(parent)) {
    const name = rng.pick(['extra', '__proto__', 'constructor', 'binary_data_size', 'parameters', 'data']);
    parent[name] = edgeValue(rng);
    return { text: stringify(copy), what: `add ${[...path.slice(0, -1), name].join('.')}` };
  }
  const replacement = edgeValue(rng);
  (parent as Record<string | number, Json | RawJson>)[key] = replacement;
  return { text: stringify(copy), what: `${where} := ${describe(replacement)}` };
}

function describe(value: Json | RawJson): string {
  const text = value instanceof RawJson ? value.text : JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}… (${text.length} chars)` : text;
}
