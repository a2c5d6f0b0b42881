/**
 * Writes a seeded classification table as CSV, of about the size asked for, for the streaming
 * training bench: ten numeric columns (two with missing cells), a 6-way and a 24-way category,
 * an ISO date, and a 3-class label that depends on them (so training has something to learn).
 *
 *   tsx bench/make-table-csv.ts OUT.csv [--mb 2048] [--seed 7]
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { Random } from '../src/core/random.js';

const REGIONS = ['north', 'south', 'east', 'west', 'centre', 'islands'];
const PRODUCTS = Array.from({ length: 24 }, (_, i) => `p${String(i).padStart(2, '0')}`);
const CLASSES = ['low', 'mid', 'high'];
const DAY_MS = 86_400_000;
const START = Date.UTC(2020, 0, 1);

/** The header of the table. */
export const TABLE_HEADER = [...Array.from({ length: 10 }, (_, i) => `x${i}`), 'region', 'product', 'day', 'label'];

/** One row of the table, as CSV text with its newline. */
export function tableRow(rng: Random): string {
  const x = Array.from({ length: 10 }, () => rng.normal());
  const region = Math.floor(rng.next() * REGIONS.length);
  const product = Math.floor(rng.next() * PRODUCTS.length);
  const day = Math.floor(rng.next() * 1500);
  const score =
    x[0]! - 0.8 * x[1]! + 0.5 * x[2]! * x[3]! + (region % 3) * 0.4 - (product % 5) * 0.2 + rng.normal() * 0.3;
  const label = CLASSES[score < -0.5 ? 0 : score < 0.7 ? 1 : 2]!;
  const cells = x.map((v, i) => ((i === 4 || i === 7) && rng.next() < 0.03 ? '' : v.toFixed(4)));
  const date = new Date(START + day * DAY_MS).toISOString().slice(0, 10);
  return `${cells.join(',')},${REGIONS[region]},${PRODUCTS[product]},${date},${label}\n`;
}

/** Writes rows until the file holds at least `bytes`; returns the rows written. */
export async function writeTableCsv(path: string, bytes: number, seed: number): Promise<number> {
  const out = createWriteStream(path);
  const rng = new Random(seed);
  let written = 0;
  let rows = 0;
  let chunk = `${TABLE_HEADER.join(',')}\n`;
  while (written < bytes) {
    for (let i = 0; i < 2000; i++) chunk += tableRow(rng);
    rows += 2000;
    written += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
    chunk = '';
  }
  out.end();
  await once(out, 'finish');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: tsx bench/make-table-csv.ts OUT.csv [--mb 2048] [--seed 7]');
    process.exit(2);
  }
  const option = (name: string, fallback: number) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const started = performance.now();
  const rows = await writeTableCsv(path, option('--mb', 2048) * 2 ** 20, option('--seed', 7));
  console.log(`${path}: ${rows} rows in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
