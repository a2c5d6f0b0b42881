/**
 * Every fp32-family GEMM kernel on every ISA path this CPU allows, against the double-precision
 * scalar reference, over the named shape sweep, with every fused activation, strided rows, bias or
 * none, one and two threads, and guards that catch reads and writes past the ends. A kernel that
 * stores bf16 weights is checked against the reference given A and B rounded to bf16 as the kernel
 * rounds them: what remains is fp32 summation, held to the same bound as the fp32 kernels.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  ACTIVATION_CODES,
  addonPath,
  native,
  type ActivationName,
  type NativeActivationParams,
  type NativeF32KernelInfo,
  type IsaName,
} from '../../src/native/index.js';
import { WRITE_GUARD, TEST_SEED, guardedInput, rng, shapeName, stridedMatrix, tailIntact } from '../helpers.js';

/** The sweep STYLE.md names: odd sizes, tails on both sides of every register tile. */
const SWEEP = [1, 2, 3, 5, 7, 15, 17, 31, 33, 63, 67, 127, 129];
/** K on both sides of the driver's K block (256) and twice it. */
/** K on both sides of a kernel's K block and of two blocks (the C tile is reloaded between blocks). */
const kAroundBlock = (kc: number) => [kc - 1, kc, kc + 1, 2 * kc - 1, 2 * kc + 1];

/** x rounded to bf16 (nearest even, subnormals flushed, NaN kept), as every bf16 kernel rounds A and B. */
const bf16Float = new Float32Array(1);
const bf16Bits = new Uint32Array(bf16Float.buffer);
function bf16(x: number): number {
  bf16Float[0] = x;
  const bits = bf16Bits[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) bf16Bits[0] = (bits | 0x400000) & 0xffff0000;
  else if ((bits & 0x7f800000) === 0) bf16Bits[0] = bits & 0x80000000;
  else bf16Bits[0] = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  return bf16Float[0];
}
/** The operands the kernel multiplies: its inputs as they are, or rounded to bf16. */
const asMultiplied = (kernel: NativeF32KernelInfo, v: Float32Array): Float32Array =>
  kernel.weights === 'bf16' ? v.map(bf16) : v;

/** Unit roundoff of float32. */
const U32 = 2 ** -24;
/** A K-term dot product in float32 is within (K + 2)·u·Σ|a·b| of the exact value (FMA rounding, bias). */
const gemmGamma = (k: number): number => (k + 2) * U32;
/**
 * How much each activation can amplify an input error near an output `y` (its largest slope;
 * exp's slope is its own value, so its bound is relative).
 */
const LIPSCHITZ: Record<ActivationName, (alpha: number, y: number) => number> = {
  linear: () => 1,
  relu: () => 1,
  leakyRelu: (a) => Math.max(1, Math.abs(a)),
  elu: (a) => Math.max(1, Math.abs(a)),
  sigmoid: () => 0.25,
  tanh: () => 1,
  softmax: () => 2,
  relu6: () => 1,
  hardSigmoid: () => 0.2,
  swish: () => 1.1,
  gelu: () => 1.13,
  softplus: () => 1,
  softsign: () => 1,
  selu: () => 1.0507 * 1.6733,
  exponential: (_a, y) => Math.abs(y),
  kerasRelu: (a) => Math.max(1, Math.abs(a)),
  geluTanh: () => 1.13,
};
/** The vector exp and division add a few ulps of the output, and tanh near 0 an ulp of 1. */
const ACT_RELATIVE = 8 * U32;
const ACT_ABSOLUTE = 2 * U32;
/** Each activation's parameters in the sweep: kerasRelu with all three (Keras's ReLU layer). */
const PARAMS: Partial<Record<ActivationName, NativeActivationParams>> = {
  leakyRelu: { alpha: 0.3 },
  elu: { alpha: 1.3 },
  kerasRelu: { alpha: 0.2, maxValue: 2.5, threshold: 0.5 },
};
const paramsOf = (act: ActivationName): NativeActivationParams => PARAMS[act] ?? { alpha: 0 };
/** Activations whose value is a few vector ops on x (no exp): tested on unscaled inputs. */
const PIECEWISE: ActivationName[] = ['linear', 'relu', 'relu6', 'hardSigmoid', 'kerasRelu'];

