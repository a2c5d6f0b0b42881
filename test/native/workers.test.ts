/**
 * Lifecycle: the addon loaded in four worker threads at once over one shared packed buffer, a
 * load/terminate loop with calls in flight, and coded errors from a disposed native handle.
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ISA_LEVELS, addonPath, native, type IsaName } from '../../src/native/index.js';
import { dense, initializers, sequential } from '../../src/index.js';
import { rng } from '../helpers.js';

const WORKER = fileURLToPath(new URL('../fixtures/addon-worker.mjs', import.meta.url));

function modelS() {
  return sequential({
    layers: [
      dense({ units: 64, activation: 'relu', inputShape: [100], kernelInitializer: initializers.glorotUniform({ seed: 1 }) }),
      dense({ units: 32, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
}

function startWorker(): Worker {
  return new Worker(WORKER, { workerData: { addonPath: addonPath() } });
}

function nextMessage<T>(worker: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

describe('the addon in worker threads', () => {
  it('four workers load it at once and predict over one shared copy of the weights', async () => {
    const model = modelS();
    const { buffer } = model.packed();
    const r = rng(7);
    const batch = 37;
    const x = Float32Array.from({ length: batch * 100 }, () => r.normal());
    const want = model.predict(x).values;
    const workers = Array.from({ length: 4 }, startWorker);
    try {
      const results = await Promise.all(
        workers.map((w) => {
          const reply = nextMessage<{ y: Float32Array }>(w);
          w.postMessage({ kind: 'predict', packed: buffer, x, batch, repeat: 200 });
          return reply;
        }),
      );
      for (const { y } of results) expect(y).toEqual(want);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });

  it('survives 25 load / predict / terminate cycles with calls in flight', async () => {
    const model = modelS();
    const { buffer } = model.packed();
    const x = new Float32Array(256 * 100).fill(0.5);
    const before = model.predict(x.subarray(0, 100)).values;
    for (let i = 0; i < 25; i++) {
      const w = startWorker();
      const spinning = nextMessage<{ kind: string }>(w);
      w.postMessage({ kind: 'spin', packed: buffer, x, batch: 256 });
      expect((await spinning).kind).toBe('spinning');
      const code = await w.terminate();
      expect(code).toBe(1);
    }
    // The process, the main thread's addon and the shared buffer are all still fine.
    expect(model.predict(x.subarray(0, 100)).values).toEqual(before);
  });
});

describe('native handle errors', () => {
  const packed = () => new Uint8Array(modelS().packed().buffer);

  it('a disposed DenseStackHandle throws MAAS_ERR_MODEL_DISPOSED', () => {
    const handle = new native.DenseStackHandle(packed());
    handle.dispose();
    expect(handle.disposed).toBe(true);
    expect(() => handle.predict(new Float32Array(100), 1, new Float32Array(1))).toThrowError(
      expect.objectContaining({ code: 'MAAS_ERR_MODEL_DISPOSED' }),
    );
  });

  it('wrong buffer sizes and types are coded TypeErrors, and the handle keeps working', () => {
    const handle = new native.DenseStackHandle(packed());
    expect(() => handle.predict(new Float32Array(99), 1, new Float32Array(1))).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }));
    expect(() => handle.predict(new Float64Array(100) as never, 1, new Float32Array(1))).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_ARG_TYPE' }));
    expect(() => handle.predict(new Float32Array(100), -1, new Float32Array(1))).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
    const y = new Float32Array(1);
    handle.predict(new Float32Array(100), 1, y);
    expect(Number.isFinite(y[0])).toBe(true);
  });

  it('a corrupt packed buffer is refused with MAAS_ERR_PACKED_CORRUPT', () => {
    const bytes = packed();
    const copy = bytes.slice();
    copy.fill(0, 0, 128);
    expect(() => new native.DenseStackHandle(copy)).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_PACKED_CORRUPT' }));
    expect(() => new native.DenseStackHandle(bytes.slice(0, 200))).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_PACKED_CORRUPT' }));
  });

  // On a CPU without AVX2 nothing packs above the scalar cap: reported as skipped, not passed.
  it.skipIf(native.cpuInfo().isa === 'scalar')('a buffer packed for a kernel above the thread cap is refused with MAAS_ERR_PACKED_ISA_ABOVE_CAP', () => {
    const best = native.cpuInfo().isa;
    const bytes = packed();
    native.setMaxIsa('scalar');
    try {
      expect(() => new native.DenseStackHandle(bytes)).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_PACKED_ISA_ABOVE_CAP' }));
    } finally {
      native.setMaxIsa(best);
    }
  });
});

describe('the intra-op thread pool', () => {
  it('runs work issued right after a resize (workers start from the generation at creation)', () => {
    const model = modelS();
    const x = new Float32Array(1024 * 100).fill(0.25);
    const want = model.predict(x).values.slice();
    const threads = native.getThreads();
    try {
      for (let i = 0; i < 50; i++) {
        native.setThreads(1);
        native.setThreads(2);
        expect(model.predict(x).values).toEqual(want);
      }
    } finally {
      native.setThreads(threads);
    }
  });
});

describe('MAAS_MAX_ISA', () => {
  it('caps the selected kernel in a fresh process', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = `const a = require(${JSON.stringify(addonPath())}); console.log(JSON.stringify(a.cpuInfo()))`;
    const levels = ISA_LEVELS;
    const f32Levels = ['scalar', 'avx2', 'avx512'];
    for (const cap of levels) {
      const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, MAAS_MAX_ISA: cap }, encoding: 'utf8' });
      const info = JSON.parse(out) as {
        isa: string;
        best: string;
        cap: string;
        cpuClass: string;
        int8Kernels: { name: string; isa: string; supported: boolean; cpuClasses: string[] }[];
        int8Kernel: string;
      };
      const capped = levels[Math.min(levels.indexOf(cap), levels.indexOf(info.best as IsaName))]!;
      expect(info.cap).toBe(capped);
      // The fp32 family has three levels: the highest one within the cap that this CPU supports.
      expect(info.isa).toBe(f32Levels.filter((l) => levels.indexOf(l as IsaName) <= levels.indexOf(capped)).pop());
      // The int8 family: the first kernel within the cap that this CPU supports, tuned for its class.
      const int8 = info.int8Kernels.find(
        (k) => k.supported && levels.indexOf(k.isa as IsaName) <= levels.indexOf(capped) && k.cpuClasses.includes(info.cpuClass),
      );
      expect(info.int8Kernel).toBe(int8!.name);
    }
  });
});
