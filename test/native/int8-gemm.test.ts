/**
 * Every int8 GEMM kernel on every ISA path this CPU allows, against the integer reference, bit for
 * bit: the named shape sweep (odd M/N/K, K not a multiple of 4, batch 1), fp32 and u8 outputs,
 * relu, relu6 and Keras ReLU, bias or none, strided rows, two threads, write guards. Paths the CPU lacks are skipped
 * with the reason in the test name. Dispatch under each cap, and on made-up CPUs (AMX).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/core/package-root.js';
import {
  ACTIVATION_CODES,
  ISA_LEVELS,
  native,
  type NativeActivationParams,
  type NativeCpuFeatures,
  type NativeInt8KernelInfo,
} from '../../src/native/index.js';
import { decodeTensor } from '../../src/io/onnx.js';
import { TEST_SEED, rng, shapeName } from '../helpers.js';
import type { Random } from '../../src/core/random.js';

const SWEEP = [1, 2, 3, 5, 7, 15, 17, 31, 33, 63, 67, 127, 129];
/** K around the 4-byte groups and the AMX 64-byte step. */
const K_AROUND_GROUPS = [4, 63, 64, 65, 255, 256, 257];
const GUARD = -7777.25;
const GUARD_U8 = 0xa5;
const PAD = 16;

interface Case {
  m: number;
  n: number;
  k: number;
  /** A fused activation (the epilogue fuses relu, relu6 and Keras ReLU); linear when absent. */
  act?: 'relu' | 'relu6' | 'kerasRelu';
  /** kerasRelu's parameters. */
  params?: NativeActivationParams;
  bias?: boolean;
  u8?: boolean;
  lda?: number;
  ldo?: number;
  threads?: number;
}

const int = (r: Random, lo: number, hi: number): number => Math.min(hi, lo + Math.floor(r.uniform(0, 1) * (hi - lo + 1)));

/** Runs one case on `kernel` and the reference; returns a failure description or null. */
function runCase(kernel: NativeInt8KernelInfo, c: Case, salt: number): string | null {
  const r = rng(salt);
  const k4 = Math.ceil(c.k / 4) * 4;
  const lda = c.lda ?? k4;
  const ldo = c.ldo ?? c.n;
  // Activations within the kernel's promise; pad bytes past k hold garbage the kernel must ignore.
  const a = new Uint8Array((c.m - 1) * lda + k4).fill(0xff);
  for (let i = 0; i < c.m; i++) for (let p = 0; p < c.k; p++) a[i * lda + p] = int(r, 0, kernel.aMax);
  const aZero = int(r, 0, kernel.aMax);
  const w = Int8Array.from({ length: c.k * c.n }, () => int(r, -128, 127));
  // relu6 and Keras ReLU clip: smaller scales keep most outputs inside the clip so it is not all they see.
  const small = c.act === 'relu6' || c.act === 'kerasRelu';
  const scale = Float32Array.from({ length: c.n }, () => (small ? r.uniform(1e-5, 2e-4) : r.uniform(1e-4, 2e-3)));
  const bias = c.bias ? Float32Array.from({ length: c.n }, () => r.uniform(-2, 2)) : null;
  const act = ACTIVATION_CODES[c.act ?? 'linear'];
  const outLength = (c.m - 1) * ldo + c.n;
  const outScale = 0.01, outZero = int(r, 0, kernel.aMax);
  const got = c.u8 ? new Uint8Array(outLength + PAD).fill(GUARD_U8) : new Float32Array(outLength + PAD).fill(GUARD);
  const want = c.u8 ? new Uint8Array(outLength + PAD).fill(GUARD_U8) : new Float32Array(outLength + PAD).fill(GUARD);
  native._qgemm(kernel.name, a, lda, aZero, w, scale, bias, c.m, c.n, c.k, act, got.subarray(0, outLength), ldo, outScale, outZero, c.threads ?? 1, c.params);
  native._referenceQGemm(a, lda, aZero, w, scale, bias, c.m, c.n, c.k, act, want.subarray(0, outLength), ldo, outScale, outZero, kernel.aMax, c.params);
  const where = `seed ${TEST_SEED}, ${kernel.name}, ${shapeName(c.m, c.n, c.k)}${c.act ? ` ${c.act}` : ''}${c.params ? ` ${JSON.stringify(c.params)}` : ''}${c.bias ? '+bias' : ''}${c.u8 ? ' u8' : ' f32'}` +
    `${c.lda ? ` lda${lda}` : ''}${c.ldo ? ` ldo${ldo}` : ''}${c.threads ? ` threads${c.threads}` : ''}`;
  for (let idx = 0; idx < got.length; idx++) {
    if (!Object.is(got[idx], want[idx])) {
      const i = Math.floor(idx / ldo), j = idx % ldo;
      return `${where}: first bad coordinate (${i}, ${j}): got ${got[idx]}, want ${want[idx]}${idx >= outLength ? ' (past the end)' : j >= c.n ? ' (row gap)' : ''}`;
    }
  }
  return null;
}