interface Case {
  m: number;
  n: number;
  k: number;
  act: ActivationName;
  bias: boolean;
  lda?: number;
  ldy?: number;
  threads?: number;
  /** Scales inputs so pre-activations cover the nonlinear range of exp-based activations. */
  scale?: number;
  /** Activation parameters other than the sweep's (kerasRelu's combinations). */
  params?: NativeActivationParams;
}

/** Runs one case on `kernel` and the reference; returns a failure description or null. */
function runCase(kernel: NativeF32KernelInfo, c: Case, salt: number): string | null {
  const r = rng(salt);
  const lda = c.lda ?? c.k;
  const ldy = c.ldy ?? c.n;
  const x = c.lda ? stridedMatrix(r, c.m, c.k, lda, Number.NaN) : guardedInput(r, c.m * c.k);
  if (c.scale) for (let i = 0; i < x.length; i++) x[i]! *= c.scale;
  const w = guardedInput(r, c.k * c.n);
  const bias = c.bias ? guardedInput(r, c.n) : null;
  const y = stridedMatrix(null, c.m, c.n, ldy, WRITE_GUARD);
  const want = new Float32Array(c.m * c.n);
  const mag = new Float32Array(c.m * c.n);
  const code = ACTIVATION_CODES[c.act];
  const params = c.params ?? paramsOf(c.act);
  native._gemm(kernel.name, x, lda, w, bias, c.m, c.n, c.k, code, params, y, ldy, c.threads ?? 1);
  native._referenceDense(asMultiplied(kernel, x), lda, asMultiplied(kernel, w), bias, c.m, c.n, c.k, code, params, want, c.n, mag);
  const where = `seed ${TEST_SEED}, ${kernel.name}, ${shapeName(c.m, c.n, c.k)} ${c.act}${c.bias ? '+bias' : ''}` +
    `${c.params ? ` ${JSON.stringify(c.params)}` : ''}` +
    `${c.lda ? ` lda${lda}` : ''}${c.ldy ? ` ldy${ldy}` : ''}${c.threads ? ` threads${c.threads}` : ''}`;
  if (!tailIntact(y, WRITE_GUARD)) return `${where}: wrote past the end of y`;
  for (let i = 0; i < c.m; i++) {
    let rowMag = 0;
    if (c.act === 'softmax') for (let j = 0; j < c.n; j++) rowMag = Math.max(rowMag, mag[i * c.n + j]!);
    for (let j = 0; j < ldy && i * ldy + j < y.length; j++) {
      const got = y[i * ldy + j]!;
      if (j >= c.n) {
        if (got !== WRITE_GUARD) return `${where}: wrote into the row gap at (${i}, ${j})`;
        continue;
      }
      const ref = want[i * c.n + j]!;
      const scaleOfError = c.act === 'softmax' ? rowMag : mag[i * c.n + j]!;
      const lipschitz = LIPSCHITZ[c.act](params.alpha, ref);
      const tol = lipschitz * gemmGamma(c.k) * scaleOfError + ACT_RELATIVE * Math.abs(ref) + ACT_ABSOLUTE;
      if (!(Math.abs(got - ref) <= tol)) {
        return `${where}: first bad coordinate (${i}, ${j}): got ${got}, want ${ref}, |err| ${Math.abs(got - ref)} > tol ${tol}`;
      }
    }
  }
  return null;
}

function expectAll(kernel: NativeF32KernelInfo, cases: Case[], salt: number): void {
  let checked = 0;
  for (const c of cases) {
    const failure = runCase(kernel, c, salt + checked++);
    if (failure) expect.fail(failure);
  }
  expect(checked).toBe(cases.length);
}

const kernels = native.cpuInfo().f32Kernels;

const ALL_CLASSES = ['generic', 'avx2', 'zen4', 'zen5', 'intel-avx512'] as const;

