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