function expectAll(kernel: NativeInt8KernelInfo, cases: Case[], salt: number): void {
  let checked = 0;
  for (const c of cases) {
    const failure = runCase(kernel, c, salt + checked++);
    if (failure) expect.fail(failure);
  }
  expect(checked).toBe(cases.length);
}

const info = native.cpuInfo();
const kernels = info.int8Kernels;
const bestCap = info.cap;

afterAll(() => {
  native.setMaxIsa(bestCap);
});

describe('int8 GEMM kernel list and dispatch', () => {
  it('lists each kernel once, best ISA first, with a fallback for every class on every ISA', () => {
    const names = kernels.map((k) => k.name);
    expect(new Set(names).size).toBe(names.length);
    const isas = kernels.map((k) => k.isa);
    expect(isas).toEqual([...isas].sort((x, y) => ISA_LEVELS.indexOf(y) - ISA_LEVELS.indexOf(x)));
    expect(kernels[kernels.length - 1]).toMatchObject({ isa: 'scalar', supported: true });
    for (const k of kernels) expect(k.name).toMatch(new RegExp(`^qu[78]s8_gemm_bias_relu_requant_${k.mr}x${k.nr}c${k.kAlign}__${k.isa}(_[a-z0-9]+)?$`));
    for (const isa of new Set(isas)) expect(kernels.filter((k) => k.isa === isa).at(-1)!.cpuClasses, isa).toHaveLength(5);
    // The AMX tiling over emulated tiles is never dispatched (no class), and has the AMX kernel's shape.
    const amx = kernels.find((k) => k.isa === 'amx')!;
    const emulated = kernels.find((k) => k.name.endsWith('_amxemu'))!;
    expect(emulated.cpuClasses).toEqual([]);
    expect([emulated.mr, emulated.nr, emulated.kAlign]).toEqual([amx.mr, amx.nr, amx.kAlign]);
    // Only the AVX2 path keeps activations in 7 bits.
    for (const k of kernels) expect(k.aMax).toBe(k.isa === 'avx2' ? 127 : 255);
  });

  it('each cap selects the best supported kernel at or below it, and the fp32 family follows the same cap', () => {
    for (const cap of ISA_LEVELS) {
      native.setMaxIsa(cap);
      const now = native.cpuInfo();
      // The first supported kernel within the cap that is tuned for this process's class.
      const expected = kernels.find(
        (k) =>
          k.supported && ISA_LEVELS.indexOf(k.isa) <= ISA_LEVELS.indexOf(now.cap) && k.cpuClasses.includes(now.cpuClass),
      )!;
      expect(now.int8Kernel, `cap ${cap}`).toBe(expected.name);
      if (now.cpuClass === now.detectedCpuClass) {
        const vendor = { intel: 1, amd: 2, other: 0 }[now.vendor];
        const here = { ...now.features, vendor, family: now.family, model: now.model };
        expect(native._selectInt8Gemm(here, now.cap)).toBe(expected.name);
      }
      expect(ISA_LEVELS.indexOf(now.isa)).toBeLessThanOrEqual(ISA_LEVELS.indexOf(now.cap));
    }
    native.setMaxIsa(bestCap);
  });

  it('selects AMX only when CPUID reports AMX-INT8 and the kernel granted tile data', () => {
    const sprLike: NativeCpuFeatures = { avx2Fma: true, avx512: true, avx512Vnni: true, avxVnni: true, avx512Bf16: true, amxInt8: true, amxPermitted: true };
    expect(native._selectInt8Gemm(sprLike, 'amx')).toMatch(/__amx$/);
    expect(native._selectInt8Gemm({ ...sprLike, amxPermitted: false }, 'amx')).toMatch(/__avx512vnni$/);
    expect(native._selectInt8Gemm({ ...sprLike, amxInt8: false, amxPermitted: false }, 'amx')).toMatch(/__avx512vnni$/);
    expect(native._selectInt8Gemm(sprLike, 'avx512vnni')).toMatch(/__avx512vnni$/);
    expect(native._selectInt8Gemm(sprLike, 'avx512')).toMatch(/__avxvnni$/);
    expect(native._selectInt8Gemm({ ...sprLike, avxVnni: false }, 'avx512')).toMatch(/__avx2$/);
    const adlLike: NativeCpuFeatures = { avx2Fma: true, avx512: false, avx512Vnni: false, avxVnni: true, avx512Bf16: false, amxInt8: false, amxPermitted: false };
    expect(native._selectInt8Gemm(adlLike, 'amx')).toMatch(/__avxvnni$/);
    expect(native._selectInt8Gemm({ ...adlLike, avx2Fma: false, avxVnni: false }, 'amx')).toMatch(/__scalar$/);
    // Zen 5 and Intel (AMX withheld, as some hypervisors do) take the 512-row VNNI blocking; Zen 4
    // and the rest the general one.
    const zen = { ...sprLike, amxInt8: false, amxPermitted: false, vendor: 2, model: 2 };
    expect(native._selectInt8Gemm({ ...zen, family: 0x1a }, 'amx')).toBe('qu8s8_gemm_bias_relu_requant_8x32c4__avx512vnni_mc512');
    expect(native._selectInt8Gemm({ ...zen, family: 0x19 }, 'amx')).toBe('qu8s8_gemm_bias_relu_requant_8x32c4__avx512vnni');
    const emeraldRapids = { ...sprLike, amxInt8: false, amxPermitted: false, vendor: 1, family: 6, model: 0xcf };
    expect(native._selectInt8Gemm(emeraldRapids, 'amx')).toBe('qu8s8_gemm_bias_relu_requant_8x32c4__avx512vnni_mc512');
    expect(native._selectInt8Gemm({ ...emeraldRapids, amxInt8: true, amxPermitted: true }, 'amx')).toMatch(/__amx$/);
    // This CPU: AMX is selected exactly when both halves of the check hold.
    const amxHere = info.features.amxInt8 && info.features.amxPermitted;
    expect(kernels.find((k) => k.isa === 'amx')!.supported).toBe(amxHere);
  });
});

