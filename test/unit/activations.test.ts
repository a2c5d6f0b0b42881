/**
 * The activations beyond the first seven, end to end: model.json files tfjs writes (dense
 * activations, tf.layers.reLU({maxValue}), thresholdedReLU) load and predict as tfjs does; what
 * maas saves tfjs loads, and maas reloads bit-exactly; a Keras .h5 written here with h5wasm (a
 * ReLU layer with max_value, negative_slope and threshold, Keras's snake_case 'hard_sigmoid')
 * imports against a float64 loop; ONNX export runs in onnxruntime and imports back; the int8
 * path follows fp32; a short fit lowers the loss with each; bad parameters are coded errors.
 */
import * as tf from '@tensorflow/tfjs';
import h5wasm from 'h5wasm/node';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  dense,
  initializers,
  loadModel,
  quantize,
  sequential,
  sgd,
  type ActivationName,
  type Sequential,
} from '../../src/index.js';
import { createOrtSession } from '../../bench/peers/onnx.js';
import { TEST_SEED, errorOf, rng } from '../helpers.js';
import { saveTfjs } from '../tfjs-artifacts.js';

/** tfjs and maas on the same weights: different summation order, tfjs's own erf approximation. */
const TFJS_TOL = 3e-5;
/** maas against a float64 loop over the same float32 weights. */
const F64_TOL = 2e-5;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const temp = () => mkdtemp(join(tmpdir(), 'maas-act-'));

/** Inputs wide enough (±3 through the first layer) to reach every activation's curved part. */
const x = Array.from({ length: 9 }, (_, i) => Array.from({ length: 5 }, (_, j) => Math.sin(i * 5 + j + 0.5) * 3));

const NEW_TFJS: ActivationName[] = [
  'relu6',
  'hardSigmoid',
  'swish',
  'gelu',
  'softplus',
  'softsign',
  'selu',
  'geluTanh',
];
/** tfjs's spelling of each (only geluTanh differs). */
const tfjsName = (act: ActivationName): string => (act === 'geluTanh' ? 'gelu_new' : act);

/** Reads our saved files as tfjs model artifacts. */
async function asTfjsArtifacts(dir: string): Promise<tf.io.ModelArtifacts> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const group = json.weightsManifest[0]!;
  const data = await readFile(join(dir, group.paths[0]!.replace('./', '')));
  return {
    modelTopology: json.modelTopology,
    weightSpecs: group.weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!))))
      expect.fail(`${what} (seed ${TEST_SEED}): output ${i}: got ${got[i]}, want ${want[i]}`);
  }
}

/** A 5 → 8 → 6 → 3 model with `act` on both hidden layers (and kerasRelu's parameters). */
function ours(act: ActivationName, seed: number, extra: Record<string, number> = {}): Sequential {
  return sequential({
    layers: [
      dense({
        units: 8,
        activation: act,
        inputShape: [5],
        kernelInitializer: initializers.glorotUniform({ seed }),
        ...extra,
      }),
      dense({ units: 6, activation: act, kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }), ...extra }),
      dense({ units: 3, kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }) }),
    ],
  });
}

