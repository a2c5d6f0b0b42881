/**
 * Getting started, step 1: read a CSV, split it, prepare the training rows, train a small
 * classifier, evaluate it on the held-out rows and save it (with its preparation) as version 1
 * of model "orders" in a Triton-style repository.
 *
 *   npx tsx docs/examples/train.ts
 */
import { writeFile } from 'node:fs/promises';
import { adam, dense, initializers, prepare, readCsv, sequential, type Tensor } from 'maas';

const { glorotUniform } = initializers;

const REPO = 'docs/examples/out/repo';

// 1. Data: read the CSV (kinds inferred: `category` is a category, the rest numbers), split off
//    a fifth of the rows for the test (seeded, each class keeping its share), then fit the
//    preparation on the training rows only: the median fills missing cells, `category` is one-hot
//    encoded, everything is standardised, and `returned` becomes the label (classes 0 and 1).
const orders = await readCsv('docs/examples/data/orders.csv');
const { train, test } = orders.split({ testSize: 0.2, seed: 7, stratify: 'returned' });
const { pipeline, x, y, report } = prepare(train, { label: 'returned', task: 'classification', missing: 'median' });
console.log(`${report.rows} training rows, filled:`, report.filled);
const testSet = pipeline.apply(test); // the same transform, with the training rows' statistics

// 2. Model: pipeline.width inputs (the numbers plus one column per category) → 16 → 1.
//    Seeded initial weights (and the seeded shuffles below) make every run print the same figures.
const model = sequential({
  layers: [
    dense({
      units: 16,
      activation: 'relu',
      inputShape: [pipeline.width],
      kernelInitializer: glorotUniform({ seed: 1 }),
    }),
    dense({ units: 1, activation: 'sigmoid', kernelInitializer: glorotUniform({ seed: 2 }) }),
  ],
});
model.compile({ optimizer: adam({ learningRate: 0.01 }), loss: 'binaryCrossentropy', metrics: ['accuracy'] });

// 3. Train, then evaluate on rows the model has not seen.
const history = await model.fit(x, y!, {
  epochs: 40,
  batchSize: 32,
  validationSplit: 0.1,
  seed: 7,
  verbose: 0,
});
const valLoss = history.history.val_loss ?? [];
const [loss = NaN, accuracy = NaN] = (model.evaluate(testSet.x, testSet.y!) as Tensor[]).map((t) => t.dataSync()[0]);
console.log(`validation loss after 40 epochs: ${valLoss.at(-1)?.toFixed(3)}`);
console.log(`test loss ${loss.toFixed(3)}, accuracy ${(accuracy * 100).toFixed(1)}%`);

// 4. Save: the pipeline travels inside model.json, so the model and the service take raw records
//    and answer with the class names.
model.setPreparation(pipeline);
await model.save(`${REPO}/orders/1`);
await writeFile(
  `${REPO}/orders/config.json`,
  JSON.stringify({ max_batch_size: 64, dynamic_batching: { max_queue_delay_microseconds: 500 } }, null, 2),
);
console.log('labels of the first two test rows:', model.predictLabels(test.head(2)));
console.log(`saved ${REPO}/orders/1/model.json`);