for (const kernel of kernels) {
  const reason = kernel.supported ? '' : ` (skipped: this CPU/OS lacks ${kernel.isa}${kernel.isa === 'amx' ? ' (AMX-INT8 with XTILEDATA permission)' : ''})`;
  describe.skipIf(!kernel.supported)(`${kernel.name}${reason}`, () => {
    it('matches the reference bit for bit over the full M × N × K sweep (fp32 out, bias)', () => {
      native.setMaxIsa(kernel.isa);
      native.setThreads(2);
      const cases: Case[] = [];
      for (const m of SWEEP) for (const n of SWEEP) for (const k of SWEEP) cases.push({ m, n, k, bias: true });
      expectAll(kernel, cases, 1000);
    });

    it('matches the reference across A blocks (M past the 512 rows of the largest block)', () => {
      native.setMaxIsa(kernel.isa);
      const cases: Case[] = [];
      for (const m of [127, 129, 511, 513, 1100]) cases.push({ m, n: kernel.nr + 1, k: 67, bias: true });
      expectAll(kernel, cases, 1500);
    });

    it('matches the reference across K blocks, with A blocks sized by K (M past 224 rows at K 4100)', () => {
      native.setMaxIsa(kernel.isa);
      const cases: Case[] = [];
      for (const k of [511, 512, 513]) for (const m of [33, 250]) cases.push({ m, n: 2 * kernel.nr + 1, k, bias: true });
      // Past 1 MiB of B the AMX kernels block A by K: 57 panels at K 1100, 17 at K 4100 (a lone last one).
      for (const [k, n] of [[1100, 897], [4100, 257]] as const) for (const m of [33, 250]) cases.push({ m, n, k, bias: true });
      cases.push({ m: 250, n: 257, k: 4100, u8: true, act: 'relu' });
      expectAll(kernel, cases, 1700);
    });

    it('requantizes to u8 and fuses relu and relu6 exactly, with and without bias', () => {
      const cases: Case[] = [];
      for (const m of [1, 2, 7, 17, 33]) for (const n of [1, 3, 17, 31, 65]) for (const k of [1, 3, 5, 31, 129]) {
        cases.push({ m, n, k, u8: true, ...((m + n) % 2 === 0 ? { act: 'relu' as const } : {}), bias: k % 2 === 1 });
        cases.push({ m, n, k, act: 'relu', bias: false });
        cases.push({ m, n, k, act: 'relu6', bias: true });
        cases.push({ m, n, k, u8: true, act: 'relu6', bias: k % 2 === 0 });
      }
      expectAll(kernel, cases, 2000);
    });

    it('fuses Keras ReLU exactly in every combination of max_value, negative_slope and threshold', () => {
      const cases: Case[] = [];
      for (const maxValue of [undefined, 0, 0.7, 3]) for (const alpha of [0, 0.1, 1.5]) for (const threshold of [0, 0.25, 1]) {
        const params: NativeActivationParams = { alpha, threshold, ...(maxValue === undefined ? {} : { maxValue }) };
        for (const [m, n, k] of [[1, 5, 7], [17, 33, 31], [7, 67, 129]] as const) {
          cases.push({ m, n, k, act: 'kerasRelu', params, bias: true });
          cases.push({ m, n, k, act: 'kerasRelu', params, bias: k % 2 === 0, u8: true });
        }
      }
      expectAll(kernel, cases, 2500);
    });

    it("applies Keras ReLU's parameters (a hand-computed row)", () => {
      // a = 1 1 1 1, columns of w sum to 0, 8 and 40, scale 0.1: y = 0, 0.8, 4 before the activation.
      const w = Int8Array.from([0, 2, 10, 0, 2, 10, 0, 2, 10, 0, 2, 10]);
      const y = new Float32Array(3);
      native._qgemm(kernel.name, new Uint8Array(4).fill(1), 4, 0, w, new Float32Array(3).fill(0.1), null, 1, 3, 4,
        ACTIVATION_CODES.kerasRelu, y, 3, 1, 0, 1, { alpha: 0.5, maxValue: 2, threshold: 1 });
      expect(Array.from(y)).toEqual([Math.fround(0.5 * -1), Math.fround(0.5 * Math.fround(Math.fround(0.8) - 1)), 2]);
    });

    it('matches with K around the 4-byte groups and 64-byte tile steps', () => {
      const cases: Case[] = [];
      for (const m of [1, kernel.mr, kernel.mr + 1]) for (const n of [kernel.nr - 1, kernel.nr + 1]) for (const k of K_AROUND_GROUPS) {
        cases.push({ m, n, k, bias: true });
        cases.push({ m, n, k, u8: true });
      }
      expectAll(kernel, cases, 3000);
    });

    it('reads and writes strided rows without touching the gaps, split over two threads', () => {
      const cases: Case[] = [];
      for (const m of [1, 7, 31, 200]) for (const n of [3, 33, 257]) for (const k of [5, 63, 300]) {
        cases.push({ m, n, k, bias: true, lda: Math.ceil(k / 4) * 4 + 8, ldo: n + 3, threads: 2 });
        cases.push({ m, n, k, u8: true, act: 'relu', ldo: n + 5, threads: 2 });
        cases.push({ m, n, k, act: 'relu6', ldo: n + 2, threads: 2 });
      }
      expectAll(kernel, cases, 4000);
    });

    it('quantizes fp32 exactly as the reference (round half to even, saturating)', () => {
      const r = rng(5000);
      const x = Float32Array.from({ length: 1031 }, (_, i) => (i % 7 === 0 ? (i - 500) * 0.5 : r.uniform(-3, 3)));
      const got = new Uint8Array(x.length), want = new Uint8Array(x.length);
      native._quantizeU8(kernel.name, x, 0.5, 37, got);
      native._quantizeU8(null, x, 0.5, 37, want);
      if (kernel.aMax < 255) for (let i = 0; i < want.length; i++) want[i] = Math.min(want[i]!, kernel.aMax);
      expect(Array.from(got)).toEqual(Array.from(want));
    });

    it('reproduces onnx_node/test_matmulinteger (u8 zero point 12) exactly', async () => {
      const dir = join(packageRoot(), 'test', 'fixtures', 'onnx', 'onnx_node', 'test_matmulinteger', 'test_data_set_0');
      const [A, B, aZero, bZero, Y] = await Promise.all([0, 1, 2, 3].map((i) => readFile(join(dir, `input_${i}.pb`))).concat(readFile(join(dir, 'output_0.pb'))))
        .then((bufs) => bufs.map((b) => decodeTensor(b)));
      expect(bZero!.values[0]).toBe(0);
      const [m, k] = A!.dims as [number, number];
      const n = B!.dims[1]!;
      const a = new Uint8Array(m * 4);
      for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) a[i * 4 + p] = A!.values[i * k + p]!;
      const y = new Float32Array(m * n);
      native._qgemm(kernel.name, a, 4, aZero!.values[0]!, Int8Array.from(B!.values), new Float32Array(n).fill(1), null, m, n, k, ACTIVATION_CODES.linear, y, n, 1, 0, 1);
      expect(Array.from(y)).toEqual(Array.from(Y!.values));
    });
  });
}