describe('tfjs model.json files', () => {
  it('loads what tfjs saves with each new dense activation and predicts as tfjs does', async () => {
    for (const act of NEW_TFJS) {
      const dir = await temp();
      const theirs = tf.sequential({
        layers: [
          tf.layers.dense({
            units: 8,
            inputShape: [5],
            activation: tfjsName(act) as never,
            biasInitializer: 'randomNormal',
          }),
          tf.layers.dense({ units: 4, activation: tfjsName(act) as never }),
        ],
      });
      await saveTfjs(theirs, dir);
      const loaded = await loadModel(join(dir, 'model.json'));
      expect(loaded.layers.map((l) => l.activation)).toEqual([act, act]);
      const want = (theirs.predict(tf.tensor2d(x)) as tf.Tensor).dataSync();
      expectClose(loaded.predict(x).values, want, TFJS_TOL, `tfjs ${act}`);
    }
  });

  it('folds tf.layers.reLU({maxValue}), thresholdedReLU and an Activation layer into the Dense before them', async () => {
    const dir = await temp();
    const theirs = tf.sequential({
      layers: [
        tf.layers.dense({ units: 8, inputShape: [5], biasInitializer: 'randomNormal' }),
        tf.layers.reLU({ maxValue: 6 }),
        tf.layers.dense({ units: 7, biasInitializer: 'randomNormal' }),
        tf.layers.reLU({ maxValue: 0.8 }),
        tf.layers.dense({ units: 6, biasInitializer: 'randomNormal' }),
        tf.layers.thresholdedReLU({ theta: 0.3 }),
        tf.layers.dense({ units: 3 }),
        tf.layers.activation({ activation: 'softsign' }),
      ],
    });
    await saveTfjs(theirs, dir);
    const loaded = await loadModel(join(dir, 'model.json'));
    expect(loaded.layers.map((l) => [l.activation, l.maxValue, l.threshold])).toEqual([
      ['relu6', null, 0],
      ['kerasRelu', 0.8, 0],
      ['kerasRelu', null, 0.3],
      ['softsign', null, 0],
    ]);
    // Scaled up so the clips and the threshold are all reached.
    const big = x.map((r) => r.map((v) => v * 3));
    const want = (theirs.predict(tf.tensor2d(big)) as tf.Tensor).dataSync();
    expectClose(loaded.predict(big).values, want, TFJS_TOL, 'tfjs ReLU layers');
  });

  it('tfjs loads what maas saves with each activation it has, and predicts the same', async () => {
    // tfjs's loader camel-cases the 'gelu_new' it writes itself into 'geluNew', a name it does not
    // register, so tfjs cannot load any gelu_new model (its own included): geluTanh is left out.
    const cases: [string, Sequential][] = [
      ...NEW_TFJS.filter((act) => act !== 'geluTanh').map((act, i): [string, Sequential] => [act, ours(act, 10 + i)]),
      ['relu maxValue 0.9', ours('relu', 30, { maxValue: 0.9 })],
      ['relu threshold 0.2', ours('relu', 31, { threshold: 0.2 })],
    ];
    for (const [what, m] of cases) {
      const dir = await temp();
      await m.save(dir);
      const theirs = await tf.loadLayersModel(tf.io.fromMemory(await asTfjsArtifacts(dir)));
      const want = (theirs.predict(tf.tensor2d(x)) as tf.Tensor).dataSync();
      expectClose(m.predict(x).values, want, TFJS_TOL, `tfjs loads maas ${what}`);
    }
  });

  it('round-trips every activation bit-exactly, Keras ReLU with all three parameters included', async () => {
    const cases: Sequential[] = [
      ...NEW_TFJS.map((act, i) => ours(act, 40 + i)),
      ours('exponential', 50),
      ours('relu', 51, { maxValue: 1.5, threshold: 0.25, negativeSlope: 0.1 }),
      ours('kerasRelu', 52, { alpha: 0.05, threshold: 0.5 }),
    ];
    for (const m of cases) {
      const dir = await temp();
      await m.save(dir);
      const loaded = await loadModel(dir);
      const describe = (s: Sequential) => s.layers.map((l) => [l.activation, l.alpha, l.maxValue, l.threshold]);
      expect(describe(loaded)).toEqual(describe(m));
      expect(loaded.predict(x).values).toEqual(m.predict(x).values);
    }
  });
});

/** Keras's ReLU, f64: x > t ? min(x, max) : slope·(x − t). */
const kerasRelu = (v: number, max: number, slope: number, t: number) => (v > t ? Math.min(v, max) : slope * (v - t));

/** Dense weights of a Keras file: layer name, kernel, bias, fan-in, units. */
type KerasDenseWeights = readonly [string, Float32Array, Float32Array, number, number];

