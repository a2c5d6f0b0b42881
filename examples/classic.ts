/**
 * The classic example, end to end: generate a data set with a known rule, train
 * 100 → 64 relu → 32 relu → 1 sigmoid with adam, evaluate on held-out rows, save, load, and
 * check the loaded model predicts exactly the same. Everything is seeded: the figure repeats.
 *
 *   npx tsx examples/classic.ts [dir]
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dense, initializers, loadModel, Random, sequential, tensor, trainTestSplit } from '../src/index.js';

/** What the example measured. */
export interface ClassicResult {
  loss: number;
  accuracy: number;
  identical: boolean;
  dir: string;
}

/** Rows of 100 normal features; the label is whether a fixed (seeded) linear score is positive. */
export function classicData(rows: number, seed: number): { x: Float32Array; y: Float32Array } {
  const r = new Random(seed);
  const w = Float32Array.from({ length: 100 }, () => r.normal());
  const x = Float32Array.from({ length: rows * 100 }, () => r.normal());
  const y = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    let score = 0;
    for (let j = 0; j < 100; j++) score += x[i * 100 + j]! * w[j]!;
    y[i] = score > 0 ? 1 : 0;
  }
  return { x, y };
}

/** Runs the example; prints with `print`. */
export async function runClassic(
  options: { seed?: number; dir?: string; print?: (line: string) => void } = {},
): Promise<ClassicResult> {
  const seed = options.seed ?? 42;
  const print = options.print ?? console.log;
  const { x, y } = classicData(5000, seed);
  const { xTrain, xTest, yTrain, yTest } = trainTestSplit(tensor(x, [5000, 100]), tensor(y, [5000, 1]), {
    testSize: 0.2,
    seed,
    stratify: true,
  });
  const model = sequential({
    layers: [
      dense({
        units: 64,
        activation: 'relu',
        inputShape: [100],
        kernelInitializer: initializers.glorotUniform({ seed }),
      }),
      dense({ units: 32, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }) }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }) }),
    ],
  });
  model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
  await model.fit(xTrain, yTrain, { epochs: 10, batchSize: 32, seed, verbose: options.print ? 0 : 1 });
  const [loss, accuracy] = (model.evaluate(xTest, yTest) as { dataSync(): Float32Array }[]).map(
    (t) => t.dataSync()[0]!,
  );
  print(`held-out: loss ${loss!.toFixed(4)}, accuracy ${(accuracy! * 100).toFixed(1)}% (chance is about 50%)`);
  // A sample of training rows travels with the model: SHAP and LIME compare against it.
  model.setExplanationBackground(xTrain, { maxRows: 100, seed });
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'maas-classic-')));
  await model.save(dir);
  const loaded = await loadModel(dir);
  const before = model.predict(xTest).values;
  const after = loaded.predict(xTest).values;
  const identical = before.length === after.length && before.every((v, i) => Object.is(v, after[i]));
  print(`saved to ${dir}; loaded model predictions ${identical ? 'identical' : 'DIFFERENT'} on ${yTest.shape[0]} rows`);
  return { loss: loss!, accuracy: accuracy!, identical, dir };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runClassic({ dir: process.argv[2] });
}
