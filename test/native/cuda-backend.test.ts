/**
 * The CUDA backend as far as this machine lets it be checked: the build carries it (where nvcc was
 * found), links no CUDA library, and reports why no device is usable; its device epilogue answers
 * with a coded error without one. On a machine with a CUDA device the same file runs the epilogue
 * for every activation against the double-precision CPU reference; without one those cases are
 * skipped, and their names say that they need a device.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendInfo, dense, initializers, sequential, type Sequential } from '../../src/index.js';
import { ACTIVATION_CODES, addonPath, native, type ActivationName, type NativeActivationParams } from '../../src/native/index.js';
import { TEST_SEED, rng } from '../helpers.js';
import { ServingMetrics } from '../../src/serving/statistics.js';

const cuda = native.cudaInfo();
const onPath = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const hasDevice = cuda.devices.length > 0;
const NEEDS_DEVICE = hasDevice ? '' : ' (needs a CUDA device: skipped here)';

/** fp32 on the device: libdevice's expf, tanhf and erfcf are within a few ulps of the double reference. */
const CUDA_FP32_RELATIVE = 16 * 2 ** -23;
const CUDA_FP32_ABSOLUTE = 4 * 2 ** -23;

const PARAMS: Partial<Record<ActivationName, NativeActivationParams>> = {
  leakyRelu: { alpha: 0.3 },
  elu: { alpha: 1.3 },
  kerasRelu: { alpha: 0.2, maxValue: 2.5, threshold: 0.5 },
};

