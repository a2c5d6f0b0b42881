/**
 * Getting started, step 1: read a CSV, prepare it, train a small classifier, evaluate it on
 * held-out rows and save it as version 1 of model "orders" in a Triton-style repository.
 *
 *   npx tsx docs/examples/train.ts
 */
import { writeFile } from 'node:fs/promises';
import { adam, dense, initializers, loadCsv, prepare, sequential, tensor, trainTestSplit, type Tensor } from 'maas';

const { glorotUniform } = initializers;

const REPO = 'docs/examples/out/repo';

// 1. Data: every column but `returned` is a feature; missing cells are filled with the median,
//    `category` is one-hot encoded, and everything is standardised.
const { features, target } = await loadCsv('docs/examples/data/orders.csv', { target: 'returned' });
const { pipeline, x, kept, report } = prepare(features, { missing: 'median', scale: 'standard' });
console.log(`${report.rows} rows, filled:`, report.filled);
const y = Float32Array.from(kept, (row) => Number(target!.values[row]));
const rows = kept.length;
const split = trainTestSplit(tensor(x, [rows, pipeline.width]), tensor(y, [rows, 1]), {
  testSize: 0.2,
  seed: 7,
  stratify: true,
});

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
const history = await model.fit(split.xTrain, split.yTrain, {
  epochs: 40,
  batchSize: 32,
  validationSplit: 0.1,
  seed: 7,
  verbose: 0,
});
const valLoss = history.history.val_loss ?? [];
const [loss = NaN, accuracy = NaN] = (model.evaluate(split.xTest, split.yTest) as Tensor[]).map((t) => t.dataSync()[0]);
console.log(`validation loss after 40 epochs: ${valLoss.at(-1)?.toFixed(3)}`);
console.log(`test loss ${loss.toFixed(3)}, accuracy ${(accuracy * 100).toFixed(1)}%`);

// 4. Save: the pipeline travels inside model.json, so raw rows can be prepared later.
model.setPreparation(pipeline);
await model.save(`${REPO}/orders/1`);
await writeFile(
  `${REPO}/orders/config.json`,
  JSON.stringify({ max_batch_size: 64, dynamic_batching: { max_queue_delay_microseconds: 500 } }, null, 2),
);
console.log(`saved ${REPO}/orders/1/model.json`);
