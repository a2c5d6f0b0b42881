/**
 * Builds the bundled default repository `models/` that `npm start` serves: trains the classic
 * example model (100 → 64 relu → 32 relu → 1 sigmoid) with maas's own code, seeded, and writes
 * it as version 1 of model `classic` with its config.json; then quantizes it to int8 with
 * calibration rows and writes that as version 1 of `classic_int8`. Both carry their training
 * history and a background of 100 training rows, and explain with Kernel SHAP.
 *
 *   npx tsx scripts/make-default-repository.ts [repositoryDir]
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { classicData, runClassic } from '../examples/classic.js';
import { compareQuantized, formatReport, loadModel, quantize, tensor, trainTestSplit } from '../src/index.js';

const root = resolve(process.argv[2] ?? 'models');
const modelDir = join(root, 'classic');
const int8Dir = join(root, 'classic_int8');
await rm(modelDir, { recursive: true, force: true });
await rm(int8Dir, { recursive: true, force: true });
await mkdir(modelDir, { recursive: true });
const result = await runClassic({ dir: join(modelDir, '1'), print: (line) => console.log(line) });
const config = {
  name: 'classic',
  max_batch_size: 256,
  input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [100] }],
  output: [{ name: 'output', data_type: 'TYPE_FP32', dims: [1] }],
  version_policy: { latest: { num_versions: 1 } },
  // No added delay: requests that queue while every worker is busy are batched together.
  dynamic_batching: { max_queue_delay_microseconds: 0 },
  // POST …/explain answers with Kernel SHAP against the background saved with the model.
  parameters: { explain_method: { string_value: 'kernelShap' } },
};
await writeFile(join(modelDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
console.log(`wrote ${modelDir} (held-out accuracy ${(result.accuracy * 100).toFixed(1)}%)`);

// int8: calibrate on training rows, report on the example's held-out rows (the same seeded split), save beside it.
const fp32 = await loadModel(join(modelDir, '1'));
const { x, y } = classicData(5000, 42);
const { xTrain, xTest, yTest } = trainTestSplit(tensor(x, [5000, 100]), tensor(y, [5000, 1]), {
  testSize: 0.2,
  seed: 42,
  stratify: true,
});
const int8 = quantize(fp32, {
  calibrationData: tensor(xTrain.dataSync().subarray(0, 1000 * 100), [1000, 100]),
  method: 'minmax',
});
for (const line of formatReport(compareQuantized(fp32, int8, xTest, yTest))) console.log(line);
// A sample request for the README and the serve banner: the first held-out row of each class that
// the model classifies correctly (it gets 92.6% of them right).
const labels = yTest.dataSync();
const predicted = fp32.predict(xTest).dataSync();
const firstRight = (label: number) => labels.findIndex((l, i) => l === label && predicted[i]! > 0.5 === (label === 1));
const rows = [firstRight(1), firstRight(0)].map((i) =>
  Array.from(xTest.dataSync().subarray(i * 100, (i + 1) * 100), (v) => Number(v.toFixed(4))),
);
const sample = { id: 'sample', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 100], data: rows }] };
await writeFile(join(modelDir, 'sample-request.json'), JSON.stringify(sample) + '\n');
await mkdir(int8Dir, { recursive: true });
await int8.save(join(int8Dir, '1'));
await writeFile(join(int8Dir, 'config.json'), JSON.stringify({ ...config, name: 'classic_int8' }, null, 2) + '\n');
console.log(`wrote ${int8Dir}`);
