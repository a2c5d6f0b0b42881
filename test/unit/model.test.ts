/**
 * The public model API against @tensorflow/tfjs, the reference implementation: random models of
 * every activation predict what tfjs predicts, on every ISA path; plus input forms, weights and
 * summary behaviour a tfjs user relies on.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  dense,
  initializers,
  sequential,
  setMaxIsa,
  backendInfo,
  tensor,
  tensor2d,
  Tensor,
  ACTIVATIONS,
  type ActivationName,
  type Sequential,
} from '../../src/index.js';
import { createTfjsPeer } from '../../bench/peers/tfjs.js';
import type { DenseSpec } from '../../bench/peers/onnx.js';
import { TEST_SEED, rng, syncErrorOf } from '../helpers.js';

/** tfjs (float32, its own summation order) and maas agree to this, absolute plus relative. */
const TFJS_ABS_TOL = 2e-5;
const TFJS_REL_TOL = 2e-5;

function specsOf(model: Sequential): DenseSpec[] {
  const weights = model.getWeights();
  let w = 0;
  return model.layers.map((layer) => ({
    in: layer.inputDim!,
    out: layer.units,
    weights: weights[w++]!.values,
    bias: layer.useBias ? weights[w++]!.values : null,
    activation: layer.activation,
    ...layer.nativeActivationParams(),
  }));
}

function randomModel(hidden: ActivationName, out: ActivationName, seed: number, widths = [13, 37, 19, 6]): Sequential {
  // Keras ReLU with all three parameters (without them it would be plain relu).
  const params = hidden === 'kerasRelu' ? { alpha: 0.1, maxValue: 1.5, threshold: 0.2 } : {};
  return sequential({
    layers: [
      dense({
        units: widths[1]!,
        activation: hidden,
        ...params,
        inputShape: [widths[0]!],
        kernelInitializer: initializers.glorotUniform({ seed }),
        biasInitializer: initializers.randomUniform({ seed: seed + 1, minval: -0.5, maxval: 0.5 }),
      }),
      dense({
        units: widths[2]!,
        activation: hidden,
        ...params,
        useBias: false,
        kernelInitializer: initializers.heNormal({ seed: seed + 2 }),
      }),
      dense({
        units: widths[3]!,
        activation: out,
        kernelInitializer: initializers.glorotNormal({ seed: seed + 3 }),
        biasInitializer: initializers.randomNormal({ seed: seed + 4 }),
      }),
    ],
  });
}

/**
 * `scale`: the magnitude errors are relative to when a linear head sums large terms down to small
 * outputs (two exponential layers), instead of each output's own.
 */
function expectClose(got: Float32Array, want: Float32Array, what: string, scale = 0): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = TFJS_ABS_TOL + TFJS_REL_TOL * Math.max(Math.abs(want[i]!), scale);
    if (!(Math.abs(got[i]! - want[i]!) <= tol))
      expect.fail(`${what} (seed ${TEST_SEED}): index ${i}: maas ${got[i]} vs tfjs ${want[i]}`);
  }
}

/** The ISA paths of the fp32 kernels this CPU runs, each once (bf16 kernels have their own tests). */
const isas = [
  ...new Set(
    backendInfo()
      .f32Kernels.filter((k) => k.supported && k.weights === 'fp32')
      .map((k) => k.isa),
  ),
];