describe('fp32 GEMM kernel list', () => {
  it('lists each kernel once, best first, with a fallback for every class on every ISA', () => {
    const names = kernels.map((k) => k.name);
    expect(new Set(names).size).toBe(names.length);
    expect(kernels.at(-1)!.isa).toBe('scalar');
    expect(kernels.find((k) => k.isa === 'scalar')!.supported).toBe(true);
    for (const k of kernels) expect(k.name).toMatch(new RegExp(`^${k.weights === 'bf16' ? 'bf16' : 'f32'}_gemm_bias_act_${k.mr}x${k.nr}__`));
    // Within an ISA and weight format, class-specific kernels come first and the last one serves every class.
    for (const weights of ['fp32', 'bf16'] as const) {
      const ofFormat = kernels.filter((k) => k.weights === weights);
      expect(ofFormat.at(-1)!.isa, `a scalar ${weights} kernel serves every CPU`).toBe('scalar');
      // Kernels tuned for no class (AMX tilings over emulated tiles) are for tests, never dispatched.
      const dispatched = ofFormat.filter((k) => k.cpuClasses.length > 0);
      for (const isa of new Set(dispatched.map((k) => k.isa))) {
        const ofIsa = dispatched.filter((k) => k.isa === isa);
        expect([...ofIsa.at(-1)!.cpuClasses].sort(), `${weights} ${isa}`).toEqual([...ALL_CLASSES].sort());
      }
    }
  });

  it('picks each CPU class its tuned kernel, under any ISA cap (the rule, for made-up CPUs)', () => {
    const avx512 = { avx2Fma: true, avx512: true, avx512Vnni: true };
    const cpus = {
      zen4: { vendor: 2, family: 0x19, model: 0x11, ...avx512 },
      zen5: { vendor: 2, family: 0x1a, model: 0x02, ...avx512 },
      'intel-avx512': { vendor: 1, family: 6, model: 0x8f, ...avx512, amxInt8: true, amxPermitted: true },
      avx2: { vendor: 2, family: 0x17, model: 0x31, avx2Fma: true },
      generic: {},
    } as const;
    const want: Record<keyof typeof cpus, string> = {
      zen4: 'f32_gemm_bias_act_14x32__avx512f',
      zen5: 'f32_gemm_bias_act_6x64__avx512f_broadcast',
      'intel-avx512': 'f32_gemm_bias_act_6x64__avx512f_broadcast_pf16',
      avx2: 'f32_gemm_bias_act_6x16__avx2_fma',
      generic: 'f32_gemm_bias_act_4x8__scalar',
    };
    for (const [name, cpu] of Object.entries(cpus) as [keyof typeof cpus, (typeof cpus)[keyof typeof cpus]][]) {
      expect(native._selectF32Gemm(cpu, 'amx'), name).toEqual({ kernel: want[name], cpuClass: name });
      // A cap below AVX-512 takes the AVX2 kernel whatever the class; a forced class is obeyed.
      if (cpu !== cpus.generic) expect(native._selectF32Gemm(cpu, 'avx2').kernel).toBe('f32_gemm_bias_act_6x16__avx2_fma');
    }
    expect(native._selectF32Gemm(cpus.zen5, 'amx', 'zen4').kernel).toBe('f32_gemm_bias_act_14x32__avx512f');
    // bf16 weights: AMX tiles where granted; vdpbf16ps where AVX512_BF16 is present and within the
    // cap (Intel: its blocked products widened to fp32 FMAs, the dot being half-rate there); widened
    // pairs on AVX2 otherwise (an AVX-512 CPU without it, or a cap below it), the scalar twin last.
    const bf16 = (cpu: object, cap: IsaName) => native._selectF32Gemm(cpu, cap, undefined, 'bf16').kernel;
    expect(bf16({ ...cpus['intel-avx512'], avx512Bf16: true }, 'amx')).toBe('bf16_gemm_bias_act_32x16__amx');
    expect(bf16({ ...cpus['intel-avx512'], avx512Bf16: true, amxPermitted: false }, 'amx')).toBe(
      'bf16_gemm_bias_act_6x64__avx512bf16_widened',
    );
    const emulated = kernels.find((k) => k.name === 'bf16_gemm_bias_act_32x16__avx512_amxemu')!;
    const amx = kernels.find((k) => k.name === 'bf16_gemm_bias_act_32x16__amx')!;
    expect(emulated.cpuClasses).toEqual([]);
    expect([emulated.mr, emulated.nr, emulated.kc, emulated.mc]).toEqual([amx.mr, amx.nr, amx.kc, amx.mc]);
    for (const cls of ['zen4', 'zen5', 'intel-avx512'] as const) {
      const dot = cls === 'intel-avx512' ? 'bf16_gemm_bias_act_6x64__avx512bf16_widened' : 'bf16_gemm_bias_act_6x64__avx512bf16';
      expect(bf16({ ...cpus[cls], avx512Bf16: true }, 'avx512bf16')).toBe(dot);
      expect(bf16({ ...cpus[cls], avx512Bf16: true }, 'avx512vnni')).toBe('bf16_gemm_bias_act_4x16__avx2_fma');
      expect(bf16(cpus[cls], 'amx')).toBe('bf16_gemm_bias_act_4x16__avx2_fma');
    }
    expect(bf16(cpus.avx2, 'amx')).toBe('bf16_gemm_bias_act_4x16__avx2_fma');
    expect(bf16(cpus.generic, 'amx')).toBe('bf16_gemm_bias_act_4x8__scalar');
    expect(() => native._selectF32Gemm(cpus.zen5, 'amx', undefined, 'fp16' as 'bf16')).toThrow(/unknown weight precision/);
    expect(native._selectF32Gemm(cpus.zen4, 'amx', 'zen5').kernel).toBe('f32_gemm_bias_act_6x64__avx512f_broadcast');
    expect(() => native._selectF32Gemm(cpus.zen5, 'amx', 'pentium' as 'zen5')).toThrow(/unknown CPU class/);
  });

  it('reports the class it chose for, and MAAS_CPU_CLASS forces one (checked in a child process)', () => {
    const info = native.cpuInfo();
    expect(ALL_CLASSES).toContain(info.cpuClass);
    expect(info.cpuClass).toBe(process.env.MAAS_CPU_CLASS ?? info.detectedCpuClass);
    const forced = JSON.parse(
      execFileSync(
        process.execPath,
        ['-e', `const n = require(${JSON.stringify(addonPath())}); const i = n.cpuInfo(); console.log(JSON.stringify([i.cpuClass, i.f32Kernel]))`],
        { env: { ...process.env, MAAS_CPU_CLASS: 'zen4' }, encoding: 'utf8' },
      ),
    ) as [string, string];
    expect(forced[0]).toBe('zen4');
    const cap = native.cpuInfo().cap;
    if (cap === 'avx512' || cap === 'avx512vnni' || cap === 'avx512bf16' || cap === 'amx') expect(forced[1]).toBe('f32_gemm_bias_act_14x32__avx512f');
  });
});

