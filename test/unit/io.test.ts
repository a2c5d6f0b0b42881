/**
 * Save and load: our round trip is bit-exact and keeps the training configuration, tfjs's
 * loadLayersModel loads what we save, loadModel loads what tfjs saves and the tfjs fixtures,
 * writes are atomic, and broken files are coded errors.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { adam, dense, initializers, loadModel, regularizers, sequential, type Sequential } from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { errorOf } from '../helpers.js';
import { saveTfjs } from '../tfjs-artifacts.js';

/** tfjs and maas predictions on the same weights (different summation order). */
const TFJS_TOL = 2e-5;
const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'tfjs_layers');

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const temp = () => mkdtemp(join(tmpdir(), 'maas-io-'));

function model(seed: number): Sequential {
  return sequential({
    layers: [
      dense({
        units: 9,
        activation: 'relu',
        inputShape: [5],
        kernelInitializer: initializers.glorotUniform({ seed }),
        kernelRegularizer: regularizers.l2({ l2: 0.001 }),
      }),
      dense({
        units: 7,
        activation: 'leakyRelu',
        alpha: 0.2,
        kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }),
      }),
      dense({
        units: 4,
        activation: 'tanh',
        useBias: false,
        kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }),
      }),
      dense({ units: 3, activation: 'softmax', biasInitializer: initializers.randomNormal({ seed: seed + 3 }) }),
    ],
  });
}

const x = Array.from({ length: 6 }, (_, i) => Array.from({ length: 5 }, (_, j) => Math.sin(i * 5 + j) * 2));

/** Reads our saved files as tfjs model artifacts. */
async function asTfjsArtifacts(dir: string): Promise<tf.io.ModelArtifacts> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const group = json.weightsManifest[0];
  const data = await readFile(join(dir, group.paths[0].replace('./', '')));
  return {
    modelTopology: json.modelTopology,
    weightSpecs: group.weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  };
}

describe('save and load', () => {
  it('round-trips bit-exactly, with the training configuration', async () => {
    const dir = await temp();
    const m = model(1);
    m.compile({ optimizer: adam({ learningRate: 0.003 }), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    await m.fit(
      x,
      x.map((_, i) => [i % 3 === 0 ? 1 : 0, i % 3 === 1 ? 1 : 0, i % 3 === 2 ? 1 : 0]),
      { epochs: 3, batchSize: 2, verbose: 0, seed: 1 },
    );
    await m.save(dir);
    const loaded = await loadModel(dir);
    loaded
      .getWeights()
      .forEach((w, i) =>
        expect(Buffer.from(w.values.buffer).equals(Buffer.from(m.getWeights()[i]!.values.buffer))).toBe(true),
      );
    expect(loaded.predict(x).values).toEqual(m.predict(x).values);
    expect(loaded.layers.map((l) => [l.name, l.activation, l.alpha, l.useBias, l.kernelRegularizer?.l2 ?? 0])).toEqual(
      m.layers.map((l) => [l.name, l.activation, l.alpha, l.useBias, l.kernelRegularizer?.l2 ?? 0]),
    );
    // compiled from the file: it trains at once
    expect(
      loaded.trainOnBatch(x.slice(0, 2), [
        [1, 0, 0],
        [0, 1, 0],
      ]),
    ).toHaveLength(2);
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    expect(json.maas.signature).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 5] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }],
    });
    expect(json.maas.trainingConfig.optimizer).toMatchObject({ name: 'adam', learningRate: 0.003 });
    expect(json.maas.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('tfjs loadLayersModel loads what maas saves and predicts the same', async () => {
    const dir = await temp();
    const m = sequential({
      layers: [
        dense({ units: 8, activation: 'elu', inputShape: [5] }),
        dense({ units: 6, activation: 'sigmoid', kernelRegularizer: 'l1' }),
        dense({ units: 2, activation: 'softmax' }),
      ],
    });
    await m.save(dir);
    const theirs = await tf.loadLayersModel(tf.io.fromMemory(await asTfjsArtifacts(dir)));
    const want = (theirs.predict(tf.tensor2d(x)) as tf.Tensor).dataSync();
    const got = m.predict(x).values;
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(TFJS_TOL));
  });

  it('loadModel loads what tfjs saves (model.json + weights.bin, as tfjs-node writes them)', async () => {
    const dir = await temp();
    const theirs = tf.sequential({
      layers: [
        tf.layers.dense({ units: 6, inputShape: [5] }),
        tf.layers.leakyReLU({ alpha: 0.1 }),
        tf.layers.dense({ units: 2 }),
        tf.layers.activation({ activation: 'sigmoid' }),
      ],
    });
    await saveTfjs(theirs, dir);
    const ours = await loadModel(join(dir, 'model.json'));
    expect(ours.layers.map((l) => l.activation)).toEqual(['leakyRelu', 'sigmoid']);
    const want = (theirs.predict(tf.tensor2d(x)) as tf.Tensor).dataSync();
    ours.predict(x).values.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(TFJS_TOL));
  });

  it('folds BatchNormalization into the Dense before it, as tfjs predicts', async () => {
    const dir = await temp();
    const theirs = tf.sequential({
      layers: [
        tf.layers.dense({ units: 6, useBias: false, inputShape: [5] }),
        tf.layers.batchNormalization({ epsilon: 0.01 }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 4 }),
        tf.layers.batchNormalization({ center: false }),
        tf.layers.dense({ units: 2, activation: 'softmax' }),
      ],
    });
    // non-trivial moving statistics and affine parameters
    theirs.setWeights(
      theirs.weights.map((w, i) => {
        const size = w.shape.reduce((a, b) => a! * b!, 1)!;
        return tf.tensor(
          Float32Array.from({ length: size }, (_, j) =>
            w.name.includes('variance') ? 0.5 + ((i + j) % 3) : Math.sin(i * 7 + j),
          ),
          w.shape as number[],
        );
      }),
    );
    await saveTfjs(theirs, dir, 'weights.bin');
    const ours = await loadModel(dir);
    expect(ours.layers.map((l) => [l.units, l.activation, l.useBias])).toEqual([
      [6, 'relu', true],
      [4, 'linear', true],
      [2, 'softmax', true],
    ]);
    const want = (theirs.predict(tf.tensor2d(x)) as tf.Tensor).dataSync();
    ours.predict(x).values.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(TFJS_TOL));
  });

  it('passes a Flatten of a feature vector through (Keras InputLayer > Flatten > Dense)', async () => {
    const dir = await temp();
    const kernel = Float32Array.of(1, 2, 3, 4, 5, 6);
    await writeFile(join(dir, 'w.bin'), new Uint8Array(kernel.buffer));
    await writeFile(
      join(dir, 'model.json'),
      JSON.stringify({
        modelTopology: {
          class_name: 'Model',
          config: {
            layers: [
              { class_name: 'InputLayer', config: { name: 'in', batch_input_shape: [null, 3] }, inbound_nodes: [] },
              { class_name: 'Flatten', config: { name: 'flat' }, inbound_nodes: [[['in', 0, 0, {}]]] },
              {
                class_name: 'Dense',
                config: { name: 'd', units: 2, activation: 'linear', use_bias: false },
                inbound_nodes: [[['flat', 0, 0, {}]]],
              },
            ],
          },
        },
        weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'd/kernel', shape: [3, 2], dtype: 'float32' }] }],
      }),
    );
    expect((await loadModel(dir)).predict([[1, 1, 1]]).arraySync()).toEqual([[9, 12]]);
  });

  for (const [name, file] of [
    ['tfjs_examples_abalone', 'model.json'],
    ['ml5_balance_model1', 'model.json'],
    ['tfjs_rn_bundle_model_test', 'bundle_model_test.json'],
  ] as const) {
    it(`loads the tfjs fixture ${name} and reproduces its expected outputs`, async () => {
      const expected = JSON.parse(await readFile(join(FIXTURES, name, 'expected.json'), 'utf8'));
      const m = await loadModel(join(FIXTURES, name, file));
      const got = m.predict(expected.inputs).values;
      (expected.outputs as number[][])
        .flat()
        .forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThanOrEqual(expected.suggested_tolerance));
    });
  }
});

