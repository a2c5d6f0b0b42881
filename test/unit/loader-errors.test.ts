/**
 * Every loader answers a bad file with a coded MaasError and prints nothing: a missing file, an
 * empty file, random bytes, every truncation of a real fixture, flipped bytes, and hostile
 * model.json manifests, through loadModel (.h5, .onnx, model.json), loadOnnxGraph and
 * loadQuantizedModel (.onnx, model.json). Seeded: MAAS_TEST_SEED or the printed default.
 */
import { Random } from '../../src/core/random.js';
import fs from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MaasError, loadModel, loadOnnxGraph, loadQuantizedModel } from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';

const SEED = Number(process.env.MAAS_TEST_SEED ?? 20261130);
const FIXTURES = join(packageRoot(), 'test', 'fixtures');
const H5 = join(FIXTURES, 'keras_h5', 'dl4j_activations', 'ReLU_0_model.h5');
const ONNX_SMALL = join(FIXTURES, 'onnx', 'onnx_node', 'test_qlinearmatmul_2D_uint8_float32', 'model.onnx');
const ONNX_CHAIN = join(FIXTURES, 'onnx', 'hls4ml_two_layer_keras', 'model.onnx');
const TFJS = join(FIXTURES, 'tfjs_layers', 'tfjs_rn_bundle_model_test');

/** Seeded numbers in [0, 1), from the library's generator. */
function random(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}

