/**
 * The native sampling entries of the explanation methods, each against its definition through an
 * independent float64 forward pass. Kernel SHAP's coalition values (the first layer by products over the smaller side of each
 * coalition, then the rest of the stack) against the definition: the mean over the background of
 * the model's output at the mixed rows, through an independent float64 forward pass. Coalitions of
 * every size (empty and full among them), one to three layers with a softmax head, a background
 * larger than a tile, every ISA path, and every fp32 kernel of every CPU class this machine runs.
 * LIME's perturbed values: the outputs at x + e ⊙ scale and Σ w·y·e. Then their refusals.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ACTIVATION_CODES, native } from '../../src/native/index.js';
import { openInputGradients, packRoundTrip, type PackLayer } from '../../src/model/packed.js';
import { TEST_SEED, rng } from '../helpers.js';
import { packLayers, randomLayers, refForward, type RefLayer } from './reference-stack.js';
import type { Random } from '../../src/core/random.js';

/** fp32 products over d inputs against float64: a tolerance relative to the output's scale. */
const VALUE_TOL = 2e-5;

/** packRoundTrip with a named kernel (every class's), through the addon's own packer. */
function packRoundTripWith(layers: readonly PackLayer[], kernel: string): { buffer: SharedArrayBuffer } {
  const forward = layers.map((l) => ({
    in: l.inputDim!,
    out: l.units,
    activation: ACTIVATION_CODES[l.activation],
    alpha: l.alpha,
    hasBias: l.useBias,
  }));
  const turned = [...layers].reverse().map((l) => ({ in: l.units, out: l.inputDim!, activation: 0, alpha: 0, hasBias: false }));
  const transposed = [...layers].reverse().map((l) => {
    const t = new Float32Array(l.kernel!.length);
    for (let a = 0; a < l.inputDim!; a++) for (let b = 0; b < l.units; b++) t[b * l.inputDim! + a] = l.kernel![a * l.units + b]!;
    return t;
  });
  const specs = [...forward, ...turned];
  const buffer = new SharedArrayBuffer(native.packedStackByteLength(specs, kernel));
  const bytes = new Uint8Array(buffer);
  native.packStack(specs, [...layers.map((l) => l.kernel!), ...transposed], [...layers.map((l) => l.bias), ...turned.map(() => null)], bytes, kernel);
  return { buffer };
}


/** Masks of every size from 0 to d (sizes cycled), each a random subset of that size. */
function randomMasks(r: Random, d: number, count: number): Uint8Array {
  const masks = new Uint8Array(count * d);
  for (let c = 0; c < count; c++) {
    const size = c % (d + 1);
    const order = Array.from({ length: d }, (_, i) => i);
    for (let i = 0; i < size; i++) {
      const j = i + Math.floor(r.next() * (d - i));
      [order[i], order[j]] = [order[j]!, order[i]!];
      masks[c * d + order[i]!] = 1;
    }
  }
  return masks;
}

function reference(layers: readonly RefLayer[], x: Float32Array, bg: Float32Array, masks: Uint8Array, output: number) {
  const d = x.length;
  const n = bg.length / d;
  const count = masks.length / d;
  return Array.from({ length: count }, (_, c) => {
    let sum = 0;
    for (let b = 0; b < n; b++) {
      const row = Array.from({ length: d }, (_, j) => (masks[c * d + j] ? x[j]! : bg[b * d + j]!));
      sum += refForward(layers, row)[output]!;
    }
    return sum / n;
  });
}

function check(widths: number[], acts: RefLayer['act'][], bgRows: number, coalitions: number, seed: number, what: string) {
  const r = rng(seed);
  const layers = randomLayers(r, widths, acts);
  for (const l of layers) {
    l.w = Float64Array.from(Float32Array.from(l.w));
    if (l.b) l.b = Float64Array.from(Float32Array.from(l.b));
  }
  const d = widths[0]!;
  const x = Float32Array.from({ length: d }, () => r.uniform(-1.5, 1.5));
  const bg = Float32Array.from({ length: bgRows * d }, () => r.uniform(-1.5, 1.5));
  const masks = randomMasks(r, d, coalitions);
  const output = widths[widths.length - 1]! - 1;
  const handle = openInputGradients(packRoundTrip(packLayers(layers)));
  const values = new Float64Array(coalitions);
  handle.coalitionValues(x, bg, bgRows, masks, coalitions, output, values);
  handle.dispose();
  const want = reference(layers, x, bg, masks, output);
  const scale = Math.max(1, ...want.map(Math.abs));
  want.forEach((v, c) => {
    if (!(Math.abs(values[c]! - v) <= VALUE_TOL * scale))
      expect.fail(`${what} (seed ${TEST_SEED}): coalition ${c} native ${values[c]} vs ${v}`);
  });
}