/**
 * Writes a Keras whole-model .h5 as Keras 2's model.save lays it out: the model_config
 * attribute, and model_weights/<layer>/<layer>/{kernel:0,bias:0} with weight_names.
 */
async function writeKerasH5(
  config: { config: { layers: { config: { name: string } }[] } },
  dense: readonly KerasDenseWeights[],
  kerasVersion = '2.12.0',
): Promise<string> {
  await h5wasm.ready;
  const path = join(await temp(), 'model.h5');
  const file = new h5wasm.File(path, 'w');
  file.create_attribute('model_config', JSON.stringify(config));
  file.create_attribute('keras_version', kerasVersion);
  file.create_attribute('backend', 'tensorflow');
  const weights = file.create_group('model_weights');
  const names = config.config.layers.map((l) => l.config.name).filter((n) => !n.startsWith('input'));
  weights.create_attribute('layer_names', names);
  for (const [name, kernel, bias, fanIn, units] of dense) {
    const g = weights.create_group(name);
    g.create_attribute('weight_names', [`${name}/kernel:0`, `${name}/bias:0`]);
    const inner = g.create_group(name);
    inner.create_dataset({ name: 'kernel:0', data: kernel, shape: [fanIn, units], dtype: '<f' });
    inner.create_dataset({ name: 'bias:0', data: bias, shape: [units], dtype: '<f' });
  }
  for (const name of names.filter((n) => !dense.some(([d]) => d === n)))
    weights.create_group(name).create_attribute('weight_names', []);
  file.close();
  return path;
}

describe('a Keras .h5 written with h5wasm', () => {
  it('imports a ReLU layer with max_value, negative_slope and threshold and a hard_sigmoid Activation', async () => {
    const r = rng(77);
    const k1 = Float32Array.from({ length: 4 * 6 }, () => r.uniform(-1, 1));
    const b1 = Float32Array.from({ length: 6 }, () => r.uniform(-0.5, 0.5));
    const k2 = Float32Array.from({ length: 6 * 3 }, () => r.uniform(-1, 1));
    const b2 = Float32Array.from({ length: 3 }, () => r.uniform(-0.5, 0.5));
    const denseCfg = (name: string, units: number, extra: object = {}) => ({
      class_name: 'Dense',
      config: { name, units, activation: 'linear', use_bias: true, trainable: true, dtype: 'float32', ...extra },
    });
    const config = {
      class_name: 'Sequential',
      config: {
        name: 'sequential',
        layers: [
          { class_name: 'InputLayer', config: { batch_input_shape: [null, 4], dtype: 'float32', name: 'input_1' } },
          denseCfg('dense_1', 6),
          { class_name: 'ReLU', config: { name: 're_lu', max_value: 1.25, negative_slope: 0.1, threshold: 0.2 } },
          denseCfg('dense_2', 3),
          { class_name: 'Activation', config: { name: 'activation', activation: 'hard_sigmoid' } },
        ],
      },
    };
    const path = await writeKerasH5(config, [
      ['dense_1', k1, b1, 4, 6],
      ['dense_2', k2, b2, 6, 3],
    ]);

    const model = await loadModel(path);
    expect(model.layers.map((l) => [l.activation, l.alpha, l.maxValue, l.threshold])).toEqual([
      ['kerasRelu', 0.1, 1.25, 0.2],
      ['hardSigmoid', 0, null, 0],
    ]);
    const inputs = Array.from({ length: 7 }, (_, i) => Array.from({ length: 4 }, (_, j) => Math.cos(i * 4 + j) * 2.5));
    const want = inputs.flatMap((row) => {
      const h = Array.from({ length: 6 }, (_, j) => {
        let s = b1[j]!;
        for (let p = 0; p < 4; p++) s += row[p]! * k1[p * 6 + j]!;
        return kerasRelu(s, Math.fround(1.25), Math.fround(0.1), Math.fround(0.2));
      });
      return Array.from({ length: 3 }, (_, j) => {
        let s = b2[j]!;
        for (let p = 0; p < 6; p++) s += h[p]! * k2[p * 3 + j]!;
        return Math.min(Math.max(0.2 * s + 0.5, 0), 1);
      });
    });
    // Every branch of the ReLU is taken by some hidden unit.
    expectClose(model.predict(inputs).values, want, F64_TOL, 'Keras h5 ReLU');
  });

  it("refuses Keras 3's hard_sigmoid (x/6 + 0.5), which is not tf.keras 2's", async () => {
    const k = new Float32Array(2 * 2).fill(0.5),
      b = new Float32Array(2);
    const config = {
      class_name: 'Sequential',
      config: {
        name: 'sequential',
        layers: [
          {
            class_name: 'Dense',
            config: {
              name: 'dense',
              units: 2,
              activation: 'hard_sigmoid',
              use_bias: true,
              batch_input_shape: [null, 2],
            },
          },
        ],
      },
    };
    const keras2 = await loadModel(await writeKerasH5(config, [['dense', k, b, 2, 2]], '2.15.0'));
    expect(keras2.layers[0]!.activation).toBe('hardSigmoid');
    const keras3 = await writeKerasH5(config, [['dense', k, b, 2, 2]], '3.3.3');
    const err = await errorOf(() => loadModel(keras3));
    expect(err).toMatch(/MAAS_ERR_MODEL_FORMAT.*hard_sigmoid/s);
  });

  it('refuses a ReLU with a negative max_value, with a coded error naming the layer', async () => {
    const file = join(await temp(), 'model.json');
    const topology = {
      class_name: 'Sequential',
      config: {
        name: 's',
        layers: [
          { class_name: 'Dense', config: { name: 'd', units: 2, activation: 'linear', batch_input_shape: [null, 2] } },
          { class_name: 'ReLU', config: { name: 'r', max_value: -1 } },
        ],
      },
    };
    await writeFile(file, JSON.stringify({ modelTopology: topology, weightsManifest: [{ paths: [], weights: [] }] }));
    const err = await errorOf(() => loadModel(file));
    expect(err).toContain('MAAS_ERR_MODEL_FORMAT');
    expect(err).toContain("'r'");
  });
});