describe('predictions equal @tensorflow/tfjs', () => {
  afterAll(() => {
    setMaxIsa('avx512');
  });

  for (const isa of isas) {
    for (const act of ACTIVATIONS) {
      it(`${act} hidden layers on ${isa}`, async () => {
        setMaxIsa(isa);
        const model = randomModel(
          act,
          act === 'softmax' ? 'softmax' : act === 'linear' ? 'sigmoid' : 'linear',
          17 + ACTIVATIONS.indexOf(act),
        );
        expect(backendInfo().isa).toBe(isa);
        const peer = await createTfjsPeer('cpu', specsOf(model));
        const r = rng(ACTIVATIONS.indexOf(act));
        // exp turns its input's absolute rounding error into relative error of its output: smaller
        // inputs keep two stacked exponential layers' pre-activations where that stays in tolerance.
        const sd = act === 'exponential' ? 0.5 : 2;
        for (const batch of [1, 5, 33]) {
          const x = Float32Array.from({ length: batch * 13 }, () => r.normal(0, sd));
          const want = peer.run(x, batch);
          const scale = act === 'exponential' ? Math.max(...Array.from(want, Math.abs)) : 0;
          expectClose(model.predict(tensor(x, [batch, 13])).values, want, `${act} on ${isa} batch ${batch}`, scale);
        }
        peer.dispose();
        model.dispose();
      });
    }
  }

  it('a wide model (the example model S) on the selected kernel', async () => {
    const model = randomModel('relu', 'sigmoid', 5, [100, 64, 32, 1]);
    const peer = await createTfjsPeer('cpu', specsOf(model));
    const r = rng(99);
    const x = Float32Array.from({ length: 300 * 100 }, () => r.normal());
    expectClose(model.predict(x).values, peer.run(x, 300), 'model S batch 300');
    peer.dispose();
  });
});

describe('inputs, outputs and weights', () => {
  const model = sequential({
    layers: [dense({ units: 3, inputShape: [2], kernelInitializer: 'ones', biasInitializer: 'ones' })],
  });

  it('takes nested arrays, a rank-1 row, a Float32Array with a shape, or a flat Float32Array', () => {
    expect(
      model
        .predict([
          [1, 2],
          [3, 4],
        ])
        .arraySync(),
    ).toEqual([
      [4, 4, 4],
      [8, 8, 8],
    ]);
    expect(model.predict(tensor([1, 2])).shape).toEqual([1, 3]);
    expect(model.predict(tensor2d(new Float32Array([1, 2, 3, 4]), [2, 2])).arraySync()).toEqual([
      [4, 4, 4],
      [8, 8, 8],
    ]);
    expect(model.predict(new Float32Array([1, 2, 3, 4, 5, 6])).shape).toEqual([3, 3]);
  });

  it('returns a Tensor with tfjs accessors', async () => {
    const y = model.predict([[1, 1]]);
    expect(y).toBeInstanceOf(Tensor);
    expect(Array.from(y.dataSync())).toEqual([3, 3, 3]);
    expect(await y.array()).toEqual([[3, 3, 3]]);
    expect(Array.from(await y.data())).toEqual([3, 3, 3]);
  });

  it('round-trips getWeights through setWeights and predicts with new weights at once', () => {
    const m = randomModel('tanh', 'linear', 3);
    const x = Float32Array.from({ length: 13 * 4 }, (_, i) => Math.sin(i));
    const before = m.predict(x).values.slice();
    const weights = m.getWeights();
    expect(weights.map((w) => w.shape)).toEqual([[13, 37], [37], [37, 19], [19, 6], [6]]);
    m.setWeights(
      weights.map((w) =>
        tensor(
          w.values.map((v) => v * 0.5),
          w.shape,
        ),
      ),
    );
    expect(m.predict(x).values).not.toEqual(before);
    m.setWeights(weights);
    expect(m.predict(x).values).toEqual(before);
  });

  it('builds the same weights from the same seeds, and glorotUniform stays within its limit', () => {
    const a = randomModel('relu', 'linear', 11).getWeights();
    const b = randomModel('relu', 'linear', 11).getWeights();
    a.forEach((w, i) => expect(w.values).toEqual(b[i]!.values));
    const limit = Math.sqrt(6 / (13 + 37));
    expect(a[0]!.values.every((v) => Math.abs(v) <= limit)).toBe(true);
    expect(a[0]!.values.some((v) => Math.abs(v) > limit / 2)).toBe(true);
  });

  it('summarizes like tfjs', () => {
    const lines: string[] = [];
    randomModel('relu', 'sigmoid', 1, [100, 64, 32, 1]).summary(65, undefined, (l) => lines.push(l));
    expect(lines.join('\n')).toContain('Total params: 8545');
    expect(lines.some((l) => /\(Dense relu\)\s+\[null,64\]\s+6464/.test(l))).toBe(true);
  });
});

