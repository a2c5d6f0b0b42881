/**
 * Import: a model saved by TensorFlow.js (tfjs-node's abalone example, 8 → 50 sigmoid → 50
 * sigmoid → 1), loaded, summarised, run, fine-tuned one epoch and saved again as tfjs-layers files.
 *
 *   npx tsx docs/examples/import-tfjs.ts
 */
import { loadModel, tensor } from 'maas';

const model = await loadModel('test/fixtures/tfjs_layers/tfjs_examples_abalone/model.json');
model.summary();

// Three abalone: sex (F=0, M=1, I=2), length, diameter, height and four weights.
const x = tensor([
  [1, 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15],
  [1, 0.35, 0.265, 0.09, 0.2255, 0.0995, 0.0485, 0.07],
  [0, 0.53, 0.42, 0.135, 0.677, 0.2565, 0.1415, 0.21],
]);
console.log(
  'rings:',
  Array.from(model.predict(x).dataSync(), (v) => v.toFixed(3)),
);

// An imported model is a Sequential like any other: compile it and it trains.
model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
const history = await model.fit(x, tensor([[15], [7], [9]]), { epochs: 1, verbose: 0 });
console.log('loss after one step:', history.history.loss?.[0]?.toFixed(3));
await model.save('docs/examples/out/abalone');