const isas = [...new Set(native.cpuInfo().f32Kernels.filter((k) => k.supported && k.weights === 'fp32').map((k) => k.isa))];

describe('coalition values against the mixed rows through a float64 forward pass', () => {
  const best = native.cpuInfo().isa;
  afterAll(() => native.setMaxIsa(best));

  for (const isa of isas) {
    it(`one to three layers, every coalition size, on ${isa}`, () => {
      native.setMaxIsa(isa);
      check([1, 3], ['sigmoid'], 4, 6, 10, `1 input/${isa}`);
      check([7, 3], ['softmax'], 5, 16, 11, `one softmax layer/${isa}`);
      check([9, 17, 1], ['relu', 'sigmoid'], 6, 20, 12, `two layers/${isa}`);
      check([33, 70, 9, 4], ['tanh', 'elu', 'softmax'], 7, 68, 13, `three layers/${isa}`);
    });

    it(`on two threads (the first layer's products large enough to be split), on ${isa}`, () => {
      native.setMaxIsa(isa);
      const threads = native.getThreads();
      native.setThreads(2);
      try {
        check([100, 128, 3], ['relu', 'softmax'], 100, 12, 17, `two threads/${isa}`);
      } finally {
        native.setThreads(threads);
      }
    });

    it(`a background of more rows than a tile (1100), and 100 inputs as model S, on ${isa}`, () => {
      native.setMaxIsa(isa);
      check([5, 8, 1], ['relu', 'linear'], 1100, 7, 14, `large background/${isa}`);
      check([100, 64, 32, 1], ['relu', 'relu', 'sigmoid'], 20, 40, 15, `model S/${isa}`);
    });
  }

  // Every fp32 kernel this CPU runs, each class's among them: its panel width decides how the first
  // layer's rows are gathered.
  const kernels = native.cpuInfo().f32Kernels.filter((k) => k.supported && k.weights === 'fp32');
  for (const kernel of kernels) {
    it(`packed for ${kernel.name} (classes ${kernel.cpuClasses.join(', ')})`, () => {
      native.setMaxIsa(best);
      const r = rng(16);
      const layers = randomLayers(r, [21, 40, 6, 2], ['relu', 'gelu', 'softmax']);
      for (const l of layers) {
        l.w = Float64Array.from(Float32Array.from(l.w));
        if (l.b) l.b = Float64Array.from(Float32Array.from(l.b));
      }
      const handle = openInputGradients(packRoundTripWith(packLayers(layers), kernel.name));
      const d = 21;
      const x = Float32Array.from({ length: d }, () => r.uniform(-1, 1));
      const bg = Float32Array.from({ length: 9 * d }, () => r.uniform(-1, 1));
      const masks = randomMasks(r, d, 44);
      const values = new Float64Array(44);
      handle.coalitionValues(x, bg, 9, masks, 44, 1, values);
      handle.dispose();
      reference(layers, x, bg, masks, 1).forEach((v, c) => {
        if (!(Math.abs(values[c]! - v) <= VALUE_TOL))
          expect.fail(`${kernel.name} (seed ${TEST_SEED}): coalition ${c} native ${values[c]} vs ${v}`);
      });
    });
  }
});

