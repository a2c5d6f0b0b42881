/**
 * The native input gradient (dx = (∂y/∂x)ᵀ·dy through a round-trip packed stack) against central
 * finite differences of an independent float64 forward pass, for every activation, on every ISA
 * path; its outputs against predict; and its refusals.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { native, type ActivationName } from '../../src/native/index.js';
import { openInputGradients, packDenseStack, packRoundTrip } from '../../src/model/packed.js';
import { TEST_SEED, rng } from '../helpers.js';
import { packLayers, randomLayers, refForward, type RefLayer } from './reference-stack.js';
import { ACTIVATIONS } from '../../src/layers/activations.js';

const GRAD_ABS_TOL = 2e-4;
const GRAD_REL_TOL = 2e-3;
const FD_STEP = 1e-6;


/** dy·y(x) in float64, the scalar whose gradient the native call returns. */
function weightedOutput(layers: readonly RefLayer[], row: ArrayLike<number>, dy: ArrayLike<number>): number {
  return refForward(layers, row).reduce((s, v, j) => s + v * dy[j]!, 0);
}

function checkInputGradient(layers: RefLayer[], seed: number, what: string, batch = 4): void {
  const r = rng(seed);
  // The reference reads the float32-rounded weights the packed stack holds.
  for (const l of layers) {
    l.w = Float64Array.from(Float32Array.from(l.w));
    if (l.b) l.b = Float64Array.from(Float32Array.from(l.b));
  }
  const d = layers[0]!.in;
  const out = layers[layers.length - 1]!.out;
  const x = Float32Array.from({ length: batch * d }, () => r.uniform(-1.5, 1.5));
  const dy = Float32Array.from({ length: batch * out }, () => r.uniform(-1, 1));
  const handle = openInputGradients(packRoundTrip(packLayers(layers)));
  const dx = new Float32Array(batch * d);
  const y = new Float32Array(batch * out);
  handle.gradient(x, batch, dy, dx, y);
  handle.dispose();
  for (let b = 0; b < batch; b++) {
    const row = Array.from(x.subarray(b * d, (b + 1) * d));
    const wy = dy.subarray(b * out, (b + 1) * out);
    const ref = refForward(layers, row);
    ref.forEach((v, j) => {
      if (!(Math.abs(y[b * out + j]! - v) <= 1e-4 + 1e-4 * Math.abs(v)))
        expect.fail(`${what} (seed ${TEST_SEED}): y[${b}][${j}] ${y[b * out + j]} vs ${v}`);
    });
    for (let i = 0; i < d; i++) {
      const keep = row[i]!;
      row[i] = keep + FD_STEP;
      const up = weightedOutput(layers, row, wy);
      row[i] = keep - FD_STEP;
      const down = weightedOutput(layers, row, wy);
      row[i] = keep;
      const fd = (up - down) / (2 * FD_STEP);
      const got = dx[b * d + i]!;
      if (!(Math.abs(got - fd) <= GRAD_ABS_TOL + GRAD_REL_TOL * Math.abs(fd)))
        expect.fail(`${what} (seed ${TEST_SEED}): dx[${b}][${i}] native ${got} vs finite difference ${fd}`);
    }
  }
}

const isas = [...new Set(native.cpuInfo().f32Kernels.filter((k) => k.supported && k.weights === 'fp32').map((k) => k.isa))];
const HIDDEN = ACTIVATIONS.filter((a) => a !== 'softmax') as ActivationName[];

describe('input gradient against central finite differences (float64)', () => {
  const best = native.cpuInfo().isa;
  afterAll(() => native.setMaxIsa(best));

  for (const isa of isas) {
    it(`every hidden activation, linear, sigmoid and softmax heads, on ${isa}`, () => {
      native.setMaxIsa(isa);
      HIDDEN.forEach((act, i) => {
        const second = act === 'exponential' ? 'tanh' : act;
        checkInputGradient(randomLayers(rng(100 + i), [6, 9, 7, 3], [act, second, 'linear']), 200 + i, `${act}/linear/${isa}`);
        checkInputGradient(randomLayers(rng(300 + i), [5, 8, 1], [act, 'sigmoid']), 400 + i, `${act}/sigmoid/${isa}`);
        checkInputGradient(randomLayers(rng(500 + i), [7, 6, 4], [act, 'softmax']), 600 + i, `${act}/softmax/${isa}`);
      });
    });

    it(`crosses the GEMM tiles: 70 inputs, 130 hidden units and a batch of 37 on ${isa}`, () => {
      native.setMaxIsa(isa);
      checkInputGradient(randomLayers(rng(700), [70, 130, 10], ['relu', 'softmax']), 800, `wide/${isa}`, 37);
    });
  }
});

describe('input gradient handle', () => {
  const layers = randomLayers(rng(900), [4, 5, 2], ['tanh', 'linear']);

  it('refuses a stack that is not a round trip, wrong shapes, and calls after dispose', () => {
    const plain = packRoundTrip(packLayers(layers));
    // The model alone (no transposed half) is a valid dense stack but no round trip.
    expect(() => openInputGradients(packDenseStack(packLayers(layers)))).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
    expect(() => openInputGradients({ buffer: new ArrayBuffer(64) as unknown as SharedArrayBuffer })).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_PACKED_CORRUPT' }),
    );
    const handle = openInputGradients(plain);
    expect(handle.inputSize).toBe(4);
    expect(handle.outputSize).toBe(2);
    const dx = new Float32Array(8);
    expect(() => handle.gradient(new Float32Array(8), 2, new Float32Array(3), dx)).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }),
    );
    expect(() => handle.gradient(new Float32Array(7), 2, new Float32Array(4), dx)).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }),
    );
    handle.gradient(new Float32Array(8), 2, new Float32Array(4), dx);
    handle.dispose();
    expect(() => handle.gradient(new Float32Array(8), 2, new Float32Array(4), dx)).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_MODEL_DISPOSED' }),
    );
  });
});
