/**
 * Model selection: three candidates for the orders table compared by 5-fold cross-validation
 * (the preparation fitted on each fold's training rows only), the winner trained again on every
 * row and saved with its pipeline.
 *
 *   npx tsx docs/examples/select.ts
 */
import { readCsv, selectModel } from 'maas';

const table = await readCsv('docs/examples/data/orders.csv');
const selection = await selectModel(
  [
    { layers: [{ units: 8 }], epochs: 30 },
    { layers: [{ units: 32 }, { units: 16 }], epochs: 30, learningRate: 0.003 },
    {
      name: 'wide-tanh',
      layers: [{ units: 64, activation: 'tanh' }],
      epochs: 30,
      optimizer: 'sgd',
      learningRate: 0.05,
    },
  ],
  table,
  { label: 'returned', folds: 5, seed: 1, preparation: { task: 'classification' } },
);
for (const r of selection.results) {
  const { mean, sd } = r.metrics.accuracy!;
  console.log(`${r.name.padEnd(14)} accuracy ${mean.toFixed(3)} ± ${sd.toFixed(3)}, ${r.params} weights`);
}
console.log(`winner: ${selection.winner.name}`);
await selection.model.save('docs/examples/out/selected');
