/**
 * Integrity at load, on real files damaged on purpose: every format maas saves records a digest
 * and a damaged byte under it is refused with MAAS_ERR_MODEL_INTEGRITY; strictIntegrity refuses a
 * file without one (MAAS_ERR_MODEL_DIGEST_MISSING); implausible values (a NaN weight, an int8 scale
 * of 1e308, a zero point of 300) are refused where no digest is recorded; an .h5 is parsed from the
 * bytes that were read, its declared sizes checked before a dataset is read, and a file that makes
 * HDF5 loop or trap is refused without harming the next load.
 */
import { copyFile, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MaasError,
  dense,
  initializers,
  loadModel,
  loadOnnxGraph,
  loadQuantizedModel,
  quantize,
  sequential,
  type Sequential,
} from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { MAX_LOADER_MESSAGE_CHARS, loaderError } from '../../src/io/files.js';
import { readKerasH5 } from '../../src/io/keras-h5.js';
import { onnxTypes } from '../../src/io/onnx.js';
import { buildDenseOnnx } from '../../src/io/onnx-export.js';
import { ONNX_DIGEST_KEY } from '../../src/io/onnx-digest.js';
import { completeConfig, strictIntegrityOf } from '../../src/serving/repository/config.js';
import { errorOf } from '../helpers.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures');
const TFJS = join(FIXTURES, 'tfjs_layers', 'tfjs_rn_bundle_model_test', 'bundle_model_test.json');
const ONNX_CHAIN = join(FIXTURES, 'onnx', 'hls4ml_two_layer_keras', 'model.onnx');
/** A Keras 2 file: one Dense, kernel [4, 6] and bias [6] as contiguous float32 datasets. */
const H5 = join(FIXTURES, 'keras_h5', 'dl4j_dense_known_weights', 'dense_tensorflow_2.h5');
const H5_OTHER = join(FIXTURES, 'keras_h5', 'dl4j_activations', 'ReLU_0_model.h5');

const temp = () => mkdtemp(join(tmpdir(), 'maas-integrity-'));

function model(seed: number, last: 'leakyRelu' | 'sigmoid' = 'leakyRelu'): Sequential {
  return sequential({
    layers: [
      dense({ units: 4, activation: 'relu', inputShape: [3], kernelInitializer: initializers.glorotUniform({ seed }) }),
      dense({
        units: 2,
        activation: last,
        alpha: 0.2,
        kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }),
        biasInitializer: initializers.randomNormal({ seed: seed + 2 }),
      }),
    ],
  });
}

const rows = Array.from({ length: 16 }, (_, i) => [Math.sin(i), Math.cos(i * 0.7), (i % 5) / 2 - 1]);

/** The offset of `needle` in `haystack`, which must hold it exactly once. */
function onlyOffset(haystack: Uint8Array, needle: Uint8Array, what: string): number {
  const buffer = Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength);
  const at = buffer.indexOf(needle);
  expect(at, `${what} is in the file`).toBeGreaterThanOrEqual(0);
  expect(buffer.indexOf(needle, at + 1), `${what} is in the file once`).toBe(-1);
  return at;
}

const bytesOf = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** The parts of a saved model.json these tests edit. */
interface SavedJson {
  modelTopology: { config: { layers: { config: { activation?: string } }[] } };
  maas: {
    weightsSha256?: unknown;
    descriptionSha256?: unknown;
    quantization: {
      layers: {
        weightScales: (number | null)[];
        input: { min: number; max: number; scale: number; zeroPoint: number };
      }[];
    };
  };
}

async function readJson(path: string): Promise<SavedJson> {
  return JSON.parse(await readFile(path, 'utf8')) as SavedJson;
}

