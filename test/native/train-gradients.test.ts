/**
 * The native backward pass against central finite differences computed in float64 by an
 * independent JS forward pass, for every activation (kerasRelu in each parameter combination)
 * and every loss, on every ISA path.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ACTIVATION_CODES, LOSS_CODES, addonPath, native, type ActivationName, type LossName } from '../../src/native/index.js';
import { TEST_SEED, rng } from '../helpers.js';
import type { Random } from '../../src/core/random.js';
import { randomLayers, refForward, type RefLayer } from './reference-stack.js';

/** float32 gradients against float64 differences: absolute floor plus a relative part. */
const GRAD_ABS_TOL = 2e-4;
const GRAD_REL_TOL = 2e-3;
/** Central-difference step in float64. */
const FD_STEP = 1e-6;

/** The loss of a float64 forward pass, with tfjs's definitions (mean over batch and outputs). */
function refLoss(layers: RefLayer[], x: Float32Array, y: Float32Array, batch: number, loss: LossName): number {
  let total = 0;
  const out = layers[layers.length - 1]!.out;
  for (let i = 0; i < batch; i++) {
    const h = refForward(layers, x.subarray(i * layers[0]!.in, (i + 1) * layers[0]!.in));
    for (let j = 0; j < out; j++) {
      const t = loss === 'sparseCategoricalCrossentropy' ? (j === y[i] ? 1 : 0) : y[i * out + j]!;
      const p = h[j]!;
      if (loss === 'meanSquaredError') total += (p - t) ** 2 / out;
      else if (loss === 'meanAbsoluteError') total += Math.abs(p - t) / out;
      else if (loss === 'binaryCrossentropy') total -= (t * Math.log(p) + (1 - t) * Math.log(1 - p)) / out;
      else total -= t * Math.log(p);
    }
  }
  return total / batch;
}

function checkGradients(layers: RefLayer[], loss: LossName, r: Random, what: string, batch = 5): void {
  const out = layers[layers.length - 1]!.out;
  const x = Float32Array.from({ length: batch * layers[0]!.in }, () => r.uniform(-1.5, 1.5));
  const y = loss === 'sparseCategoricalCrossentropy'
    ? Float32Array.from({ length: batch }, () => Math.floor(r.next() * out))
    : loss === 'categoricalCrossentropy'
      ? Float32Array.from({ length: batch * out }, (_, i) => (i % out === Math.floor(i / out) % out ? 1 : 0))
      : Float32Array.from({ length: batch * out }, () => (loss === 'binaryCrossentropy' ? (r.next() < 0.5 ? 1 : 0) : r.uniform(-1, 1)));
  // float32 copies are what the native trainer sees; the reference uses the same rounded values.
  const kernels = layers.map((l) => Float32Array.from(l.w));
  const biases = layers.map((l) => (l.b ? Float32Array.from(l.b) : null));
  layers.forEach((l, i) => { l.w = Float64Array.from(kernels[i]!); if (l.b) l.b = Float64Array.from(biases[i]!); });
  const trainer = new native.Trainer(
    layers.map((l) => ({
      in: l.in, out: l.out, activation: ACTIVATION_CODES[l.act], alpha: l.alpha, hasBias: l.b !== null,
      ...(l.maxValue !== undefined ? { maxValue: l.maxValue } : {}), ...(l.threshold !== undefined ? { threshold: l.threshold } : {}),
    })),
    kernels, biases, layers.map(() => ({ l1: 0, l2: 0 })), LOSS_CODES[loss],
  );
  const got = trainer.gradients(x, y, batch);
  expect(got.loss).toBeCloseTo(refLoss(layers, x, y, batch, loss), 4);
  layers.forEach((l, li) => {
    const params: [Float64Array, Float32Array][] = [[l.w, got.kernels[li]!]];
    if (l.b) params.push([l.b, got.biases[li]!]);
    for (const [p, g] of params) {
      for (let i = 0; i < p.length; i++) {
        const keep = p[i]!;
        p[i] = keep + FD_STEP;
        const up = refLoss(layers, x, y, batch, loss);
        p[i] = keep - FD_STEP;
        const down = refLoss(layers, x, y, batch, loss);
        p[i] = keep;
        const fd = (up - down) / (2 * FD_STEP);
        if (!(Math.abs(g[i]! - fd) <= GRAD_ABS_TOL + GRAD_REL_TOL * Math.abs(fd))) {
          expect.fail(`${what} (seed ${TEST_SEED}): layer ${li} ${p === l.w ? 'kernel' : 'bias'}[${i}]: native ${g[i]} vs finite difference ${fd}`);
        }
      }
    }
  });
  trainer.dispose();
}

