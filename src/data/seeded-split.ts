/**
 * The one seeded split of rows into train and test, shared by DataFrame.split and
 * trainTestSplit: rows grouped by a key (one group unless stratified), each group shuffled and cut
 * at testSize, then both parts shuffled.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { Random, randomSeed } from '../core/random.js';
import { checkFinite, checkInteger } from '../core/validation.js';

/** Checked testSize and seed of a split's options (`name` prefixes the messages). */
export function splitSettings(name: string, testSize: unknown, seed: unknown): { testSize: number; seed: number } {
  const size = testSize === undefined ? 0.25 : checkFinite(`${name}.testSize`, testSize);
  if (size <= 0 || size >= 1)
    throw invalidParameter(`${name}.testSize`, 'a fraction in (0, 1)', size, 'MAAS_ERR_ARG_RANGE');
  return {
    testSize: size,
    seed: seed === undefined ? randomSeed() : checkInteger(`${name}.seed`, seed, 0, 2 ** 32 - 1),
  };
}

/** Row indices of each part; `keyOf(row)` is the row's stratum (numbers sort numerically, strings by code point). */
export function seededSplit(
  rows: number,
  keyOf: (row: number) => string | number,
  { testSize, seed }: { testSize: number; seed: number },
): { train: number[]; test: number[] } {
  const rng = new Random(seed);
  const shuffle = (a: number[]): number[] => {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  };
  const groups = new Map<string | number, number[]>();
  for (let r = 0; r < rows; r++) {
    const key = keyOf(r);
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(r);
  }
  const order = (a: string | number, b: string | number) =>
    typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
  const train: number[] = [];
  const test: number[] = [];
  for (const key of [...groups.keys()].sort(order)) {
    const members = shuffle(groups.get(key)!);
    const n = Math.round(members.length * testSize);
    test.push(...members.slice(0, n));
    train.push(...members.slice(n));
  }
  if (train.length === 0 || test.length === 0)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `A split of ${rows} rows with testSize ${testSize} leaves one side empty`,
    );
  return { train: shuffle(train), test: shuffle(test) };
}

/**
 * Row indices of `folds` folds for cross-validation: rows grouped by `keyOf` (a classification
 * label keeps its share in every fold), each group shuffled and dealt round-robin, so fold sizes
 * differ by at most one row per group.
 */
export function seededFolds(
  rows: number,
  keyOf: (row: number) => string | number,
  { folds, seed }: { folds: number; seed: number },
): number[][] {
  if (rows < folds)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `${folds} folds need at least ${folds} rows but the table has ${rows}`);
  const rng = new Random(seed);
  const groups = new Map<string | number, number[]>();
  for (let r = 0; r < rows; r++) {
    const key = keyOf(r);
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(r);
  }
  const out: number[][] = Array.from({ length: folds }, () => []);
  let next = 0;
  for (const key of [...groups.keys()].sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0))) {
    const members = groups.get(key)!;
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [members[i], members[j]] = [members[j]!, members[i]!];
    }
    // Dealing continues where the last group stopped, so small groups do not all start at fold 0.
    for (const r of members) out[next++ % folds]!.push(r);
  }
  return out;
}
