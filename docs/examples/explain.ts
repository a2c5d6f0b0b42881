/**
 * Explanations: train a small classifier on the orders table, then ask why it predicts what it
 * does for one order, with integrated gradients, Kernel SHAP and LIME; attributions per encoded
 * feature and summed per raw column. Then the same model served with explanations enabled in its
 * config.json.
 *
 *   npx tsx docs/examples/explain.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import {
  adam,
  dense,
  initializers,
  integratedGradients,
  kernelShap,
  lime,
  prepare,
  readCsv,
  sequential,
  type Explanation,
} from 'maas';

const { glorotUniform } = initializers;
const REPO = 'docs/examples/out/explain-repo';

const orders = await readCsv('docs/examples/data/orders.csv');
const { pipeline, x, y } = prepare(orders, { label: 'returned', task: 'classification', missing: 'median' });
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
model.compile({ optimizer: adam({ learningRate: 0.01 }), loss: 'binaryCrossentropy' });
await model.fit(x, y!, { epochs: 30, batchSize: 32, verbose: 0, shuffle: false });
model.setPreparation(pipeline);

// One order, as the model sees it (the pipeline's features), and 50 training rows as background.
const order = pipeline.transform([{ price: 45, category: 'books', shipping_days: 5, rating: 3 }]);
const background = x.subarray(0, 50 * pipeline.width);

function show(e: Explanation): void {
  const ranked = [...e.columns!].sort((a, b) => Math.abs(b.attribution) - Math.abs(a.attribution));
  const check =
    e.completenessGap !== undefined
      ? `completeness gap ${e.completenessGap.toExponential(1)}`
      : e.additivityGap !== undefined
        ? `additivity gap ${e.additivityGap.toExponential(1)}`
        : `surrogate R² ${e.r2!.toFixed(3)}`;
  console.log(`${e.method}: f(x) = ${e.value.toFixed(3)} from ${e.base.toFixed(3)} (${check})`);
  for (const c of ranked)
    console.log(`  ${c.column.padEnd(14)} ${c.attribution >= 0 ? '+' : ''}${c.attribution.toFixed(4)}`);
}

show(integratedGradients(model, order, { steps: 50 })[0]!); // from the all-zeros (mean) row
show(kernelShap(model, order, { background, seed: 1 })[0]!);
show(lime(model, order, { background, samples: 2000, seed: 1 })[0]!);

// Served: explain_method enables the extension; options and a background file are optional.
await mkdir(`${REPO}/orders`, { recursive: true });
await model.save(`${REPO}/orders/1`);
await writeFile(
  `${REPO}/orders/config.json`,
  JSON.stringify({
    parameters: {
      explain_method: { string_value: 'kernelShap' },
      explain_options: { string_value: JSON.stringify({ nsamples: 512, seed: 1 }) },
      explain_background: { string_value: 'background.json' },
    },
  }),
);
await writeFile(`${REPO}/orders/background.json`, JSON.stringify(orders.head(50).toRecords()));
console.log(`wrote ${REPO}: npx maas serve --model-repository ${REPO}`);
