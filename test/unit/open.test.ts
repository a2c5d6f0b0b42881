/**
 * The one opener and the load thread: openModelFile detects format and precision from one read,
 * the repository's off-thread load (InferencePool.load) packs exactly what the model packs on
 * this thread, and the shells (Sequential, QuantizedModel) share one inference path.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  dense,
  InferenceModel,
  initializers,
  InferencePool,
  openModelFile,
  openPackedRegion,
  quantize,
  sequential,
  type Sequential,
} from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures');

function model(): Sequential {
  return sequential({
    layers: [
      dense({
        units: 16,
        activation: 'relu',
        inputShape: [10],
        kernelInitializer: initializers.glorotUniform({ seed: 1 }),
      }),
      dense({ units: 3, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

const rows = Float32Array.from({ length: 8 * 10 }, (_, i) => Math.sin(i * 0.37));

describe('openModelFile', () => {
  it('detects tfjs-layers fp32 and int8 (maas.quantization) from the same kind of directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-open-'));
    const fp32 = model();
    await fp32.save(join(dir, 'fp32'));
    await quantize(fp32, { calibrationData: rows }).save(join(dir, 'int8'));
    const a = await openModelFile(join(dir, 'fp32'));
    const b = await openModelFile(join(dir, 'int8', 'model.json'));
    expect([a.format, a.precision, a.inputSize, a.outputSize]).toEqual(['tfjs-layers', 'fp32', 10, 3]);
    expect([b.format, b.precision, b.layers.length]).toEqual(['tfjs-layers', 'int8', 2]);
    expect(b.quantization).toMatchObject({ formatVersion: 1, mode: 'static' });
  });

  it('detects Keras .h5 and ONNX by path', async () => {
    const h5 = await openModelFile(join(FIXTURES, 'keras_h5', 'dl4j_tfkeras_mlp', 'mlp_14.h5'));
    expect([h5.format, h5.precision]).toEqual(['keras-h5', 'fp32']);
    const onnx = await openModelFile(join(FIXTURES, 'onnx', 'hls4ml_two_layer_keras', 'model.onnx'));
    expect([onnx.format, onnx.precision]).toEqual(['onnx', 'fp32']);
  });
});

describe('InferencePool.load (the repository load thread)', () => {
  const pool = new InferencePool({ workers: 1 });
  afterAll(() => pool.close());

  it('packs fp32 and int8 off the event loop to what this thread packs (same kernel, same outputs)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-load-'));
    const fp32 = model();
    const q = quantize(fp32, { calibrationData: rows });
    await fp32.save(join(dir, 'fp32'));
    await q.save(join(dir, 'int8'));
    for (const [name, m] of [
      ['fp32', fp32],
      ['int8', q],
    ] as const) {
      const loaded = await pool.load(join(dir, name, 'model.json'));
      const here = m.packed();
      expect([loaded.region.format, loaded.region.kernel, loaded.inputSize, loaded.outputSize]).toEqual([
        name,
        here.kernel,
        10,
        3,
      ]);
      expect(loaded.region.byteLength).toBe(here.buffer.byteLength);
      // The bytes may sit at another alignment offset; what they compute must be identical.
      const handle = openPackedRegion(loaded.region);
      pool.discard(loaded);
      const y = new Float32Array(8 * 3);
      handle.predict(rows, 8, y);
      handle.dispose();
      expect(y).toEqual(m.predict(rows).values);
      if (name === 'int8')
        expect(loaded.quantization).toMatch(/^static minmax, per-channel weights, int8 layers 2\/2$/);
    }
  });

  it('answers a bad file with its loader error code, and a stopped load with MAAS_ERR_SERVER_STOPPING', async () => {
    await expect(pool.load(join(tmpdir(), 'maas-no-such-model', 'model.json'))).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_NOT_FOUND',
    });
    const stop = new AbortController();
    const pending = pool.load(join(FIXTURES, 'keras_h5', 'dl4j_tfkeras_mlp', 'mlp_14.h5'), { signal: stop.signal });
    stop.abort();
    await expect(pending).rejects.toMatchObject({ code: 'MAAS_ERR_SERVER_STOPPING' });
  });

  it('stops a load that passes the load timeout, and the next load gets a fresh thread', async () => {
    const hasty = new InferencePool({ workers: 1, loadTimeoutMs: 1 });
    try {
      // Starting a thread and reading an .h5 takes far more than 1 ms.
      await expect(hasty.load(join(FIXTURES, 'keras_h5', 'dl4j_tfkeras_mlp', 'mlp_14.h5'))).rejects.toMatchObject({
        code: 'MAAS_ERR_MODEL_LOAD_TIMEOUT',
        message: expect.stringMatching(/took longer than 1 ms and was stopped$/),
      });
    } finally {
      await hasty.close();
    }
    const loaded = await pool.load(join(FIXTURES, 'keras_h5', 'dl4j_tfkeras_mlp', 'mlp_14.h5'));
    expect(loaded.inputSize).toBe(3);
  });
});

describe('one inference shell', () => {
  it('Sequential and QuantizedModel are InferenceModels with one predict/packed/dispose', () => {
    const fp32 = model();
    const q = quantize(fp32, { calibrationData: rows });
    for (const m of [fp32, q]) {
      expect(m).toBeInstanceOf(InferenceModel);
      expect(m.predict(rows).shape).toEqual([8, 3]);
      expect(m.packed()).toBe(m.packed());
      m.dispose();
      expect(() => m.predict(rows)).toThrowError(expect.objectContaining({ code: 'MAAS_ERR_MODEL_DISPOSED' }));
    }
  });
});