const isas = [...new Set(native.cpuInfo().f32Kernels.filter((k) => k.supported && k.weights === 'fp32').map((k) => k.isa))];
const bf16Isas = [...new Set(native.cpuInfo().f32Kernels.filter((k) => k.supported && k.weights === 'bf16').map((k) => k.isa))];
const HIDDEN = Object.keys(ACTIVATION_CODES) as ActivationName[];

describe('backward pass against central finite differences (float64)', () => {
  const best = native.cpuInfo().isa;
  afterAll(() => native.setMaxIsa(best));

  for (const isa of isas) {
    it(`every hidden activation, mse and bce heads, on ${isa}`, () => {
      native.setMaxIsa(isa);
      HIDDEN.forEach((act, i) => {
        // exp of exp overflows: an exponential layer is followed by a bounded one.
        const second = act === 'exponential' ? 'tanh' : act;
        checkGradients(randomLayers(rng(100 + i), [6, 9, 7, 3], [act, second, 'linear']), 'meanSquaredError', rng(200 + i), `${act}/mse/${isa}`);
        checkGradients(randomLayers(rng(300 + i), [6, 9, 1], [act, 'sigmoid']), 'binaryCrossentropy', rng(400 + i), `${act}/bce/${isa}`);
      });
    });

    it(`every loss on ${isa}`, () => {
      native.setMaxIsa(isa);
      const r = rng(500);
      checkGradients(randomLayers(r, [5, 8, 4], ['tanh', 'sigmoid']), 'meanSquaredError', r, `mse/${isa}`);
      checkGradients(randomLayers(r, [5, 8, 4], ['tanh', 'linear']), 'meanAbsoluteError', r, `mae/${isa}`);
      checkGradients(randomLayers(r, [5, 8, 4], ['relu', 'sigmoid']), 'binaryCrossentropy', r, `bce sigmoid/${isa}`);
      checkGradients(randomLayers(r, [5, 8, 4], ['elu', 'softmax']), 'categoricalCrossentropy', r, `cce/${isa}`);
      checkGradients(randomLayers(r, [5, 8, 4], ['leakyRelu', 'softmax']), 'sparseCategoricalCrossentropy', r, `sparse cce/${isa}`);
    });
  }

  it('kerasRelu in each combination of max_value, negative_slope and threshold', () => {
    const r = rng(700);
    for (const maxValue of [undefined, 0.8, 6]) for (const alpha of [0, 0.3]) for (const threshold of [0, 0.4]) {
      const layers = randomLayers(r, [6, 9, 2], ['kerasRelu', 'linear']);
      layers[0] = { ...layers[0]!, alpha, threshold, ...(maxValue === undefined ? {} : { maxValue }) };
      if (maxValue === undefined) delete layers[0].maxValue;
      checkGradients(layers, 'meanSquaredError', r, `kerasRelu ${JSON.stringify({ maxValue, alpha, threshold })}`);
    }
  });

  it('crosses the GEMM block sizes: 260 inputs (rows of dW) and a batch of 300 (K of dW)', () => {
    const r = rng(600);
    const scaled = (layers: RefLayer[]) => layers.map((l) => ({ ...l, w: l.w.map((v) => v * 0.1) }));
    checkGradients(scaled(randomLayers(r, [260, 5, 1], ['tanh', 'sigmoid'])), 'binaryCrossentropy', r, 'wide input', 3);
    checkGradients(randomLayers(r, [7, 6, 2], ['relu', 'linear']), 'meanSquaredError', r, 'large batch', 300);
  });

  for (const isa of isas) {
    it(`the input gradient of a layer wider than a batch of two tile widths (dXᵀ = W·dZᵀ) on ${isa}`, () => {
      native.setMaxIsa(isa);
      const r = rng(650);
      // 140 inputs >= 130 rows >= 2 × the widest tile (64 columns): layer 1's dX takes the transposed form.
      checkGradients(randomLayers(r, [3, 140, 2], ['tanh', 'linear']), 'meanSquaredError', r, `wide layer/${isa}`, 130);
    });
  }
});