describe('perturbed values against the perturbed rows through a float64 forward pass', () => {
  const best = native.cpuInfo().isa;
  afterAll(() => native.setMaxIsa(best));

  for (const isa of isas) {
    it(`outputs and the weighted cross-product, across a tile boundary, on ${isa}`, () => {
      native.setMaxIsa(isa);
      for (const [widths, acts, samples] of [
        [[3, 2], ['softmax'], 5],
        [[13, 30, 1], ['relu', 'sigmoid'], 1500],
      ] as const) {
        const r = rng(30 + samples);
        const layers = randomLayers(r, [...widths], [...acts]);
        for (const l of layers) {
          l.w = Float64Array.from(Float32Array.from(l.w));
          if (l.b) l.b = Float64Array.from(Float32Array.from(l.b));
        }
        const d = widths[0];
        const x = Float32Array.from({ length: d }, () => r.uniform(-1, 1));
        const scale = Float32Array.from({ length: d }, () => r.uniform(0.2, 2));
        const e = Float32Array.from({ length: samples * d }, () => r.normal());
        const weights = Float64Array.from({ length: samples }, (_, s) => (s % 7 === 3 ? 0 : r.uniform(0, 1)));
        const output = widths[widths.length - 1]! - 1;
        const handle = openInputGradients(packRoundTrip(packLayers(layers)));
        const y = new Float64Array(samples);
        const wye = new Float64Array(d);
        handle.perturbedValues(x, scale, e, samples, weights, output, y, wye);
        handle.dispose();
        const want = Array.from({ length: samples }, (_, s) => {
          // The row as the native side builds it, in float32.
          const row = Array.from({ length: d }, (_, i) => Math.fround(x[i]! + Math.fround(e[s * d + i]! * scale[i]!)));
          return refForward(layers, row)[output]!;
        });
        want.forEach((v, s) => {
          if (!(Math.abs(y[s]! - v) <= VALUE_TOL)) expect.fail(`${isa} (seed ${TEST_SEED}): y[${s}] ${y[s]} vs ${v}`);
        });
        for (let i = 0; i < d; i++) {
          let ref = 0;
          for (let s = 0; s < samples; s++) ref += weights[s]! * want[s]! * e[s * d + i]!;
          const tol = VALUE_TOL * Math.max(1, ...want.map(Math.abs)) * samples ** 0.5 * 4;
          if (!(Math.abs(wye[i]! - ref) <= tol)) expect.fail(`${isa} (seed ${TEST_SEED}): wye[${i}] ${wye[i]} vs ${ref}`);
        }
      }
    });
  }

  it('refuses wrong lengths and an output out of range', () => {
    const handle = openInputGradients(packRoundTrip(packLayers(randomLayers(rng(40), [4, 2], ['linear']))));
    const f = (n: number) => new Float32Array(n);
    const g = (n: number) => new Float64Array(n);
    const code = (fn: () => void) => expect(fn).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    code(() => handle.perturbedValues(f(3), f(4), f(8), 2, g(2), 0, g(2), g(4)));
    code(() => handle.perturbedValues(f(4), f(4), f(9), 2, g(2), 0, g(2), g(4)));
    code(() => handle.perturbedValues(f(4), f(4), f(8), 2, g(3), 0, g(2), g(4)));
    code(() => handle.perturbedValues(f(4), f(4), f(8), 2, g(2), 2, g(2), g(4)));
    code(() => handle.perturbedValues(f(4), f(4), f(8), 2, g(2), 0, g(2), g(3)));
    code(() => handle.perturbedValues(f(4), f(4), f(0), 0, g(0), 0, g(0), g(4)));
    handle.perturbedValues(f(4), f(4), f(8), 2, g(2), 1, g(2), g(4));
    handle.dispose();
  });
});

describe('coalition values refusals', () => {
  it('refuses wrong lengths, an output out of range, and calls after dispose', () => {
    const layers = randomLayers(rng(20), [4, 5, 2], ['tanh', 'linear']);
    const handle = openInputGradients(packRoundTrip(packLayers(layers)));
    const x = new Float32Array(4);
    const bg = new Float32Array(8);
    const masks = new Uint8Array(12);
    const values = new Float64Array(3);
    const code = (fn: () => void, c: string) => expect(fn).toThrow(expect.objectContaining({ code: c }));
    code(() => handle.coalitionValues(new Float32Array(3), bg, 2, masks, 3, 0, values), 'MAAS_ERR_SHAPE_MISMATCH');
    code(() => handle.coalitionValues(x, bg, 3, masks, 3, 0, values), 'MAAS_ERR_SHAPE_MISMATCH');
    code(() => handle.coalitionValues(x, bg, 2, masks, 4, 0, values), 'MAAS_ERR_SHAPE_MISMATCH');
    code(() => handle.coalitionValues(x, bg, 2, masks, 3, 2, values), 'MAAS_ERR_SHAPE_MISMATCH');
    code(() => handle.coalitionValues(x, bg, 0, new Uint8Array(12), 3, 0, values), 'MAAS_ERR_SHAPE_MISMATCH');
    handle.coalitionValues(x, bg, 2, masks, 3, 1, values);
    handle.dispose();
    code(() => handle.coalitionValues(x, bg, 2, masks, 3, 0, values), 'MAAS_ERR_MODEL_DISPOSED');
  });
});