describe('tfjs model.json: weightsSha256 and descriptionSha256', () => {
  it('records both when saving, and a strict load verifies them and round-trips bit-exactly', async () => {
    const dir = await temp();
    const m = model(1);
    await m.save(dir);
    const json = await readJson(join(dir, 'model.json'));
    expect(json.maas.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(json.maas.descriptionSha256).toMatch(/^[0-9a-f]{64}$/);
    const bin = (await readdir(dir)).find((f) => f.endsWith('.bin'))!;
    // weightsSha256 is the SHA-256 of the weights file's bytes, checkable with sha256sum.
    expect(
      createHash('sha256')
        .update(await readFile(join(dir, bin)))
        .digest('hex'),
    ).toBe(json.maas.weightsSha256);
    const loaded = await loadModel(dir, { strictIntegrity: true });
    expect(loaded.predict(rows).values).toEqual(m.predict(rows).values);
  });

  it('refuses a damaged weight byte and an edited topology; a reformatted model.json still verifies', async () => {
    const dir = await temp();
    await model(2).save(dir);
    const jsonPath = join(dir, 'model.json');
    const original = await readFile(jsonPath, 'utf8');
    const bin = join(
      dir,
      (await readdir(dir)).find((f) => f.endsWith('.bin'))!,
    );
    const weights = await readFile(bin);

    const damaged = Buffer.from(weights);
    damaged[5]! ^= 0x01;
    await writeFile(bin, damaged);
    expect(await errorOf(() => loadModel(dir))).toMatch(
      /^MAAS_ERR_MODEL_INTEGRITY: The weights of .* do not match the SHA-256 recorded in maas.weightsSha256 of model.json/,
    );
    await writeFile(bin, weights);

    const edited = JSON.parse(original) as SavedJson;
    edited.modelTopology.config.layers[0]!.config.activation = 'tanh';
    await writeFile(jsonPath, JSON.stringify(edited));
    expect(await errorOf(() => loadModel(dir))).toMatch(
      /^MAAS_ERR_MODEL_INTEGRITY: The topology, weight specs and maas field of .* do not match the SHA-256 recorded in maas.descriptionSha256/,
    );

    // Key order and spacing are not the model: a pretty-printed file with its keys reversed loads.
    const reversed = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).reverse());
    const parsed = JSON.parse(original) as SavedJson;
    await writeFile(jsonPath, JSON.stringify(reversed({ ...parsed, maas: reversed(parsed.maas) }), null, 2));
    await expect(loadModel(dir, { strictIntegrity: true })).resolves.toBeDefined();
  });

  it('refuses a recorded digest that is not a SHA-256', async () => {
    const dir = await temp();
    await model(3).save(dir);
    const json = await readJson(join(dir, 'model.json'));
    for (const bad of ['', 'abc', 42, String(json.maas.weightsSha256).toUpperCase()]) {
      await writeFile(join(dir, 'model.json'), JSON.stringify({ ...json, maas: { ...json.maas, weightsSha256: bad } }));
      expect(await errorOf(() => loadModel(dir)), String(bad)).toMatch(
        /^MAAS_ERR_MODEL_INTEGRITY: .* records maas.weightsSha256 of model.json but it is not a SHA-256/,
      );
    }
  });

  it('strictIntegrity refuses a model.json without digests (a tfjs file); without it the file loads', async () => {
    expect(await errorOf(() => loadModel(TFJS, { strictIntegrity: true }))).toMatch(
      /^MAAS_ERR_MODEL_DIGEST_MISSING: strictIntegrity refuses .*bundle_model_test.json: it records no digest/,
    );
    await expect(loadModel(TFJS)).resolves.toBeDefined();
  });

  it('refuses a NaN or infinite weight in a file without digests', async () => {
    const dir = await temp();
    await model(4).save(dir);
    const json = await readJson(join(dir, 'model.json'));
    delete json.maas.weightsSha256;
    delete json.maas.descriptionSha256;
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    const bin = join(
      dir,
      (await readdir(dir)).find((f) => f.endsWith('.bin'))!,
    );
    const weights = await readFile(bin);
    await expect(loadModel(dir)).resolves.toBeDefined();
    for (const [value, index, layer] of [
      [NaN, 7, "dense_\\w+'s kernel"],
      [Infinity, 12 + 4 + 3, "dense_\\w+'s kernel"], // the second layer's kernel [4, 2] follows 12 + 4 values
      [-Infinity, 12 + 1, "dense_\\w+'s bias"],
    ] as const) {
      const copy = Buffer.from(weights);
      copy.writeFloatLE(value, index * 4);
      await writeFile(bin, copy);
      expect(await errorOf(() => loadModel(dir))).toMatch(
        new RegExp(`^MAAS_ERR_MODEL_FORMAT: Layer ${layer} in .* holds ${String(value)} at index \\d+`),
      );
    }
  });
});