describe('bad calls are coded errors', () => {
  const model = sequential({ layers: [dense({ units: 2, inputShape: [3] })] });

  it('names the parameter, the expectation and what was received', () => {
    expect(syncErrorOf(() => dense({ units: 0 }))).toBe(
      'MAAS_ERR_ARG_RANGE: Expected an integer in [1, 16777216] for dense.units but received 0 of type number',
    );
    expect(syncErrorOf(() => dense({ units: 2, activation: 'mish' as ActivationName }))).toMatch(
      /^MAAS_ERR_ACTIVATION_UNKNOWN: Expected one of 'linear', .* for dense.activation but received 'mish' of type string$/,
    );
    expect(syncErrorOf(() => dense({ units: 2, kernelInitializer: 'xavier' as 'zeros' }))).toMatch(
      /^MAAS_ERR_INITIALIZER_UNKNOWN: .*dense.kernelInitializer.*'xavier'/,
    );
    expect(syncErrorOf(() => dense({ units: 2, unitz: 3 } as never))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected one of the known options .* for dense.unitz/,
    );
    expect(syncErrorOf(() => dense({ units: 2, inputShape: [3, 4] }))).toMatch(
      /^MAAS_ERR_LAYER_CONFIG: .*dense.inputShape/,
    );
    expect(syncErrorOf(() => sequential({ layers: [dense({ units: 2 })] }))).toMatch(
      /^MAAS_ERR_LAYER_CONFIG: The first layer .* needs an inputShape/,
    );
  });

  it('rejects inputs of the wrong width, ragged arrays and non-tensors', () => {
    expect(syncErrorOf(() => model.predict([[1, 2]]))).toBe(
      'MAAS_ERR_SHAPE_MISMATCH: Expected x of shape [batch, 3] (or [3]) but received shape [1,2]',
    );
    expect(syncErrorOf(() => model.predict(new Float32Array(4)))).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH: .*positive multiple of 3/,
    );
    expect(
      syncErrorOf(() =>
        model.predict([
          [1, 2, 3],
          [1, 2],
        ]),
      ),
    ).toMatch(/^MAAS_ERR_SHAPE_MISMATCH: Expected a rectangular nested array/);
    expect(syncErrorOf(() => model.predict('abc' as never))).toMatch(
      /^MAAS_ERR_ARG_TYPE: Expected a Tensor, a Float32Array or nested arrays of numbers for x but received 'abc'/,
    );
  });

  it('rejects weights of the wrong count, size or with NaN, and keeps the old weights', () => {
    const before = model.getWeights();
    expect(syncErrorOf(() => model.setWeights([before[0]!]))).toBe(
      'MAAS_ERR_WEIGHTS_MISMATCH: Expected 2 weight tensors for setWeights but received 1',
    );
    expect(syncErrorOf(() => model.setWeights([before[0]!, new Float32Array(3)]))).toMatch(
      /^MAAS_ERR_WEIGHTS_MISMATCH: Expected 2 values for weights\[1\]/,
    );
    expect(syncErrorOf(() => model.setWeights([before[0]!, new Float32Array([0, Number.NaN])]))).toMatch(
      /^MAAS_ERR_WEIGHTS_MISMATCH: Expected finite values/,
    );
    model.getWeights().forEach((w, i) => expect(w.values).toEqual(before[i]!.values));
  });

  it('a disposed model throws MAAS_ERR_MODEL_DISPOSED', () => {
    const m = sequential({ layers: [dense({ units: 1, inputShape: [1] })] });
    m.predict([[1]]);
    m.dispose();
    expect(syncErrorOf(() => m.predict([[1]]))).toMatch(/^MAAS_ERR_MODEL_DISPOSED: /);
    expect(syncErrorOf(() => m.getWeights())).toMatch(/^MAAS_ERR_MODEL_DISPOSED: /);
  });

  it('an invalid ISA cap is refused', () => {
    expect(syncErrorOf(() => setMaxIsa('neon' as never))).toMatch(
      /^MAAS_ERR_ISA_INVALID: Expected one of 'scalar', 'avx2', 'avxvnni', 'avx512', 'avx512vnni', 'avx512bf16', 'amx' for setMaxIsa\(isa\) but received 'neon'/,
    );
  });
});