describe('mixed precision (bf16 products, fp32 weights and updates)', () => {
  const best = native.cpuInfo().isa;
  afterAll(() => native.setMaxIsa(best));

  /** Gradients of one batch from a trainer whose products run in `precision`. */
  function gradientsIn(precision: 'fp32' | 'bf16', seed: number, wide = false) {
    const r = rng(seed);
    // wide: layer 1 has more inputs than the 130-row batch, so its dX takes the transposed form.
    const widths = wide ? [40, 160, 20, 5] : [40, 33, 20, 5];
    // Smooth activations: a ReLU whose input sits near 0 may flip under bf16 rounding, moving that
    // unit's gradient by its whole size (legitimately, but not what this bound is about).
    const acts = ['tanh', 'tanh', 'softmax'] as const;
    const specs = acts.map((act, i) => ({ in: widths[i]!, out: widths[i + 1]!, activation: ACTIVATION_CODES[act], alpha: 0, hasBias: true }));
    const kernels = specs.map((s) => Float32Array.from({ length: s.in * s.out }, () => r.uniform(-0.4, 0.4)));
    const biases = specs.map((s) => Float32Array.from({ length: s.out }, () => r.uniform(-0.1, 0.1)));
    const batch = wide ? 130 : 37;
    const x = Float32Array.from({ length: batch * 40 }, () => r.uniform(-1.5, 1.5));
    const y = Float32Array.from({ length: batch }, (_, i) => i % 5);
    const trainer = new native.Trainer(specs, kernels, biases, specs.map(() => ({ l1: 0, l2: 0 })), LOSS_CODES.sparseCategoricalCrossentropy, precision);
    const g = trainer.gradients(x, y, batch);
    trainer.dispose();
    return g;
  }
  const relativeDistance = (a: Float32Array, b: Float32Array) => {
    let d = 0, n = 0;
    for (let i = 0; i < a.length; i++) { d += (a[i]! - b[i]!) ** 2; n += b[i]! ** 2; }
    return Math.sqrt(d / n);
  };

  for (const isa of bf16Isas) {
    it(`gradients within bf16 rounding of fp32's, on ${isa}`, () => {
      for (const wide of [false, true]) {
        native.setMaxIsa(best);
        const fp32 = gradientsIn('fp32', 900, wide);
        native.setMaxIsa(isa);
        const bf16 = gradientsIn('bf16', 900, wide);
        expect(Math.abs(bf16.loss - fp32.loss) / fp32.loss).toBeLessThan(1e-2);
        for (let l = 0; l < 3; l++) {
          // bf16 keeps 8 bits: each product is off by up to 2^-8 of its size, and the errors mostly cancel in sums.
          const kernel = relativeDistance(bf16.kernels[l]!, fp32.kernels[l]!);
          expect(kernel, `layer ${l} kernel on ${isa}`).toBeGreaterThan(0);
          expect(kernel, `layer ${l} kernel on ${isa}`).toBeLessThan(2e-2);
          expect(relativeDistance(bf16.biases[l]!, fp32.biases[l]!), `layer ${l} bias on ${isa}`).toBeLessThan(2e-2);
        }
      }
    });
  }

  // Every class's bf16 kernel on this CPU: Intel's widens its blocked products to fp32 FMAs, and the
  // backward pass multiplies by transposed operands, so the class is forced in a child process
  // (the addon reads MAAS_CPU_CLASS once) and the same gradients are compared there.
  const avx512Bf16 = native.cpuInfo().features.avx512Bf16 === true;
  for (const cls of ['zen4', 'zen5', 'intel-avx512'] as const) {
    it.skipIf(!avx512Bf16)(`gradients within bf16 rounding of fp32's under the ${cls} class (child process)`, () => {
      const script = `
        const n = require(${JSON.stringify(addonPath())});
        let s = 12345;
        const u = (a, b) => { s = (s * 1103515245 + 12345) % 2147483648; return a + (b - a) * s / 2147483648; };
        const widths = [40, 33, 20, 5], acts = [${ACTIVATION_CODES.tanh}, ${ACTIVATION_CODES.tanh}, ${ACTIVATION_CODES.softmax}];
        const specs = acts.map((a, i) => ({ in: widths[i], out: widths[i + 1], activation: a, alpha: 0, hasBias: true }));
        const kernels = specs.map((l) => Float32Array.from({ length: l.in * l.out }, () => u(-0.4, 0.4)));
        const biases = specs.map((l) => Float32Array.from({ length: l.out }, () => u(-0.1, 0.1)));
        const batch = 37;
        const x = Float32Array.from({ length: batch * 40 }, () => u(-1.5, 1.5));
        const y = Float32Array.from({ length: batch }, (_, i) => i % 5);
        const grads = (precision) => {
          const t = new n.Trainer(specs, kernels, biases, specs.map(() => ({ l1: 0, l2: 0 })), ${LOSS_CODES.sparseCategoricalCrossentropy}, precision);
          const g = t.gradients(x, y, batch);
          t.dispose();
          return g;
        };
        const a = grads('fp32'), b = grads('bf16');
        const dist = (p, q) => { let d = 0, m = 0; for (let i = 0; i < p.length; i++) { d += (p[i] - q[i]) ** 2; m += q[i] ** 2; } return Math.sqrt(d / m); };
        console.log(JSON.stringify({ bf16Kernel: n.cpuInfo().bf16Kernel, loss: Math.abs(b.loss - a.loss) / a.loss,
          kernels: b.kernels.map((k, l) => dist(k, a.kernels[l])), biases: b.biases.map((k, l) => dist(k, a.biases[l])) }));`;
      const out = JSON.parse(
        execFileSync(process.execPath, ['-e', script], { env: { ...process.env, MAAS_CPU_CLASS: cls }, encoding: 'utf8' }),
      ) as { bf16Kernel: string; loss: number; kernels: number[]; biases: number[] };
      if (cls === 'intel-avx512' && !native.cpuInfo().features.amxPermitted)
        expect(out.bf16Kernel).toBe('bf16_gemm_bias_act_6x64__avx512bf16_widened');
      expect(out.loss).toBeLessThan(1e-2);
      for (const d of out.kernels) expect(d).toBeGreaterThan(0);
      for (const d of [...out.kernels, ...out.biases]) expect(d).toBeLessThan(2e-2);
    });
  }

  it('refuses a precision it does not have', () => {
    expect(() => new native.Trainer([{ in: 2, out: 1, activation: 0, alpha: 0, hasBias: false }], [new Float32Array(2)], [null], [{ l1: 0, l2: 0 }], 0, 'fp16' as 'bf16')).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
  });
});