describe('ONNX', () => {
  it('exports each activation so onnxruntime computes what maas does, and imports it back', async () => {
    const cases: [string, Sequential][] = [
      ...NEW_TFJS.map((act, i): [string, Sequential] => [act, ours(act, 60 + i)]),
      ['exponential', ours('exponential', 70)],
      ['kerasRelu', ours('relu', 71, { maxValue: 1.1, threshold: 0.3, negativeSlope: 0.2 })],
      ['relu threshold', ours('relu', 72, { threshold: 0.4 })],
    ];
    const batch = x.length;
    const flat = Float32Array.from(x.flat());
    for (const [what, m] of cases) {
      const bytes = m.toOnnx();
      const session = await createOrtSession(bytes, 1);
      try {
        expectClose(await session.run(flat, batch), m.predict(x).values, 1e-5, `onnxruntime ${what}`);
      } finally {
        await session.release();
      }
      const dir = await temp();
      await writeFile(join(dir, 'model.onnx'), bytes);
      // Single ops (Clip, HardSigmoid, Softplus, Softsign, Selu, Exp) and swish's Sigmoid + Mul
      // import; gelu, geluTanh and Keras ReLU are written out of several ops and are refused.
      if (['relu6', 'hardSigmoid', 'swish', 'softplus', 'softsign', 'selu', 'exponential'].includes(what)) {
        const back = await loadModel(join(dir, 'model.onnx'));
        expect(back.layers.map((l) => l.activation)).toEqual(m.layers.map((l) => l.activation));
        expectClose(back.predict(x).values, m.predict(x).values, 1e-6, `ONNX import ${what}`);
      } else {
        expect(await errorOf(() => loadModel(join(dir, 'model.onnx')))).toContain('MAAS_ERR_MODEL_FORMAT');
      }
    }
  });
});