let printed: string[] = [];
beforeEach(() => {
  printed = [];
  const capture =
    (what: string) =>
    (...args: unknown[]) => {
      printed.push(`${what}: ${args.map(String).join(' ').slice(0, 200)}`);
    };
  vi.spyOn(console, 'error').mockImplementation(capture('console.error'));
  vi.spyOn(console, 'warn').mockImplementation(capture('console.warn'));
  vi.spyOn(console, 'log').mockImplementation(capture('console.log'));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
    printed.push(`stderr: ${String(chunk).slice(0, 200)}`);
    return true;
  });
  const writeSync = fs.writeSync;
  vi.spyOn(fs, 'writeSync').mockImplementation((fd: number, ...rest: unknown[]) => {
    if (fd === 2) {
      printed.push(`fd 2: ${String(rest[0]).slice(0, 200)}`);
      return 0;
    }
    return (writeSync as (...a: unknown[]) => number)(fd, ...rest);
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** The coded error a call throws (fails on success, an uncoded error, or anything printed). */
async function codeOf(what: string, fn: () => Promise<unknown>): Promise<string> {
  let error: unknown = null;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  expect(printed, `${what} printed (seed ${SEED})`).toEqual([]);
  expect(error, `${what} did not throw (seed ${SEED})`).not.toBeNull();
  expect(error, `${what} threw ${String(error)} (seed ${SEED})`).toBeInstanceOf(MaasError);
  return (error as MaasError).code;
}

/** Like codeOf, but a successful load is fine (a mutation may leave a valid model). */
async function codedOrLoads(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    const m = (await fn()) as { dispose?: () => void };
    m?.dispose?.();
  } catch (e) {
    expect(e, `${what} threw ${String(e)} (seed ${SEED})`).toBeInstanceOf(MaasError);
  }
  expect(printed, `${what} printed (seed ${SEED})`).toEqual([]);
}

let dir: string;
async function place(name: string, bytes: Uint8Array | string): Promise<string> {
  dir ??= await mkdtemp(join(tmpdir(), 'maas-bad-files-'));
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

const ONNX_LOADERS: [string, (p: string) => Promise<unknown>][] = [
  ['loadModel', (p) => loadModel(p)],
  ['loadOnnxGraph', (p) => loadOnnxGraph(p)],
  ['loadQuantizedModel', (p) => loadQuantizedModel(p)],
];

describe('Keras .h5: coded errors, no HDF5 diagnostics', () => {
  it('a missing file is MAAS_ERR_MODEL_NOT_FOUND', async () => {
    expect(await codeOf('missing .h5', () => loadModel(join(tmpdir(), 'maas-no-such-model.h5')))).toBe(
      'MAAS_ERR_MODEL_NOT_FOUND',
    );
  });

  it('an empty file, random bytes and a text file are MAAS_ERR_MODEL_FORMAT', async () => {
    const rnd = random(SEED);
    const files = [
      await place('empty.h5', new Uint8Array(0)),
      await place(
        'random.h5',
        Uint8Array.from({ length: 4096 }, () => Math.floor(rnd() * 256)),
      ),
      await place('text.h5', 'this is not HDF5\n'.repeat(100)),
    ];
    for (const f of files) expect(await codeOf(f, () => loadModel(f))).toBe('MAAS_ERR_MODEL_FORMAT');
  });

  it('a truncated real file is MAAS_ERR_MODEL_FORMAT, naming the HDF5 reason', async () => {
    const bytes = new Uint8Array(await readFile(H5));
    for (const cut of [8, 100, 512, 2000, 6000, bytes.length - 1]) {
      const f = await place(`cut${cut}.h5`, bytes.subarray(0, cut));
      expect(await codeOf(`${f} (${cut} bytes)`, () => loadModel(f))).toBe('MAAS_ERR_MODEL_FORMAT');
    }
    const f = await place('cut2000b.h5', bytes.subarray(0, 2000));
    await expect(loadModel(f)).rejects.toThrow(/HDF5 cannot open it \(HDF5: truncated file/);
  });

  it('a missing architecture file for a weights-only .h5 is coded', async () => {
    const weightsOnly = join(FIXTURES, 'keras_h5', 'hls4ml_KERAS_3layer', 'KERAS_3layer_weights.h5');
    expect(
      await codeOf('missing architecture', () => loadModel(weightsOnly, { architecture: join(tmpdir(), 'nope.json') })),
    ).toBe('MAAS_ERR_MODEL_NOT_FOUND');
  });
});

describe('.onnx: coded errors from every loader', () => {
  it('a missing file is MAAS_ERR_MODEL_NOT_FOUND; empty and random files are MAAS_ERR_MODEL_FORMAT', async () => {
    const rnd = random(SEED + 1);
    const missing = join(tmpdir(), 'maas-no-such-model.onnx');
    const empty = await place('empty.onnx', new Uint8Array(0));
    for (const [name, load] of ONNX_LOADERS) {
      expect(await codeOf(`${name} missing`, () => load(missing))).toBe('MAAS_ERR_MODEL_NOT_FOUND');
      expect(await codeOf(`${name} empty`, () => load(empty))).toBe('MAAS_ERR_MODEL_FORMAT');
      for (let k = 0; k < 20; k++) {
        const bytes = Uint8Array.from({ length: 1 + Math.floor(rnd() * 3000) }, () => Math.floor(rnd() * 256));
        const f = await place(`random${k}.onnx`, bytes);
        expect(await codeOf(`${name} random ${k}`, () => load(f))).toBe('MAAS_ERR_MODEL_FORMAT');
      }
    }
  });

  it('every truncation of a real fixture fails coded (or, cut at a field boundary, still loads)', async () => {
    for (const fixture of [ONNX_SMALL, ONNX_CHAIN]) {
      const bytes = new Uint8Array(await readFile(fixture));
      const step = bytes.length > 1000 ? 7 : 1;
      let cuts = 0,
        loaded = 0;
      for (let cut = 1; cut < bytes.length; cut += step) {
        const f = await place('cut.onnx', bytes.subarray(0, cut));
        for (const [name, load] of ONNX_LOADERS) {
          cuts++;
          // A cut that drops only trailing fields (opset_import, producer) can leave a valid model.
          await codedOrLoads(`${name} ${fixture} cut at ${cut}`, async () => {
            const m = await load(f);
            loaded++;
            return m;
          });
        }
      }
      expect(loaded, fixture).toBeLessThan(cuts * 0.05);
    }
  });

  it('flipped bytes in a real fixture load or fail coded, never uncoded', async () => {
    const rnd = random(SEED + 2);
    const bytes = new Uint8Array(await readFile(ONNX_CHAIN));
    for (let k = 0; k < 150; k++) {
      const copy = bytes.slice();
      for (let j = 0; j < 1 + Math.floor(rnd() * 4); j++)
        copy[Math.floor(rnd() * copy.length)] = Math.floor(rnd() * 256);
      const f = await place('flip.onnx', copy);
      for (const [name, load] of ONNX_LOADERS) await codedOrLoads(`${name} flip ${k}`, () => load(f));
    }
  });

  it('a graph loadModel cannot read as a chain says to try loadOnnxGraph; a quantized one, loadQuantizedModel', async () => {
    const bcast = join(FIXTURES, 'onnx', 'onnx_node', 'test_matmul_bcast', 'model.onnx');
    await expect(loadModel(bcast)).rejects.toThrow(/loadOnnxGraph\(path\) evaluates other graphs/);
    await expect(loadModel(ONNX_SMALL)).rejects.toThrow(/quantized graph: load it .* with loadQuantizedModel\(path\)/);
  });

  it('loadQuantizedModel says what it accepts', async () => {
    const f = await place('float.onnx', await readFile(ONNX_CHAIN));
    await expect(loadQuantizedModel(f)).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_FORMAT',
      message: expect.stringMatching(/cannot be imported as a maas int8 model: it has no quantized layer/),
    });
    expect(await codeOf('loadQuantizedModel("")', () => loadQuantizedModel(''))).toBe('MAAS_ERR_ARG_TYPE');
  });
});

describe('model.json: coded errors', () => {
  async function modelDir(name: string, json: string): Promise<string> {
    dir ??= await mkdtemp(join(tmpdir(), 'maas-bad-files-'));
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'bundle_model_test.json'), json);
    await copyFile(join(TFJS, 'bundle_model_test_weights.bin'), join(d, 'bundle_model_test_weights.bin'));
    return join(d, 'bundle_model_test.json');
  }
  const loaders: [string, (p: string) => Promise<unknown>][] = [
    ['loadModel', (p) => loadModel(p)],
    ['loadQuantizedModel', (p) => loadQuantizedModel(p)],
  ];

  it('a missing directory is MAAS_ERR_MODEL_NOT_FOUND', async () => {
    for (const [name, load] of loaders)
      expect(await codeOf(name, () => load(join(tmpdir(), 'maas-no-such-dir')))).toBe('MAAS_ERR_MODEL_NOT_FOUND');
  });

  it('empty, random, truncated and hostile model.json files are MAAS_ERR_MODEL_FORMAT', async () => {
    const real = await readFile(join(TFJS, 'bundle_model_test.json'), 'utf8');
    const parsed = JSON.parse(real) as Record<string, unknown>;
    const rnd = random(SEED + 3);
    const cases: Record<string, string> = {
      empty: '',
      random: String.fromCharCode(...Array.from({ length: 500 }, () => Math.floor(rnd() * 256))),
      null: 'null',
      array: '[]',
      number: '42',
      topologyNumber: '{"modelTopology": 5}',
      manifestNotArray: JSON.stringify({ ...parsed, weightsManifest: { paths: 'x' } }),
      pathEscapes: JSON.stringify({ ...parsed, weightsManifest: [{ paths: ['../../../../etc/passwd'], weights: [] }] }),
      pathAbsolute: JSON.stringify({ ...parsed, weightsManifest: [{ paths: ['/etc/passwd'], weights: [] }] }),
      weightWithoutShape: JSON.stringify({
        ...parsed,
        weightsManifest: [{ paths: ['bundle_model_test_weights.bin'], weights: [{ name: 'x', dtype: 'float32' }] }],
      }),
      quantizationGarbage: JSON.stringify({ ...parsed, maas: { quantization: { formatVersion: 1, layers: [null] } } }),
    };
    for (let cut = 1; cut < real.length; cut += 13) cases[`cut${cut}`] = real.slice(0, cut);
    for (const [name, text] of Object.entries(cases)) {
      const path = await modelDir(name, text);
      // loadModel gives the fp32 view and ignores maas.quantization; loadQuantizedModel must refuse it.
      for (const [loader, load] of name === 'quantizationGarbage' ? loaders.slice(1) : loaders)
        expect(await codeOf(`${loader} ${name}`, () => load(path)), `${loader} ${name}`).toBe('MAAS_ERR_MODEL_FORMAT');
    }
  });
});