describe('trainer argument checks', () => {
  it('refuses a categorical loss without a softmax output, and bad labels', () => {
    const spec = [{ in: 2, out: 3, activation: ACTIVATION_CODES.linear, alpha: 0, hasBias: false }];
    expect(() => new native.Trainer(spec, [new Float32Array(6)], [null], [{ l1: 0, l2: 0 }], LOSS_CODES.categoricalCrossentropy))
      .toThrowError(expect.objectContaining({ code: 'MAAS_ERR_LOSS_OUTPUT_MISMATCH' }));
    const soft = [{ ...spec[0]!, activation: ACTIVATION_CODES.softmax }];
    const t = new native.Trainer(soft, [new Float32Array(6)], [null], [{ l1: 0, l2: 0 }], LOSS_CODES.sparseCategoricalCrossentropy);
    t.setOptimizer({ kind: 0, learningRate: 0.1 });
    expect(() => t.step(new Float32Array(2), Float32Array.of(3), 1)).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_NATIVE_INVALID_ARGUMENT' }));
    expect(() => t.step(new Float32Array(2), Float32Array.of(Number.NaN), 1)).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_NATIVE_INVALID_ARGUMENT' }));
    expect(() => t.step(new Float32Array(3), Float32Array.of(1), 1)).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    expect(t.step(new Float32Array(2), Float32Array.of(1), 1).loss).toBeCloseTo(Math.log(3), 5);
  });
});