describe('int8 and training', () => {
  it('quantized models with each activation follow the fp32 model', () => {
    const acts: [ActivationName, Record<string, number>][] = [
      ...NEW_TFJS.map((a): [ActivationName, Record<string, number>] => [a, {}]),
      ['exponential', {}],
      ['relu', { maxValue: 1.5, threshold: 0.2, negativeSlope: 0.1 }],
    ];
    for (const [act, extra] of acts) {
      const m = ours(act, 80, extra);
      const want = m.predict(x).values;
      const q = quantize(m, { calibrationData: x });
      const got = q.predict(x).values;
      // u8 activations over each layer's calibrated range: a few percent of the output range.
      const range = Math.max(...want) - Math.min(...want);
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i]! - want[i]!) <= 0.08 * range + 1e-3))
          expect.fail(`int8 ${act} (seed ${TEST_SEED}): output ${i}: ${got[i]} vs fp32 ${want[i]}`);
      }
      q.dispose();
      m.dispose();
    }
  });

  it('the int8 ONNX export of each runs in onnxruntime as maas runs it (dynamic quantization)', async () => {
    const acts: [ActivationName, Record<string, number>][] = [
      ...NEW_TFJS.map((a): [ActivationName, Record<string, number>] => [a, {}]),
      ['exponential', {}],
      ['relu', { maxValue: 1.5, threshold: 0.2, negativeSlope: 0.1 }],
    ];
    for (const [act, extra] of acts) {
      // Two stacked exponential layers overflow float32 on the full-range inputs.
      const xs = act === 'exponential' ? x.map((r) => r.map((v) => v * 0.3)) : x;
      const m = ours(act, 85, extra);
      const q = quantize(m, { method: 'dynamic' });
      const session = await createOrtSession(q.toOnnx(), 1);
      try {
        // Same integers; the float epilogue rounds once in maas (fma) and twice in the graph.
        const want = q.predict(xs).values;
        expectClose(await session.run(Float32Array.from(xs.flat()), xs.length), want, 1e-5, `int8 onnxruntime ${act}`);
      } finally {
        await session.release();
      }
      q.dispose();
      m.dispose();
    }
  });

  it('training steps give the weights tfjs gives, with each tfjs activation', async () => {
    // 20 float32 SGD steps in two implementations with different summation orders.
    const TFJS_WEIGHT_TOL = 2e-5;
    const r = rng(95);
    const xs = Float32Array.from({ length: 80 * 7 }, () => r.normal());
    const ys = Float32Array.from({ length: 80 * 3 }, () => r.normal());
    for (const act of NEW_TFJS) {
      const m = sequential({
        layers: [
          dense({
            units: 12,
            activation: act,
            inputShape: [7],
            kernelInitializer: initializers.glorotUniform({ seed: 3 }),
            biasInitializer: initializers.randomUniform({ seed: 4, minval: -0.1, maxval: 0.1 }),
          }),
          dense({ units: 3, kernelInitializer: initializers.glorotUniform({ seed: 5 }) }),
        ],
      });
      const theirs = tf.sequential({
        layers: [
          tf.layers.dense({ units: 12, activation: tfjsName(act) as never, inputShape: [7] }),
          tf.layers.dense({ units: 3 }),
        ],
      });
      theirs.setWeights(m.getWeights().map((w) => tf.tensor(w.values, [...w.shape])));
      m.compile({ optimizer: sgd({ learningRate: 0.05 }), loss: 'meanSquaredError' });
      theirs.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
      await m.fit(xs, ys, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
      await theirs.fit(tf.tensor2d(xs, [80, 7]), tf.tensor2d(ys, [80, 3]), {
        epochs: 2,
        batchSize: 8,
        shuffle: false,
        verbose: 0,
      });
      const want = theirs.getWeights().map((w) => w.dataSync());
      m.getWeights().forEach((w, i) => {
        for (let j = 0; j < w.size; j++) {
          if (!(Math.abs(w.values[j]! - want[i]![j]!) <= TFJS_WEIGHT_TOL))
            expect.fail(`${act} (seed ${TEST_SEED}): weight ${i}[${j}]: maas ${w.values[j]!} vs tfjs ${want[i]![j]!}`);
        }
      });
      m.dispose();
    }
  });

  it('a short fit lowers the loss with each new activation', async () => {
    const r = rng(90);
    const xs = Array.from({ length: 64 }, () => Array.from({ length: 5 }, () => r.uniform(-1, 1)));
    const ys = xs.map((row) => [Math.sin(row[0]! + row[1]!) * 0.5, row[2]! * row[3]! - 0.2]);
    const acts: [ActivationName, Record<string, number>][] = [
      ...NEW_TFJS.map((a): [ActivationName, Record<string, number>] => [a, {}]),
      ['exponential', {}],
      ['relu', { maxValue: 1.5, threshold: 0.1, negativeSlope: 0.1 }],
    ];
    for (const [act, extra] of acts) {
      const m = sequential({
        layers: [
          dense({
            units: 16,
            activation: act,
            inputShape: [5],
            kernelInitializer: initializers.glorotUniform({ seed: 5 }),
            ...extra,
          }),
          dense({ units: 2, kernelInitializer: initializers.glorotUniform({ seed: 6 }) }),
        ],
      });
      m.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
      const history = await m.fit(xs, ys, { epochs: 15, batchSize: 16, verbose: 0, seed: 1 });
      const loss = history.history.loss!;
      if (!(loss[loss.length - 1]! < 0.8 * loss[0]!))
        expect.fail(`fit with ${act} (seed ${TEST_SEED}): loss ${loss[0]!} -> ${loss[loss.length - 1]!}`);
      m.dispose();
    }
  });
});