describe('CUDA backend: what this machine reports', () => {
  it('backendInfo() carries the CUDA report, with a reason whenever no device is usable', () => {
    const info = backendInfo();
    expect(info.cuda).toEqual(cuda);
    const entry = info.backends.find((b) => b.name === 'cuda');
    expect(entry?.compiled).toBe(cuda.compiled);
    if (!cuda.compiled) expect(cuda.reason).toMatch(/built without CUDA/);
    else if (!hasDevice) expect(cuda.reason).toMatch(/^no CUDA device: /);
    else expect(cuda.reason).toBe('');
    if (cuda.compiled) {
      expect(cuda.runtimeVersion).toBeGreaterThanOrEqual(12000);
      expect(cuda.architectures).toMatch(/\b9\.0\b/);
    }
    for (const lib of [cuda.cublasLt, cuda.nvml]) expect(lib.loaded ? lib.path : lib.reason).not.toBe('');
  });

  it.runIf(process.platform === 'linux')('links no CUDA library: the addon loads where none is installed', () => {
    const linked = execFileSync('ldd', [addonPath()], { encoding: 'utf8' });
    expect(linked).not.toMatch(/libcuda|libcudart|libcublas|libnvidia-ml/);
  });

  it.runIf(!hasDevice)('the device epilogue answers MAAS_ERR_CUDA_UNAVAILABLE with the reason', () => {
    const call = () => native._cudaBiasActivation(new Float32Array(6), null, 2, 3, ACTIVATION_CODES.relu);
    expect(call).toThrow(expect.objectContaining({ code: 'MAAS_ERR_CUDA_UNAVAILABLE' }));
    expect(call).toThrow(cuda.reason);
  });

  // The device run has no Node: bench/device.sh builds native/tools/cuda_check with nvcc there.
  // Compiling it here keeps that program building with the sources it shares with the addon.
  it.runIf(onPath('nvcc'))('the device check program builds (bench/device.sh --build-only)', () => {
    const out = execFileSync('bash', ['bench/device.sh', '--build-only'], { encoding: 'utf8', stdio: 'pipe' });
    expect(out).toMatch(/cuda_check builds for sm_90/);
  }, 120_000);

  it.runIf(!hasDevice)('the device dense layer answers MAAS_ERR_CUDA_UNAVAILABLE with the reason', () => {
    const call = () => native._cudaDense(new Float32Array(6), new Float32Array(12), null, 2, 3, 4, 1, null, 0);
    expect(call).toThrow(expect.objectContaining({ code: 'MAAS_ERR_CUDA_UNAVAILABLE' }));
    expect(call).toThrow(cuda.reason);
  });

  it('checks the shapes it is given before anything else', () => {
    const dense = (x: number, w: number, bias: Float32Array | null, precision: number) => () =>
      native._cudaDense(new Float32Array(x), new Float32Array(w), bias, 2, 3, 4, 0, null, precision as 0);
    expect(dense(5, 12, null, 0)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    expect(dense(6, 11, null, 0)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    expect(dense(6, 12, new Float32Array(3), 0)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    expect(dense(6, 12, null, 3)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
    const bad = () => native._cudaBiasActivation(new Float32Array(5), null, 2, 3, ACTIVATION_CODES.relu);
    expect(bad).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    const badBias = () => native._cudaBiasActivation(new Float32Array(6), new Float32Array(2), 2, 3, 0);
    expect(badBias).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    expect(() => native._cudaBiasActivation(new Float32Array(6), null, 2, 3, 99)).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
  });
});

describe('CUDA backend: the device epilogue against the CPU reference', () => {
  const rows = 37;
  const cols = 129; // a softmax row spans several strides of the block
  const activations = Object.keys(ACTIVATION_CODES) as ActivationName[];
  it.runIf(hasDevice).each(activations)(`%s with and without bias${NEEDS_DEVICE}`, (act) => {
    const r = rng(0xc0da);
    const z = Float32Array.from({ length: rows * cols }, () => (r.next() - 0.5) * 8);
    const bias = Float32Array.from({ length: cols }, () => (r.next() - 0.5) * 2);
    const params = PARAMS[act] ?? { alpha: 0 };
    const identity = new Float32Array(cols * cols);
    for (let j = 0; j < cols; j++) identity[j * cols + j] = 1;
    for (const b of [null, bias]) {
      const got = native._cudaBiasActivation(z, b, rows, cols, ACTIVATION_CODES[act], params);
      // z + bias rounded to fp32 as the kernel forms it, then act in double through x·I.
      const zb = b ? z.map((v, i) => Math.fround(v + b[i % cols]!)) : z;
      const want = new Float32Array(rows * cols);
      native._referenceDense(zb, cols, identity, null, rows, cols, cols, ACTIVATION_CODES[act], params, want, cols, null);
      for (let i = 0; i < want.length; i++) {
        const tolerance = CUDA_FP32_ABSOLUTE + CUDA_FP32_RELATIVE * Math.abs(want[i]!);
        if (!(Math.abs(got[i]! - want[i]!) <= tolerance))
          throw new Error(`seed ${TEST_SEED}, ${act}${b ? '+bias' : ''}: element ${i} is ${got[i]}, want ${want[i]}`);
      }
    }
  });
});

/**
 * A dense layer through cuBLASLt: sums in fp32 in another order than the reference (within k ulps
 * of the row's magnitude), with the operands rounded to TF32 (10 stored bits: each product within
 * 2⁻¹⁰) or bf16 (7 stored bits: within 2⁻⁷).
 */
const PRECISIONS = { fp32: 0, tf32: 1, bf16: 2 } as const;
const OPERAND_ROUNDING: Record<keyof typeof PRECISIONS, number> = { fp32: 0, tf32: 2 ** -10, bf16: 2 ** -7 };
/** cuBLASLt's fused GELU (tanh form) may use a fast tanh, within about 2⁻¹¹. */
const CUBLASLT_GELU_RELATIVE = 2 ** -11;
/** How far each activation can move an error in its input (GELU's slope peaks near 1.13). */
const DENSE_LIPSCHITZ: Partial<Record<ActivationName, number>> = {
  linear: 1,
  relu: 1,
  geluTanh: 1.13,
  gelu: 1.13,
  sigmoid: 0.25,
  tanh: 1,
  softmax: 1,
};

describe('CUDA backend: a dense layer through cuBLASLt against the CPU reference', () => {
  const [m, k, n] = [33, 257, 65];
  const cases = Object.keys(PRECISIONS).flatMap((p) =>
    Object.keys(DENSE_LIPSCHITZ).map((a) => [p, a] as [keyof typeof PRECISIONS, ActivationName]),
  );
  it.runIf(hasDevice).each(cases)(`%s %s with and without bias${NEEDS_DEVICE}`, (precision, act) => {
    const r = rng(0xde5e);
    const x = Float32Array.from({ length: m * k }, () => r.next() * 2 - 1);
    const w = Float32Array.from({ length: k * n }, () => (r.next() * 2 - 1) / 16);
    const bias = Float32Array.from({ length: n }, () => r.next() - 0.5);
    for (const b of [null, bias]) {
      const got = native._cudaDense(x, w, b, m, k, n, ACTIVATION_CODES[act], null, PRECISIONS[precision]);
      const want = new Float32Array(m * n);
      const mag = new Float32Array(m * n);
      native._referenceDense(x, k, w, b, m, n, k, ACTIVATION_CODES[act], { alpha: 0 }, want, n, mag);
      for (let i = 0; i < m; i++) {
        const rowMag = Math.max(...mag.subarray(i * n, (i + 1) * n));
        for (let j = 0; j < n; j++) {
          const at = i * n + j;
          const scale = act === 'softmax' ? rowMag : mag[at]!;
          const sumError = (k * 2 ** -24 + OPERAND_ROUNDING[precision]) * scale;
          const fusedGelu = act === 'geluTanh' ? CUBLASLT_GELU_RELATIVE * scale : 0;
          const tolerance =
            DENSE_LIPSCHITZ[act]! * sumError + fusedGelu + CUDA_FP32_RELATIVE * Math.abs(want[at]!) + CUDA_FP32_ABSOLUTE;
          if (!(Math.abs(got[at]! - want[at]!) <= tolerance))
            throw new Error(`seed ${TEST_SEED}, ${precision} ${act}${b ? '+bias' : ''}: (${i}, ${j}) is ${got[at]}, want ${want[at]}`);
        }
      }
    }
  });
});

/** Round half to even, as rintf does on the device. */
function rint(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

describe('CUDA backend: an int8 layer through cuBLASLt IMMA against the same arithmetic on the host', () => {
  const [m, k, n] = [33, 259, 67]; // K and N off multiples of 4: the padding
  const activations: ActivationName[] = ['linear', 'relu', 'gelu', 'sigmoid', 'softmax'];
  it.runIf(!hasDevice)('without a device: MAAS_ERR_CUDA_UNAVAILABLE; shapes are checked first', () => {
    const call = (wLength: number) => () =>
      native._cudaInt8Dense(new Float32Array(6), new Int8Array(wLength), new Float32Array(4), null, 2, 3, 4, 0, null);
    expect(call(12)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_CUDA_UNAVAILABLE' }));
    expect(call(11)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
  });
  it.runIf(hasDevice).each(activations)(`int8 %s${NEEDS_DEVICE}`, (act) => {
    const r = rng(0x1a8);
    const x = Float32Array.from({ length: m * k }, () => (r.next() - 0.5) * 6);
    const w = Int8Array.from({ length: k * n }, () => Math.round((r.next() - 0.5) * 254));
    const scale = Float32Array.from({ length: n }, () => 0.001 + r.next() * 0.01);
    const bias = Float32Array.from({ length: n }, () => r.next() - 0.5);
    const { y, xScale } = native._cudaInt8Dense(x, w, scale, bias, m, k, n, ACTIVATION_CODES[act], null);
    // The scale must be the batch's own (max|x| / 127), or a wrong range would pass unnoticed below.
    const amax = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    expect(xScale).toBe(Math.fround(amax / 127));
    // The pre-activations as the device forms them, then act through the double reference (x·I).
    const pre = new Float32Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const q = Math.min(Math.max(rint(Math.fround(x[i * k + p]! / xScale)), -127), 127);
          acc += q * w[p * n + j]!;
        }
        pre[i * n + j] = Math.fround(Math.fround(acc) * Math.fround(xScale * scale[j]!) + bias[j]!);
      }
    const identity = new Float32Array(n * n);
    for (let j = 0; j < n; j++) identity[j * n + j] = 1;
    const want = new Float32Array(m * n);
    native._referenceDense(pre, n, identity, null, m, n, n, ACTIVATION_CODES[act], { alpha: 0 }, want, n, null);
    // One quantization step apart (a double-rounded quotient at a tie) moves a sum by one weight.
    for (let i = 0; i < want.length; i++) {
      const step = xScale * scale[i % n]! * 127;
      const tolerance = step + CUDA_FP32_RELATIVE * Math.abs(want[i]!) + CUDA_FP32_ABSOLUTE;
      if (!(Math.abs(y[i]! - want[i]!) <= tolerance))
        throw new Error(`seed ${TEST_SEED}, int8 ${act}: element ${i} is ${y[i]}, want ${want[i]}`);
    }
  });
});

/** 20 → 64 relu → 32 gelu → 3 softmax, seeded: a model whose predict runs on either backend. */
function smallModel(): Sequential {
  const init = (seed: number) => initializers.glorotUniform({ seed });
  return sequential({
    layers: [
      dense({ units: 64, activation: 'relu', inputShape: [20], kernelInitializer: init(1) }),
      dense({ units: 32, activation: 'gelu', kernelInitializer: init(2) }),
      dense({ units: 3, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
}

describe('CUDA backend: a model on the device (setBackend)', () => {
  it('refuses a backend it does not know, and options it does not take', () => {
    const model = smallModel();
    expect(() => model.setBackend('gpu' as 'cuda')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
    expect(() => model.setBackend('cpu', { fp16: true } as object)).toThrow(/fp16/);
    expect(model.backend).toBe('cpu');
  });

  it.runIf(!hasDevice)('without a device: MAAS_ERR_CUDA_UNAVAILABLE, and predict stays on the CPU', () => {
    const model = smallModel();
    const x = new Float32Array(2 * 20).fill(0.5);
    const before = model.predict(x).values.slice();
    expect(() => model.setBackend('cuda')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_CUDA_UNAVAILABLE' }));
    expect(model.backend).toBe('cpu');
    expect(model.predict(x).values).toEqual(before);
  });

  it('the device stack checks its layers before it asks for a device', () => {
    const spec = (i: number, o: number) => ({ in: i, out: o, activation: 1, alpha: 0, hasBias: false });
    const make = (specs: ReturnType<typeof spec>[], weights: Float32Array[]) => () =>
      new native.CudaStackHandle(specs, weights, weights.map(() => null), 0);
    expect(make([spec(4, 3), spec(2, 1)], [new Float32Array(12), new Float32Array(2)])).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }),
    );
    expect(make([spec(4, 3)], [new Float32Array(11)])).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
    expect(make([], [])).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
  });

  const settings: [string, 'fp32' | 'bf16', boolean, number][] = [
    ['fp32', 'fp32', false, 1e-5],
    ['tf32', 'fp32', true, 4e-3],
    ['bf16', 'bf16', false, 3e-2],
  ];
  it.runIf(hasDevice).each(settings)(`%s predict matches the CPU, and follows new weights${NEEDS_DEVICE}`, (_name, precision, tf32, bound) => {
    const cpu = smallModel();
    const gpu = smallModel();
    gpu.setPrecision(precision);
    gpu.setBackend('cuda', { tf32 });
    expect(gpu.backend).toBe('cuda');
    const r = rng(0x6b0);
    for (const batch of [1, 5, 1, 257]) {
      const x = Float32Array.from({ length: batch * 20 }, () => r.next() * 4 - 2);
      const want = cpu.predict(x).values;
      const got = gpu.predict(x).values;
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(bound);
    }
    const weights = cpu.getWeights().map((t) => t.values.map((v) => v * 0.5));
    cpu.setWeights(weights);
    gpu.setWeights(weights);
    const x = Float32Array.from({ length: 3 * 20 }, () => r.next());
    const want = cpu.predict(x).values;
    const got = gpu.predict(x).values;
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(bound);
    gpu.dispose();
  });
});

/**
 * NVML's side of a machine with two GPUs, built here as a shared library with the soname the loader
 * opens: it answers the calls maas makes with fixed readings. It checks the plumbing (the loader,
 * the sampling, the metric names and labels), not NVML's ABI, which only a real driver can.
 */
const FAKE_NVML = `
#include <stdio.h>
#include <string.h>
typedef struct { unsigned gpu, memory; } util_t;
typedef struct { unsigned long long total, free, used; } mem_t;
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned* n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** h) { *h = (void*)(unsigned long)(i + 1); return 0; }
int nvmlDeviceGetUUID(void* h, char* out, unsigned len) { snprintf(out, len, "GPU-fake-%lu", (unsigned long)h); return 0; }
int nvmlDeviceGetUtilizationRates(void* h, util_t* u) { u->gpu = 40 * (unsigned)(unsigned long)h; u->memory = 5; return 0; }
int nvmlDeviceGetMemoryInfo(void* h, mem_t* m) { m->total = 1ull << 34; m->used = (unsigned long long)(unsigned long)h << 30; m->free = m->total - m->used; return 0; }
int nvmlDeviceGetPowerUsage(void* h, unsigned* mw) { if ((unsigned long)h == 2) return 3; *mw = 123456; return 0; }
`;

describe('CUDA backend: GPU metrics through NVML', () => {
  it.runIf(native.nvmlSample() === null)('registers no nv_gpu_ metric where NVML does not answer', async () => {
    const text = await new ServingMetrics(() => []).registry.metrics();
    expect(text).toMatch(/nv_inference_count/);
    expect(text).not.toMatch(/nv_gpu_/);
  });

  it.runIf(cuda.compiled && onPath('cc'))('samples every GPU NVML reports into Triton\'s gauges', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-nvml-'));
    try {
      writeFileSync(join(dir, 'nvml.c'), FAKE_NVML);
      execFileSync('cc', ['-shared', '-fPIC', '-Wl,-soname,libnvidia-ml.so.1', '-o', join(dir, 'libnvidia-ml.so.1'), join(dir, 'nvml.c')]);
      const script = [
        "import { native } from './src/native/index.ts';",
        "import { ServingMetrics } from './src/serving/statistics.ts';",
        'console.log(JSON.stringify(native.nvmlSample()));',
        "console.log((await new ServingMetrics(() => []).registry.metrics()).split('\\n').filter((l) => l.startsWith('nv_gpu_')).join('\\n'));",
      ].join('\n');
      const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, LD_LIBRARY_PATH: dir },
      });
      const [sampleLine, ...metricLines] = out.trim().split('\n');
      expect(JSON.parse(sampleLine!)).toEqual([
        { uuid: 'GPU-fake-1', utilization: 0.4, memoryUsedBytes: 2 ** 30, memoryTotalBytes: 2 ** 34, powerWatts: 123.456 },
        { uuid: 'GPU-fake-2', utilization: 0.8, memoryUsedBytes: 2 ** 31, memoryTotalBytes: 2 ** 34, powerWatts: null },
      ]);
      expect(metricLines).toEqual([
        'nv_gpu_utilization{gpu_uuid="GPU-fake-1"} 0.4',
        'nv_gpu_utilization{gpu_uuid="GPU-fake-2"} 0.8',
        `nv_gpu_memory_total_bytes{gpu_uuid="GPU-fake-1"} ${2 ** 34}`,
        `nv_gpu_memory_total_bytes{gpu_uuid="GPU-fake-2"} ${2 ** 34}`,
        `nv_gpu_memory_used_bytes{gpu_uuid="GPU-fake-1"} ${2 ** 30}`,
        `nv_gpu_memory_used_bytes{gpu_uuid="GPU-fake-2"} ${2 ** 31}`,
        'nv_gpu_power_usage{gpu_uuid="GPU-fake-1"} 123.456',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