describe('optimizer update kernels on every ISA path', () => {
  const best = native.cpuInfo().isa;
  afterAll(() => native.setMaxIsa(best));
  /**
   * The GEMM kernels round in different orders, so gradients differ by float32 rounding between
   * ISAs; adam and rmsprop divide by the gradient's running magnitude, which turns that into up
   * to ~1e-3·lr per step for near-zero gradients. Five steps at lr 0.01: 5e-5.
   */
  const CROSS_ISA_TOL = 5e-5;
  const configs = [
    { kind: 0, learningRate: 0.05 },
    { kind: 0, learningRate: 0.05, momentum: 0.9 },
    { kind: 0, learningRate: 0.05, momentum: 0.9, nesterov: true },
    { kind: 1, learningRate: 0.01 },
    { kind: 2, learningRate: 0.01, weightDecay: 0.1 },
    { kind: 3, learningRate: 0.01 },
    { kind: 3, learningRate: 0.01, momentum: 0.5 },
    { kind: 1, learningRate: 0.01, clipNorm: 0.1 },
  ];

  function train(isa: (typeof isas)[number], config: (typeof configs)[number]): Float32Array[] {
    native.setMaxIsa(isa);
    const r = rng(900);
    // 37 and 3·37 floats: full vectors and a tail on every ISA width
    const kernels = [Float32Array.from({ length: 3 * 37 }, () => r.uniform(-1, 1)), Float32Array.from({ length: 37 * 2 }, () => r.uniform(-1, 1))];
    const biases = [Float32Array.from({ length: 37 }, () => r.uniform(-0.1, 0.1)), null];
    const t = new native.Trainer(
      [{ in: 3, out: 37, activation: ACTIVATION_CODES.tanh, alpha: 0, hasBias: true }, { in: 37, out: 2, activation: ACTIVATION_CODES.linear, alpha: 0, hasBias: false }],
      kernels, biases, [{ l1: 0.001, l2: 0.002 }, { l1: 0, l2: 0 }], LOSS_CODES.meanSquaredError,
    );
    t.setOptimizer(config);
    const x = Float32Array.from({ length: 8 * 3 }, () => r.uniform(-2, 2));
    const y = Float32Array.from({ length: 8 * 2 }, () => r.uniform(-1, 1));
    for (let i = 0; i < 5; i++) t.step(x, y, 8);
    t.dispose();
    return [kernels[0]!, biases[0]!, kernels[1]!];
  }

  it("reports the gradients' global norm when clipping asks for it, and skips that pass otherwise", () => {
    const r = rng(901);
    const make = () =>
      new native.Trainer(
        [{ in: 3, out: 5, activation: ACTIVATION_CODES.linear, alpha: 0, hasBias: true }],
        [Float32Array.from({ length: 15 }, () => r.uniform(-1, 1))],
        [Float32Array.from({ length: 5 }, () => r.uniform(-0.1, 0.1))],
        [{ l1: 0, l2: 0 }],
        LOSS_CODES.meanSquaredError,
      );
    const x = Float32Array.from({ length: 4 * 3 }, () => r.uniform(-2, 2));
    const y = Float32Array.from({ length: 4 * 5 }, () => r.uniform(-1, 1));
    const t = make();
    const g = t.gradients(x, y, 4);
    const want = Math.sqrt([...g.kernels, ...g.biases].reduce((s, a) => s + a.reduce((q, v) => q + v * v, 0), 0));
    t.setOptimizer({ kind: 0, learningRate: 0.01, clipNorm: 1e6 });
    expect(t.step(x, y, 4).gradNorm).toBeCloseTo(want, 4);
    t.dispose();
    const plain = make();
    plain.setOptimizer({ kind: 0, learningRate: 0.01 });
    expect(plain.step(x, y, 4).gradNorm).toBeUndefined();
    plain.dispose();
  });

  it('every rule gives the same weights on every ISA as on the scalar path', () => {
    for (const config of configs) {
      const want = train('scalar', config);
      for (const isa of isas) {
        const got = train(isa, config);
        got.forEach((arr, a) => arr.forEach((v, i) => {
          if (!(Math.abs(v - want[a]![i]!) <= CROSS_ISA_TOL)) expect.fail(`${JSON.stringify(config)} on ${isa} (seed ${TEST_SEED}): array ${a}[${i}] ${v} vs scalar ${want[a]![i]}`);
        }));
      }
    }
  });
});