for (const kernel of kernels.filter((k) => k.supported)) {
  describe(kernel.name, () => {
    beforeAll(() => {
      native.setThreads(2);
    });

    it('matches the reference over the full M × N × K sweep (linear, bias)', () => {
      const cases: Case[] = [];
      for (const m of SWEEP) for (const n of SWEEP) for (const k of SWEEP) cases.push({ m, n, k, act: 'linear', bias: true });
      expectAll(kernel, cases, 1000);
    });

    it('matches the reference with K around the block size, without bias', () => {
      const cases: Case[] = [];
      for (const m of [1, 2, kernel.mr, kernel.mr + 1, 3 * kernel.mr + 2, 100]) {
        for (const n of [1, kernel.nr - 1, kernel.nr + 1, 64]) for (const k of kAroundBlock(kernel.kc)) cases.push({ m, n, k, act: 'linear', bias: false });
      }
      expectAll(kernel, cases, 2000);
    });

    // bf16 weights only: the fp32 kernels multiply the weights as they are.
    if (kernel.weights === 'bf16')
      it('packs every special weight value as bf16 rounds it (both halves of a pair)', () => {
      // Ties to even both ways, subnormals (flushed to signed zero), ±0, ±Inf, NaN, the largest
      // finite (rounds to Inf), an ordinary value: 13 columns, so the 4-wide packing and its tail.
      const bits = [0x3f808000, 0x3f818000, 0x00000001, 0x807fffff, 0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0x7f7fffff, 0x3f8000ff, 0xbf7fffff, 0x40490fdb];
      const specials = new Float32Array(new Uint32Array(bits).buffer);
      const n = specials.length;
      for (const half of [0, 1]) {
        // W's row `half` holds the specials, the other row ones; x picks row `half` alone (the
        // other row's products are 0 · 1, so an Inf or NaN reaches only its own column).
        const w = new Float32Array(2 * n).fill(1);
        w.set(specials, half * n);
        const x = Float32Array.from(half === 0 ? [1, 0] : [0, 1]);
        const y = new Float32Array(n);
        native._gemm(kernel.name, x, 2, w, null, 1, n, 2, ACTIVATION_CODES.linear, 0, y, n, 1);
        // The sum adds 0 · 1, so a signed zero reads +0: zeros compare by value.
        for (let j = 0; j < n; j++) {
          const want = bf16(specials[j]!);
          expect(Number.isNaN(want) ? Number.isNaN(y[j]) : y[j] === want, `column ${j} (bits ${bits[j]!.toString(16)}), ${half ? 'high' : 'low'} half: ${y[j]} for ${want}`).toBe(true);
        }
      }
    });

    it('matches the reference with M around the rows of an A block', () => {
      const cases: Case[] = [];
      for (const m of [kernel.mc - 1, kernel.mc, kernel.mc + 1, 2 * kernel.mc + kernel.mr + 1])
        cases.push({ m, n: kernel.nr + 1, k: kernel.kc + 1, act: 'relu', bias: true });
      // The AMX kernels size their A blocks by K once B passes 1 MiB (96 rows at K 4100, 113
      // columns): M crosses two.
      cases.push({ m: 200, n: 113, k: 4100, act: 'relu', bias: true });
      expectAll(kernel, cases, 2500);
    });

    it('fuses every activation', () => {
      const cases: Case[] = [];
      for (const act of Object.keys(ACTIVATION_CODES) as ActivationName[]) {
        for (const m of [1, 3, 15, 17, 67]) for (const n of [1, 5, 17, 33, 67]) for (const k of [1, 7, 33, 129]) {
          cases.push({ m, n, k, act, bias: true, scale: PIECEWISE.includes(act) ? 1 : 3 });
        }
      }
      expectAll(kernel, cases, 3000);
    });

    it('fuses Keras ReLU in every combination of max_value, negative_slope and threshold', () => {
      const cases: Case[] = [];
      for (const maxValue of [undefined, 0, 0.7, 6]) {
        for (const alpha of [0, 0.1, 1.5]) {
          for (const threshold of [0, 0.25, 1]) {
            const params: NativeActivationParams = { alpha, threshold, ...(maxValue === undefined ? {} : { maxValue }) };
            for (const [m, n, k] of [[1, 5, 7], [17, 33, 31], [15, 67, 129]] as const) {
              cases.push({ m, n, k, act: 'kerasRelu', bias: true, params });
            }
          }
        }
      }
      expectAll(kernel, cases, 3500);
    });

    it("the activation pass (training's and the int8 path's) matches the reference over tails", () => {
      const r = rng(3700);
      for (const act of (Object.keys(ACTIVATION_CODES) as ActivationName[]).filter((a) => a !== 'softmax')) {
        for (const n of [1, 7, 8, 15, 16, 17, 33, 67]) {
          const z = Float32Array.from({ length: n }, () => r.uniform(-6, 6));
          const y = stridedMatrix(null, 1, n, n, WRITE_GUARD);
          const want = new Float32Array(n);
          native._activate(kernel.name, ACTIVATION_CODES[act], paramsOf(act), z, y);
          // x·1 with k = 1 is exact: the reference applies the activation to z itself.
          native._referenceDense(z, 1, Float32Array.of(1), null, n, 1, 1, ACTIVATION_CODES[act], paramsOf(act), want, 1, null);
          if (!tailIntact(y, WRITE_GUARD)) expect.fail(`${kernel.name} ${act} n${n}: wrote past the end`);
          for (let i = 0; i < n; i++) {
            if (!(Math.abs(y[i]! - want[i]!) <= ACT_RELATIVE * Math.abs(want[i]!) + ACT_ABSOLUTE))
              expect.fail(`${kernel.name} ${act} n${n} (seed ${TEST_SEED}): ${i}: got ${y[i]}, want ${want[i]}`);
          }
        }
      }
    });

    it('accepts every code of ACTIVATION_CODES and refuses the next one', () => {
      const x = new Float32Array(4).fill(0.5), w = new Float32Array(4).fill(0.5), y = new Float32Array(4);
      const codes = Object.values(ACTIVATION_CODES);
      expect(codes).toEqual(codes.map((_, i) => i));
      for (const code of codes) native._gemm(kernel.name, x, 2, w, null, 2, 2, 2, code, 0, y, 2, 1);
      expect(() => native._gemm(kernel.name, x, 2, w, null, 2, 2, 2, codes.length, 0, y, 2, 1)).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
      );
    });

    it('refuses Keras ReLU parameters Keras refuses, with a coded error', () => {
      const x = new Float32Array(4).fill(1), w = new Float32Array(4).fill(1), y = new Float32Array(4);
      for (const bad of [{ alpha: -0.1 }, { alpha: 0, maxValue: -1 }, { alpha: 0, threshold: -0.5 }, { alpha: 0, maxValue: Number.NaN }]) {
        expect(() => native._gemm(kernel.name, x, 2, w, null, 2, 2, 2, ACTIVATION_CODES.kerasRelu, bad, y, 2, 1)).toThrow(
          expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
        );
      }
    });

    it('reads strided rows and writes strided rows without touching the gaps', () => {
      const cases: Case[] = [];
      for (const act of ['linear', 'relu', 'softmax'] as ActivationName[]) {
        for (const m of [1, 7, 31]) for (const n of [3, 33]) for (const k of [5, 63, 257]) cases.push({ m, n, k, act, bias: true, lda: k + 5, ldy: n + 3 });
      }
      expectAll(kernel, cases, 4000);
    });

    it('splits over two threads by rows and by panels with the same results', () => {
      const cases: Case[] = [];
      for (const act of ['linear', 'sigmoid', 'softmax'] as ActivationName[]) {
        for (const m of [1, 2, 29, 200]) for (const n of [7, 200, 513]) cases.push({ m, n, k: 300, act, bias: true, threads: 2 });
      }
      expectAll(kernel, cases, 5000);
    });

    it('exponential reaches the top of the float range and overflows to inf as libm does', () => {
      // Pre-activations x·1 exactly; n = 1 runs the narrow path, n = 40 the register tiles.
      const xs = [-104, -95, -60, 0, 1, 60, 85, 88, 88.37, 88.5, 88.7, 88.72, 88.73, 89, 120];
      for (const n of [1, 40]) {
        const x = Float32Array.from(xs);
        const w = new Float32Array(n).fill(1);
        const got = new Float32Array(xs.length * n), want = new Float32Array(xs.length * n);
        native._gemm(kernel.name, x, 1, w, null, xs.length, n, 1, ACTIVATION_CODES.exponential, 0, got, n, 1);
        native._referenceDense(asMultiplied(kernel, x), 1, w, null, xs.length, n, 1, ACTIVATION_CODES.exponential, 0, want, n, null);
        for (let i = 0; i < got.length; i++) {
          const ok = want[i] === Infinity ? got[i] === Infinity : Math.abs(got[i]! - want[i]!) <= ACT_RELATIVE * want[i]! + 1e-45;
          if (!ok) expect.fail(`${kernel.name} exp(${x[Math.floor(i / n)]}) n${n}: got ${got[i]}, want ${want[i]}`);
        }
      }
    });

    it('softmax stays finite and sums to one for large logits', () => {
      const m = 9, n = 37, k = 16;
      const x = new Float32Array(m * k).fill(40);
      const w = Float32Array.from({ length: k * n }, (_, i) => ((i % 7) - 3) * 0.9);
      const y = new Float32Array(m * n);
      native._gemm(kernel.name, x, k, w, null, m, n, k, ACTIVATION_CODES.softmax, 0, y, n, 1);
      for (let i = 0; i < m; i++) {
        const row = y.subarray(i * n, (i + 1) * n);
        expect(row.every(Number.isFinite)).toBe(true);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      }
    });
  });
}