describe('int8 model.json: the quantization is under the digest, and its scales are bounded', () => {
  async function savedInt8(): Promise<{ dir: string; json: SavedJson }> {
    const dir = await temp();
    const q = quantize(model(5), { calibrationData: rows });
    await q.save(dir);
    q.dispose();
    return { dir, json: await readJson(join(dir, 'model.json')) };
  }

  it('loads strictly as saved, and an edited scale or input range is refused', async () => {
    const { dir, json } = await savedInt8();
    await expect(loadQuantizedModel(dir, { strictIntegrity: true })).resolves.toBeDefined();
    for (const edit of [
      (j: SavedJson) => (j.maas.quantization.layers[0]!.weightScales[0]! *= 2),
      (j: SavedJson) => (j.maas.quantization.layers[1]!.input.max += 0.5),
    ]) {
      const edited = structuredClone(json);
      edit(edited);
      await writeFile(join(dir, 'model.json'), JSON.stringify(edited));
      expect(await errorOf(() => loadQuantizedModel(dir))).toMatch(
        /^MAAS_ERR_MODEL_INTEGRITY: .* maas.descriptionSha256/,
      );
    }
  });

  it('refuses a scale of 1e308, a null scale, a zero point of 300 and an input scale its range does not give', async () => {
    const { dir, json } = await savedInt8();
    delete json.maas.weightsSha256;
    delete json.maas.descriptionSha256;
    const cases: [string, (j: SavedJson) => void, RegExp][] = [
      ['1e308', (j) => (j.maas.quantization.layers[0]!.weightScales[1] = 1e308), /weight scale 1 is 1e\+308/],
      ['1e-30', (j) => (j.maas.quantization.layers[0]!.weightScales[1] = 1e-30), /weight scale 1 is 1e-30/],
      ['null', (j) => (j.maas.quantization.layers[1]!.weightScales[0] = null), /needs 2 positive weight scales/],
      ['zero point', (j) => (j.maas.quantization.layers[0]!.input.zeroPoint = 300), /zero point is 300/],
      ['input scale', (j) => (j.maas.quantization.layers[0]!.input.scale *= 3), /are not the .* its range .* gives/],
      ['huge range', (j) => (j.maas.quantization.layers[1]!.input.max = 1e30), /input range .* the input scale is/],
    ];
    for (const [name, edit, why] of cases) {
      const edited = structuredClone(json);
      edit(edited);
      await writeFile(join(dir, 'model.json'), JSON.stringify(edited));
      const error = await errorOf(() => loadQuantizedModel(dir));
      expect(error, name).toMatch(/^MAAS_ERR_MODEL_FORMAT: The maas.quantization field of .* is invalid: /);
      expect(error, name).toMatch(why);
    }
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    await expect(loadQuantizedModel(dir)).resolves.toBeDefined();
  });
});

/** ONNX bytes with every metadata_props entry removed (a file written by another tool). */
function withoutMetadata(bytes: Uint8Array): Uint8Array {
  const type = onnxTypes().model;
  const decoded = type.decode(bytes) as unknown as { metadata_props?: unknown[] };
  decoded.metadata_props = [];
  return type.encode(decoded).finish();
}