describe('dense() activation parameters', () => {
  it('turns Keras ReLU special cases into their own activations, as Keras does', () => {
    const acts = [
      dense({ units: 2, activation: 'relu', maxValue: 6 }),
      dense({ units: 2, activation: 'relu', negativeSlope: 0.2 }),
      dense({ units: 2, activation: 'kerasRelu' }),
      dense({ units: 2, activation: 'relu', maxValue: 3, threshold: 1 }),
    ].map((l) => [l.activation, l.alpha, l.maxValue, l.threshold]);
    expect(acts).toEqual([
      ['relu6', 0, null, 0],
      ['leakyRelu', 0.2, null, 0],
      ['relu', 0, null, 0],
      ['kerasRelu', 0, 3, 1],
    ]);
  });

  it('refuses what Keras refuses, with coded errors naming the parameter', async () => {
    expect(await errorOf(() => dense({ units: 2, activation: 'relu', maxValue: -1 }))).toMatch(
      /MAAS_ERR_LAYER_CONFIG.*maxValue/s,
    );
    expect(await errorOf(() => dense({ units: 2, activation: 'relu', threshold: -0.5 }))).toMatch(
      /MAAS_ERR_LAYER_CONFIG.*threshold/s,
    );
    expect(await errorOf(() => dense({ units: 2, activation: 'relu', negativeSlope: -1 }))).toMatch(
      /MAAS_ERR_LAYER_CONFIG.*negativeSlope/s,
    );
    expect(await errorOf(() => dense({ units: 2, activation: 'sigmoid', maxValue: 1 }))).toMatch(
      /MAAS_ERR_LAYER_CONFIG.*activation/s,
    );
    expect(await errorOf(() => dense({ units: 2, activation: 'hard_sigmoid' as ActivationName }))).toContain(
      'MAAS_ERR_ACTIVATION_UNKNOWN',
    );
  });
});
