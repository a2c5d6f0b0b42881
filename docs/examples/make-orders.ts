/**
 * Writes docs/examples/data/orders.csv, the made-up data set the getting-started guide trains on:
 * 400 orders (price, category, shipping days, rating, some cells missing) and whether each was
 * returned, drawn from a fixed rule plus noise. Seeded, so the file is the same on every run.
 *
 *   npx tsx docs/examples/make-orders.ts
 */
import { writeFileSync } from 'node:fs';
import { Random } from 'maas';

const r = new Random(2026);
const categories = ['books', 'clothing', 'electronics', 'toys'];
const effect: Record<string, number> = { books: -0.8, clothing: 1.2, electronics: 0.4, toys: -0.2 };
const lines = ['price,category,shipping_days,rating,returned'];
for (let i = 0; i < 400; i++) {
  const price = Math.round(Math.exp(3 + r.normal() * 0.7) * 100) / 100;
  const category = categories[Math.floor(r.next() * categories.length)]!;
  const days = 1 + Math.floor(r.next() * 9);
  const rating = 1 + Math.floor(r.next() * 5);
  const score = 0.03 * (price - 25) + effect[category]! + 0.35 * (days - 5) - 0.8 * (rating - 3) + r.normal() * 0.5;
  const missingPrice = r.next() < 0.04;
  const missingRating = r.next() < 0.06;
  lines.push([missingPrice ? '' : price, category, days, missingRating ? '' : rating, score > 0 ? 1 : 0].join(','));
}
writeFileSync('docs/examples/data/orders.csv', lines.join('\n') + '\n');
console.log(`wrote docs/examples/data/orders.csv (${lines.length - 1} rows)`);