/** The raw_data bytes of the initializer `name`, found in the file. */
function initializerOffset(bytes: Uint8Array, name: string): { at: number; length: number } {
  const decoded = onnxTypes().model.decode(bytes) as unknown as {
    graph: { initializer: { name: string; raw_data: Uint8Array }[] };
  };
  const raw = decoded.graph.initializer.find((t) => t.name === name)!.raw_data;
  return { at: onlyOffset(bytes, raw, `initializer ${name}`), length: raw.length };
}

describe('ONNX: maas.model_sha256 in metadata_props', () => {
  it('saveOnnx records it, and every ONNX loader verifies it under strictIntegrity', async () => {
    const dir = await temp();
    const m = model(6, 'sigmoid'); // loadOnnxGraph evaluates Sigmoid (not LeakyRelu)
    const path = join(dir, 'm.onnx');
    await m.saveOnnx(path);
    const decoded = onnxTypes().model.decode(await readFile(path)) as unknown as {
      metadata_props: { key: string; value: string }[];
    };
    expect(decoded.metadata_props).toEqual([{ key: ONNX_DIGEST_KEY, value: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    const loaded = await loadModel(path, { strictIntegrity: true });
    expect(loaded.predict(rows).values).toEqual(m.predict(rows).values);
    await expect(loadOnnxGraph(path, {}, { strictIntegrity: true })).resolves.toBeDefined();
  });

  it('a file maas wrote never loads changed: each single-bit flip is refused or changes nothing', async () => {
    const m = model(7);
    const want = m.predict(rows).values;
    const bytes = m.toOnnx();
    // The digest entry is appended: every byte before it is under the digest.
    const decoded = onnxTypes().model.decode(bytes) as unknown as { metadata_props: object[] };
    const entry = onnxTypes().model.encode({ metadata_props: decoded.metadata_props }).finish();
    const covered = bytes.length - entry.length;
    const weights = initializerOffset(bytes, 'W0');
    const dir = await temp();
    const path = join(dir, 'flip.onnx');
    let integrity = 0;
    for (let i = 0; i < bytes.length; i++) {
      const copy = bytes.slice();
      copy[i]! ^= 0x01;
      await writeFile(path, copy);
      let error = '';
      try {
        const loaded = await loadModel(path);
        expect(loaded.predict(rows).values, `flip at ${i} loaded with other outputs`).toEqual(want);
      } catch (e) {
        error = e instanceof MaasError ? `${e.code}: ${e.message}` : `not a MaasError: ${String(e)}`;
      }
      if (i < covered) expect(error, `flip at ${i} (under the digest) loaded`).toMatch(/^MAAS_ERR_/);
      if (i >= weights.at && i < weights.at + weights.length)
        expect(error, `flip at ${i} (in W0)`).toMatch(
          /^MAAS_ERR_MODEL_INTEGRITY: The graph, opsets and IR version of /,
        );
      if (error.startsWith('MAAS_ERR_MODEL_INTEGRITY')) integrity++;
    }
    expect(integrity).toBeGreaterThan(covered / 2);
  });

  it('an int8 export records it; a damaged int8 weight is refused; strict loads it intact', async () => {
    const q = quantize(model(8), { calibrationData: rows });
    const bytes = q.toOnnx();
    q.dispose();
    const dir = await temp();
    const path = join(dir, 'q.onnx');
    await writeFile(path, bytes);
    await expect(loadQuantizedModel(path, { strictIntegrity: true })).resolves.toBeDefined();
    const { at } = initializerOffset(bytes, 'q0_w');
    const damaged = bytes.slice();
    damaged[at + 2]! ^= 0x01;
    await writeFile(path, damaged);
    expect(await errorOf(() => loadQuantizedModel(path))).toMatch(/^MAAS_ERR_MODEL_INTEGRITY: /);
  });

  it('strictIntegrity refuses an ONNX file without the digest through every loader', async () => {
    const dir = await temp();
    const q = quantize(model(9), { calibrationData: rows });
    const plainInt8 = join(dir, 'plain-int8.onnx');
    await writeFile(plainInt8, withoutMetadata(q.toOnnx()));
    q.dispose();
    const missing = /^MAAS_ERR_MODEL_DIGEST_MISSING: strictIntegrity refuses .*: it records no digest/;
    expect(await errorOf(() => loadModel(ONNX_CHAIN, { strictIntegrity: true }))).toMatch(missing);
    expect(await errorOf(() => loadOnnxGraph(ONNX_CHAIN, {}, { strictIntegrity: true }))).toMatch(missing);
    expect(await errorOf(() => loadQuantizedModel(plainInt8, { strictIntegrity: true }))).toMatch(missing);
    await expect(loadModel(ONNX_CHAIN)).resolves.toBeDefined();
    await expect(loadQuantizedModel(plainInt8)).resolves.toBeDefined();
  });

  it('refuses a NaN initializer in a file without the digest', async () => {
    const weights = Float32Array.from({ length: 6 }, (_, i) => i / 7);
    weights[4] = NaN;
    const dir = await temp();
    const path = join(dir, 'nan.onnx');
    const bytes = buildDenseOnnx([{ in: 3, out: 2, weights, bias: null, activation: 'linear', alpha: 0 }]);
    await writeFile(path, withoutMetadata(bytes));
    expect(await errorOf(() => loadModel(path))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: Layer .*'s kernel in .* holds NaN at index 4/,
    );
  });
});

/** h5wasm (the ESM build, its in-memory file system) to write test files. */
async function h5lib() {
  const m = await import('h5wasm');
  await m.default.ready;
  return { h5: m.default, FS: m.FS! };
}

let edits = 0;
/** A copy of an .h5 file's bytes, edited with h5wasm. */
async function editH5(
  bytes: Uint8Array,
  edit: (file: InstanceType<Awaited<ReturnType<typeof h5lib>>['h5']['File']>) => void,
): Promise<Uint8Array> {
  const { h5, FS } = await h5lib();
  const name = `/edit-${edits++}.h5`;
  FS.writeFile(name, bytes);
  const file = new h5.File(name, 'a');
  try {
    edit(file);
  } finally {
    file.close();
  }
  const out = FS.readFile(name);
  FS.unlink(name);
  return out;
}

/**
 * The maas_sha256 of a Keras file as docs/import.md defines it, computed here from h5wasm's own
 * reading of the file (not maas's): records of model_config, then each weight by sorted layer.
 */
async function documentedKerasDigest(bytes: Uint8Array): Promise<string> {
  const { h5, FS } = await h5lib();
  const name = `/digest-${edits++}.h5`;
  FS.writeFile(name, bytes);
  const file = new h5.File(name, 'r');
  const hash = createHash('sha256');
  const record = (label: string, dims: number[], data: Uint8Array) => {
    const utf8 = Buffer.from(label, 'utf8');
    const head = Buffer.alloc(4 + utf8.length + 4 + 4 * dims.length + 8);
    head.writeUInt32LE(utf8.length, 0);
    utf8.copy(head, 4);
    head.writeUInt32LE(dims.length, 4 + utf8.length);
    dims.forEach((d, i) => head.writeUInt32LE(d, 8 + utf8.length + 4 * i));
    head.writeBigUInt64LE(BigInt(data.length), 8 + utf8.length + 4 * dims.length);
    hash.update(head).update(data);
  };
  try {
    record('model_config', [], Buffer.from(file.attrs.model_config!.value as string, 'utf8'));
    const weights = file.get('model_weights') as InstanceType<typeof h5.Group>;
    for (const layer of weights.keys().sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
      const group = weights.get(layer) as InstanceType<typeof h5.Group>;
      for (const w of group.attrs.weight_names!.value as string[]) {
        const ds = group.get(w) as InstanceType<typeof h5.Dataset>;
        record(`${layer}/${w}`, ds.shape!, bytesOf(Float32Array.from(ds.value as Float32Array)));
      }
    }
  } finally {
    file.close();
    FS.unlink(name);
  }
  return hash.digest('hex');
}

describe('Keras .h5', () => {
  it('parses the bytes it read: a file replaced between the read and the parse changes nothing', async () => {
    const dir = await temp();
    const path = join(dir, 'model.h5');
    await copyFile(H5, path);
    const want = await readKerasH5(H5);
    const got = await readKerasH5(path, {}, { afterRead: () => copyFile(H5_OTHER, path) });
    expect([...got.weights.keys()]).toEqual([...want.weights.keys()]);
    expect(got.weights.get('dense_1')).toEqual(want.weights.get('dense_1'));
    expect(got.topology).toEqual(want.topology);
  });

  it('refuses a dataset whose declared dims exceed the file before reading it', async () => {
    // A chunked kernel resized to [4, 6 000 000] without writing: HDF5 would read 96 MB of fill values.
    const bytes = await editH5(await readFile(H5), (file) => {
      const layer = file.get('model_weights/dense_1') as InstanceType<Awaited<ReturnType<typeof h5lib>>['h5']['Group']>;
      const big = layer.create_dataset({
        name: 'big_kernel',
        data: new Float32Array(24),
        shape: [4, 6],
        maxshape: [4, null],
        chunks: [4, 6],
      });
      big.resize([4, 6_000_000]);
      layer.delete_attribute('weight_names');
      layer.create_attribute('weight_names', ['big_kernel', 'dense_1/bias:0']);
    });
    const dir = await temp();
    const path = join(dir, 'big.h5');
    await writeFile(path, bytes);
    expect(await errorOf(() => loadModel(path))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: Expected a Keras HDF5 file at .* but its weight dense_1\/big_kernel declares 96000000 bytes \(\[4, 6000000\] × 4\) but the \d+-byte file cannot hold them/,
    );
  });

  it('verifies a maas_sha256 root attribute computed as documented; a damaged weight is refused', async () => {
    const original = new Uint8Array(await readFile(H5));
    const digest = await documentedKerasDigest(original);
    const signed = await editH5(original, (file) => file.create_attribute('maas_sha256', digest));
    const dir = await temp();
    const path = join(dir, 'signed.h5');
    await writeFile(path, signed);
    const want = await loadModel(H5);
    const got = await loadModel(path, { strictIntegrity: true });
    expect(got.predict(rows.map((r) => [...r, 0.5])).values).toEqual(want.predict(rows.map((r) => [...r, 0.5])).values);

    const kernel = (await readKerasH5(H5)).weights.get('dense_1')![0]!;
    const at = onlyOffset(signed, bytesOf(kernel), 'the kernel');
    const damaged = signed.slice();
    damaged[at + 9]! ^= 0x01;
    await writeFile(path, damaged);
    expect(await errorOf(() => loadModel(path))).toMatch(
      /^MAAS_ERR_MODEL_INTEGRITY: The model_config and weights of .* do not match the SHA-256 recorded in the root attribute maas_sha256/,
    );
  });

  it('strictIntegrity refuses an .h5 without maas_sha256; a NaN weight is refused without it', async () => {
    expect(await errorOf(() => loadModel(H5, { strictIntegrity: true }))).toMatch(
      /^MAAS_ERR_MODEL_DIGEST_MISSING: strictIntegrity refuses .*dense_tensorflow_2.h5: it records no digest .*maas convert/,
    );
    const bytes = new Uint8Array(await readFile(H5));
    const kernel = (await readKerasH5(H5)).weights.get('dense_1')![0]!;
    const at = onlyOffset(bytes, bytesOf(kernel), 'the kernel');
    Buffer.from(bytes.buffer, bytes.byteOffset).writeFloatLE(NaN, at + 4 * 5);
    const dir = await temp();
    const path = join(dir, 'nan.h5');
    await writeFile(path, bytes);
    expect(await errorOf(() => loadModel(path))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: Layer dense_1's kernel in .* holds NaN at index 5/,
    );
  });

  it('stops a file that makes HDF5 loop (a global heap object of size 0) with a coded error', async () => {
    const bytes = new Uint8Array(await readFile(H5));
    expect(bytes[3153]).toBe(12); // the free-space size in the global heap holding the string attributes
    bytes[3153] = 0;
    const dir = await temp();
    const path = join(dir, 'loop.h5');
    await writeFile(path, bytes);
    expect(await errorOf(() => readKerasH5(path, {}, { parseTimeoutMs: 3000 }))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: Expected a Keras HDF5 file at .* but HDF5 did not finish parsing it within 3 s/,
    );
  });

  it('a file that trapped HDF5 leaves the next load of the same path working', async () => {
    // Read in place by one long-lived HDF5 instance, this file made it trap and stay open: the same
    // path, restored, kept failing until the process restarted.
    const bytes = new Uint8Array(await readFile(H5));
    const trap = bytes.slice();
    trap[11673] = 255;
    trap[523] = 35;
    const dir = await temp();
    const path = join(dir, 'model.h5');
    await writeFile(path, trap);
    expect(await errorOf(() => loadModel(path))).toMatch(/^MAAS_ERR_MODEL_FORMAT: /);
    await writeFile(path, bytes);
    await expect(loadModel(path)).resolves.toBeDefined();
  });
});

describe('the loader boundary', () => {
  it('codes what a parser throws, naming the file, and cuts long messages', () => {
    const parser = loaderError(new SyntaxError(`Unexpected token in ${'x'.repeat(5000)}`), '/models/m.json');
    expect(parser.code).toBe('MAAS_ERR_MODEL_FORMAT');
    expect(parser.message).toMatch(
      /^Cannot read the model file \/models\/m.json: Unexpected token in x+… \(\d+ more characters\)$/,
    );
    expect(parser.message.length).toBeLessThan(400);
    const long = loaderError(new MaasError('MAAS_ERR_MODEL_INTEGRITY', 'y'.repeat(50_000)), '/models/m.json');
    expect(long.code).toBe('MAAS_ERR_MODEL_INTEGRITY');
    expect(long.message.length).toBeLessThanOrEqual(MAX_LOADER_MESSAGE_CHARS + 40);
  });

  it('a megabyte layer name from a file does not reach the message whole', async () => {
    const dir = await temp();
    const name = 'n'.repeat(1_000_000);
    await writeFile(
      join(dir, 'model.json'),
      JSON.stringify({
        modelTopology: { class_name: 'Sequential', config: { layers: [{ class_name: 'Conv2D', config: { name } }] } },
        weightsManifest: [],
      }),
    );
    const error = await errorOf(() => loadModel(dir));
    expect(error).toMatch(/^MAAS_ERR_MODEL_FORMAT: Layer 'n+… \(\d+ more characters\)$/);
    expect(error.length).toBeLessThan(MAX_LOADER_MESSAGE_CHARS + 100);
  });

  it('the bundled default repository verifies strictly', async () => {
    await expect(
      loadModel(join(packageRoot(), 'models', 'classic', '1'), { strictIntegrity: true }),
    ).resolves.toBeDefined();
    const int8 = await loadQuantizedModel(join(packageRoot(), 'models', 'classic_int8', '1'), {
      strictIntegrity: true,
    });
    int8.dispose();
  });
});

describe('serving: the strict_integrity config parameter', () => {
  const config = (parameters?: object) => completeConfig('m', parameters ? { parameters } : {});
  it('overrides the server default with "true" or "false" and refuses anything else', () => {
    expect(strictIntegrityOf(config(), false)).toBe(false);
    expect(strictIntegrityOf(config(), true)).toBe(true);
    expect(strictIntegrityOf(config({ strict_integrity: { string_value: 'true' } }), false)).toBe(true);
    expect(strictIntegrityOf(config({ strict_integrity: { string_value: 'FALSE' } }), true)).toBe(false);
    for (const bad of [{ string_value: 'yes' }, 'true', { bool_value: true }])
      expect(() => strictIntegrityOf(config({ strict_integrity: bad }), false)).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_MODEL_CONFIG' }),
      );
  });
});
