/**
 * Data larger than memory: csvDataset fits the preparation in one pass over the file, then
 * fitDataset reads it again each epoch in a thread of its own, shuffling through a bounded
 * buffer. A second file (here the same one, standing in for a validation file) is prepared with
 * the training file's pipeline.
 *
 *   npx tsx docs/examples/fit-dataset.ts [file.csv]
 */
import { csvDataset, dense, initializers, sequential } from 'maas';

const file = process.argv[2] ?? 'docs/examples/data/orders.csv';

// One streaming pass: kinds from the first 10 000 rows, then means, variances and categories.
const train = await csvDataset(file, {
  label: 'returned',
  task: 'classification',
  missing: 'mean', // 'median' needs every value in memory: a streaming fit refuses it
  batchSize: 64,
  shuffle: 10_000, // rows in the shuffle buffer
  seed: 7,
});
console.log(`${train.rows} rows, ${train.width} features, classes ${train.pipeline.classes?.join(', ')}`);
const validation = await csvDataset(file, { pipeline: train.pipeline, batchSize: 1024, shuffle: false });

const model = sequential({
  layers: [
    dense({
      units: 32,
      activation: 'relu',
      inputShape: [train.width],
      kernelInitializer: initializers.glorotUniform({ seed: 1 }),
    }),
    dense({ units: 2, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
  ],
});
model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
const history = await model.fitDataset(train, { epochs: 30, validationData: validation, verbose: 0 });
const accuracy = history.history.val_acc!;
console.log(`val_acc ${accuracy[0]!.toFixed(3)} after the first epoch, ${accuracy.at(-1)!.toFixed(3)} after the last`);
model.setPreparation(train.pipeline); // saved with the model, as prepare()'s pipeline would be