describe('atomic writes and broken files', () => {
  it('a failure between writing and the commit rename leaves the previous model intact', async () => {
    const dir = await temp();
    const first = model(10);
    await first.save(dir);
    const before = await readdir(dir);
    const second = model(20);
    await expect(
      second.save(dir, {
        beforeCommit: () => {
          throw new Error('simulated crash');
        },
      }),
    ).rejects.toThrow('simulated crash');
    const loaded = await loadModel(dir);
    expect(loaded.predict(x).values).toEqual(first.predict(x).values);
    const after = await readdir(dir);
    expect(after.filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(after.filter((f) => before.includes(f)).sort()).toEqual(before.sort());
    // the next successful save replaces it and removes the stale weights file
    await second.save(dir);
    expect((await loadModel(dir)).predict(x).values).toEqual(second.predict(x).values);
    expect((await readdir(dir)).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
  });

  it('refuses missing paths, corrupt weights and layers it cannot run, naming them', async () => {
    expect(await errorOf(() => loadModel('/nonexistent/maas-model'))).toMatch(/^MAAS_ERR_MODEL_NOT_FOUND: /);
    const dir = await temp();
    await model(3).save(dir);
    const bin = (await readdir(dir)).find((f) => f.endsWith('.bin'))!;
    const bytes = await readFile(join(dir, bin));
    bytes[10]! ^= 0xff;
    await writeFile(join(dir, bin), bytes);
    expect(await errorOf(() => loadModel(dir))).toMatch(
      /^MAAS_ERR_MODEL_INTEGRITY: The weights of .* do not match the SHA-256 recorded in maas.weightsSha256/,
    );
    const conv = join(await temp(), 'conv');
    await mkdir(conv);
    await writeFile(
      join(conv, 'model.json'),
      JSON.stringify({
        modelTopology: {
          class_name: 'Sequential',
          config: { layers: [{ class_name: 'Conv2D', config: { name: 'conv2d_1', filters: 8 } }] },
        },
        weightsManifest: [],
      }),
    );
    expect(await errorOf(() => loadModel(conv))).toBe(
      "MAAS_ERR_MODEL_FORMAT: Layer 'conv2d_1' of class Conv2D is not supported: maas runs stacks of Dense layers with fused activations",
    );
  });
});
