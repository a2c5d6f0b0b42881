/**
 * Streamed loads and the packed cache. A tfjs-layers model is read a tensor at a time and packed
 * as it is read: the bytes must be exactly those of the whole-file load, whatever the sharding
 * (tensors cut across files) or folding (BatchNormalization), and a damaged weight must still be
 * caught by the digest. The packed cache must give back the same bytes on a hit, key on the
 * model's files, and refuse anything that is not private to this user.
 */
import { readFileSync } from 'node:fs';
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  dense,
  initializers,
  InferencePool,
  openModelFile,
  openPackedRegion,
  quantize,
  sequential,
} from '../../src/index.js';
import {
  nativeLayerSpec,
  openInputGradients,
  packDenseStackRegion,
  packInt8StackRegion,
  type PackLayer,
  type PackedRegion,
} from '../../src/model/packed.js';
import { readInt8 } from '../../src/quant/load.js';
import { int8PackLayer, int8PackLayers } from '../../src/quant/model.js';
import { native, type RegionView } from '../../src/native/index.js';
import { runPack } from '../../src/cli/pack.js';

const rows = Float32Array.from({ length: 8 * 10 }, (_, i) => Math.sin(i * 0.37));

function model() {
  return sequential({
    layers: [
      dense({
        units: 24,
        activation: 'relu',
        inputShape: [10],
        kernelInitializer: initializers.glorotUniform({ seed: 3 }),
      }),
      dense({ units: 16, activation: 'tanh', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
      dense({ units: 3, kernelInitializer: initializers.glorotUniform({ seed: 5 }) }),
    ],
  });
}

/** The bytes a region holds, read through this process's descriptor. */
function regionBytes(region: PackedRegion): Buffer {
  return readFileSync(`/proc/self/fd/${region.fd}`);
}

/** Rewrites a saved model's weights as shards of the given sizes (the last takes the rest). */
async function reshard(dir: string, sizes: number[]): Promise<void> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const group = json.weightsManifest[0];
  const bytes = await readFile(join(dir, group.paths[0]));
  const paths: string[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const end = i < sizes.length ? at + sizes[i]! : bytes.length;
    paths.push(`shards/part${i}.bin`);
    await mkdir(join(dir, 'shards'), { recursive: true });
    await writeFile(join(dir, paths[i]!), bytes.subarray(at, end));
    at = end;
  }
  await rm(join(dir, group.paths[0]));
  group.paths = paths;
  await writeFile(join(dir, 'model.json'), JSON.stringify(json));
}

/** Inserts a BatchNormalization after the first Dense (its weights appended), digests dropped. */
async function addBatchNorm(dir: string): Promise<void> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const layers = json.modelTopology.config.layers;
  layers.splice(1, 0, {
    class_name: 'BatchNormalization',
    config: { name: 'bn', epsilon: 0.001, center: true, scale: true, axis: -1 },
  });
  layers[0].config.activation = 'linear';
  const group = json.weightsManifest[0];
  const units = 24;
  const stats = ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((kind, k) => ({
    spec: { name: `bn/${kind}`, shape: [units], dtype: 'float32' },
    values: Float32Array.from({ length: units }, (_, i) => (k === 3 ? 0.5 + i / 50 : Math.cos(i + k) / 3)),
  }));
  const weights = await readFile(join(dir, group.paths[0]));
  const extra = Buffer.concat(stats.map((s) => Buffer.from(s.values.buffer)));
  await writeFile(join(dir, group.paths[0]), Buffer.concat([weights, extra]));
  group.weights.push(...stats.map((s) => s.spec));
  delete json.maas.weightsSha256;
  delete json.maas.descriptionSha256;
  await writeFile(join(dir, 'model.json'), JSON.stringify(json));
}

/** Packs into a fresh page-aligned region through `pack`, and returns its bytes. */
function packedBytes(bytes: number, pack: (view: RegionView) => void): Buffer {
  const region = native.createRegion(bytes);
  try {
    pack(region.view);
    // The region's file holds what was packed through its (page-aligned) view.
    return readFileSync(`/proc/self/fd/${region.fd}`);
  } finally {
    native.releaseRegionView(region.view);
    native.closeRegion(region.fd);
  }
}

describe('packing one layer at a time', () => {
  const m = model();
  const layers = m.layers as unknown as PackLayer[];
  const specs = layers.map(nativeLayerSpec);
  const kernels = layers.map((l) => l.kernel!);
  const biases = layers.map((l) => l.bias);

  it('gives the bytes of one packStack call, for fp32 and bf16, in any layer order', () => {
    for (const precision of ['fp32', 'bf16'] as const) {
      const bytes = native.packedStackByteLength(specs, precision);
      const once = packedBytes(bytes, (view) => native.packStack(specs, kernels, biases, view, precision));
      const byLayer = packedBytes(bytes, (view) => {
        for (const i of [2, 0, 1]) native.packStackLayer(specs, i, kernels[i]!, biases[i]!, view, precision);
      });
      expect(byLayer.equals(once)).toBe(true);
    }
  });

  it('refuses a region view once released, and anything that is not one', () => {
    const bytes = native.packedStackByteLength(specs, 'fp32');
    const region = native.createRegion(bytes);
    try {
      native.packStack(specs, kernels, biases, region.view, 'fp32');
      native.releaseRegionView(region.view);
      expect(() => native.packStackLayer(specs, 0, kernels[0]!, biases[0]!, region.view, 'fp32')).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_ARG_TYPE' }),
      );
      expect(() => native.releaseRegionView(region.view)).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
      );
      expect(() => native.dropRegionPages({} as never)).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
      );
    } finally {
      native.closeRegion(region.fd);
    }
  });

  it('gives the bytes of one packQuantized call, with a layer kept in fp32', () => {
    const q = quantize(m, { calibrationData: rows });
    const spec = { ...q.spec, layers: q.spec.layers.map((l, i) => (i === 1 ? { ...l, int8: false } : l)) };
    const int8 = spec.layers.map((l, i) => int8PackLayer(spec, i, l.int8 ? readInt8Weights(kernels[i]!, l) : null));
    const qspecs = specs.map((s, i) => ({
      ...s,
      int8: int8[i]!.weights !== null,
      inMin: int8[i]!.inMin,
      inMax: int8[i]!.inMax,
    }));
    const weights = int8.map((l, i) => l.weights ?? kernels[i]!);
    const bytes = native.packedQuantizedByteLength(qspecs);
    for (const dynamic of [false, true]) {
      const once = packedBytes(bytes, (view) =>
        native.packQuantized(
          qspecs,
          dynamic,
          weights,
          int8.map((l) => l.scales),
          biases,
          view,
        ),
      );
      const byLayer = packedBytes(bytes, (view) => {
        for (const i of [1, 2, 0])
          native.packQuantizedLayer(qspecs, dynamic, i, weights[i]!, int8[i]!.scales, biases[i]!, view);
      });
      expect(byLayer.equals(once)).toBe(true);
    }
    expect(() => native.packQuantizedLayer(qspecs, false, 3, weights[0]!, null, null, new Uint8Array(bytes))).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
    expect(() => native.packStackLayer(specs, 0, kernels[1]!, biases[0]!, new Uint8Array(bytes))).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
  });
});

/** Symmetric int8 weights on a per-column grid, from fp32 values and the spec's scales. */
function readInt8Weights(kernel: Float32Array, layer: { weightScales?: number[] }): Int8Array {
  const scales = layer.weightScales!;
  return Int8Array.from(kernel, (v, i) => Math.max(-127, Math.min(127, Math.round(v / scales[i % scales.length]!))));
}

describe('streamed tfjs loads (InferencePool.load)', () => {
  const pool = new InferencePool({ workers: 1 });
  afterAll(() => pool.close());

  it('packs exactly the bytes of a whole-file load: shards cut mid-tensor, a folded BatchNormalization, int8', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-stream-'));
    const fp32 = model();
    await fp32.save(join(dir, 'fp32'));
    await quantize(fp32, { calibrationData: rows }).save(join(dir, 'int8'));
    await fp32.save(join(dir, 'bn'));
    await addBatchNorm(join(dir, 'bn'));
    for (const name of ['fp32', 'int8', 'bn']) {
      await reshard(join(dir, name), [100, 7, 999]); // kernel 1 spans three files
      const streamed = await pool.load(join(dir, name, 'model.json'));
      const opened = await openModelFile(join(dir, name, 'model.json'));
      expect(opened.layers.length).toBe(3);
      const { spec, int8Weights } = name === 'int8' ? readInt8(opened) : { spec: null, int8Weights: [] };
      const whole = spec
        ? await packInt8StackRegion(opened.layers, int8PackLayers(spec, int8Weights), spec.mode === 'dynamic')
        : await packDenseStackRegion(opened.layers);
      try {
        expect([streamed.region.format, streamed.region.kernel]).toEqual([whole.format, whole.kernel]);
        expect(regionBytes(streamed.region).equals(regionBytes(whole))).toBe(true);
      } finally {
        pool.discard(streamed);
        native.closeRegion(whole.fd);
      }
    }
  });

  it('refuses a damaged weight through the digest after streaming, and leaves no region behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-stream-bad-'));
    await model().save(dir);
    await reshard(dir, [64, 64]);
    const last = join(dir, 'shards', 'part2.bin');
    const bytes = await readFile(last);
    bytes[10] = bytes[10]! ^ 0x01;
    await writeFile(last, bytes);
    const before = (await readdir('/proc/self/fd')).length;
    await expect(pool.load(join(dir, 'model.json'))).rejects.toMatchObject({ code: 'MAAS_ERR_MODEL_INTEGRITY' });
    expect((await readdir('/proc/self/fd')).length).toBeLessThanOrEqual(before);
  });

  it('refuses a weights file shorter than its manifest before reading it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-stream-short-'));
    await model().save(dir);
    await reshard(dir, [64, 64]);
    await truncate(join(dir, 'shards', 'part2.bin'), 10);
    await expect(pool.load(join(dir, 'model.json'))).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_FORMAT',
      message: expect.stringMatching(/hold \d+ bytes but its weightsManifest needs \d+/),
    });
  });
});

describe('the packed cache', () => {
  const pool = new InferencePool({ workers: 1 });
  afterAll(() => pool.close());

  async function fixture() {
    const root = await mkdtemp(join(tmpdir(), 'maas-cache-'));
    const m = model();
    await m.save(join(root, 'model'));
    return { root, m, path: join(root, 'model', 'model.json'), cache: join(root, 'cache') };
  }

  it('writes an entry at first load and maps it after: same bytes, same outputs, private files', async () => {
    const { m, path, cache } = await fixture();
    const first = await pool.load(path, { packedCache: cache });
    const second = await pool.load(path, { packedCache: cache });
    try {
      expect([first.cached, second.cached]).toEqual(['written', 'hit']);
      expect(regionBytes(second.region).equals(regionBytes(first.region))).toBe(true);
      expect([second.region.kernel, second.region.format, second.inputSize, second.outputSize]).toEqual([
        m.packed().kernel,
        'fp32',
        10,
        3,
      ]);
      const handle = openPackedRegion(second.region);
      const twin = openPackedRegion(first.region);
      // Two handles over one file share one mapping: the weights count once in the resident set.
      const pack = (await readdir(cache)).find((f) => f.endsWith('.pack'))!;
      const mappings = () =>
        readFileSync('/proc/self/maps', 'utf8')
          .split('\n')
          .filter((l) => l.endsWith(pack));
      expect(mappings().length).toBe(1);
      const y = new Float32Array(8 * 3);
      handle.predict(rows, 8, y);
      handle.dispose();
      expect(mappings().length).toBe(1);
      twin.dispose();
      expect(mappings().length).toBe(0);
      // A region shorter than its record cannot be mapped: a coded error, not a fault later.
      expect(() => openPackedRegion({ ...second.region, byteLength: second.region.byteLength + 4096 })).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_PACKED_MAP_FAILED' }),
      );
      expect(y).toEqual(m.predict(rows).values);
      expect((await stat(cache)).mode & 0o777).toBe(0o700);
      const files = await readdir(cache);
      expect(files.filter((f) => f.endsWith('.pack')).length).toBe(1);
      expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
      for (const f of files) expect((await stat(join(cache, f))).mode & 0o077).toBe(0);
    } finally {
      pool.discard(first);
      pool.discard(second);
    }
  });

  it('keeps the round trip (explanations) as an entry of its own: written once, then mapped, with the same gradients', async () => {
    const { m, path, cache } = await fixture();
    const first = await pool.load(path, { packedCache: cache, roundTrip: true });
    const second = await pool.load(path, { packedCache: cache, roundTrip: true });
    try {
      expect([first.cached, first.roundTripCached]).toEqual(['written', 'written']);
      expect([second.cached, second.roundTripCached]).toEqual(['hit', 'hit']);
      expect(regionBytes(second.roundTrip!).equals(regionBytes(first.roundTrip!))).toBe(true);
      expect((await readdir(cache)).filter((f) => f.endsWith('.pack')).length).toBe(2);
      const mapped = openInputGradients({ fd: second.roundTrip!.fd, byteLength: second.roundTrip!.byteLength });
      const dy = new Float32Array(8 * 3).fill(1);
      const got = new Float32Array(8 * 10);
      mapped.gradient(rows, 8, dy, got);
      mapped.dispose();
      const want = new Float32Array(8 * 10);
      m.inputGradients().gradient(rows, 8, dy, want);
      expect(got).toEqual(want);
    } finally {
      pool.discard(first);
      pool.discard(second);
    }
  });

  it('keys on the model files: an edited file is packed again, the int8 and bf16 packings are their own entries', async () => {
    const { m, root, path, cache } = await fixture();
    pool.discard(await pool.load(path, { packedCache: cache }));
    const later = new Date(Date.now() + 5000);
    await utimes(path, later, later);
    const edited = await pool.load(path, { packedCache: cache });
    pool.discard(edited);
    expect(edited.cached).toBe('written');
    const bf16 = await pool.load(path, { packedCache: cache, precision: 'bf16' });
    pool.discard(bf16);
    expect([bf16.cached, bf16.region.format]).toEqual(['written', 'bf16']);
    await quantize(m, { calibrationData: rows }).save(join(root, 'int8'));
    const int8 = await pool.load(join(root, 'int8', 'model.json'), { packedCache: cache });
    pool.discard(int8);
    expect([int8.cached, int8.region.format]).toEqual(['written', 'int8']);
    expect(int8.quantization).toMatch(/^static minmax/);
    const again = await pool.load(join(root, 'int8', 'model.json'), { packedCache: cache });
    pool.discard(again);
    expect([again.cached, again.quantization]).toEqual(['hit', int8.quantization]);
    expect((await readdir(cache)).filter((f) => f.endsWith('.pack')).length).toBe(4);
  });

  it('refuses a cache open to other users, a symbolic link, or an entry owned by someone else', async () => {
    const { root, path, cache } = await fixture();
    await mkdir(cache, { mode: 0o755 });
    await chmod(cache, 0o755);
    await expect(pool.load(path, { packedCache: cache })).rejects.toMatchObject({
      code: 'MAAS_ERR_PACKED_CACHE_UNSAFE',
      message: expect.stringMatching(/mode is 755; other users must have no access/),
    });
    await chmod(cache, 0o700);
    const link = join(root, 'link');
    await symlink(cache, link);
    await expect(pool.load(path, { packedCache: link })).rejects.toMatchObject({
      code: 'MAAS_ERR_PACKED_CACHE_UNSAFE',
      message: expect.stringMatching(/symbolic link/),
    });
    pool.discard(await pool.load(path, { packedCache: cache }));
    const pack = (await readdir(cache)).find((f) => f.endsWith('.pack'))!;
    if (process.geteuid?.() === 0) {
      await chown(join(cache, pack), 65534, 65534);
      await expect(pool.load(path, { packedCache: cache })).rejects.toMatchObject({
        code: 'MAAS_ERR_PACKED_CACHE_UNSAFE',
        message: expect.stringMatching(/owned by another user/),
      });
      await chown(join(cache, pack), 0, 0);
    }
    await chmod(join(cache, pack), 0o666);
    await expect(pool.load(path, { packedCache: cache })).rejects.toMatchObject({
      code: 'MAAS_ERR_PACKED_CACHE_UNSAFE',
      message: expect.stringMatching(/other users may write it/),
    });
  });

  it('packs again over an entry cut short, and a strict load never takes an entry packed without a digest', async () => {
    const { path, cache } = await fixture();
    pool.discard(await pool.load(path, { packedCache: cache }));
    const pack = join(
      cache,
      (await readdir(cache)).find((f) => f.endsWith('.pack'))!,
    );
    await truncate(pack, 100);
    const repacked = await pool.load(path, { packedCache: cache });
    pool.discard(repacked);
    expect(repacked.cached).toBe('written');
    expect((await stat(pack)).size).toBe(repacked.region.byteLength);

    const json = JSON.parse(await readFile(path, 'utf8'));
    delete json.maas.weightsSha256;
    delete json.maas.descriptionSha256;
    await writeFile(path, JSON.stringify(json));
    const lenient = await pool.load(path, { packedCache: cache });
    pool.discard(lenient);
    expect(lenient.cached).toBe('written');
    await expect(pool.load(path, { packedCache: cache, strictIntegrity: true })).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_DIGEST_MISSING',
    });
  });
});

describe('maas pack', () => {
  const pool = new InferencePool({ workers: 1 });
  afterAll(() => pool.close());

  it('packs a version directory ahead of serving: the server then maps the entry', async () => {
    const root = await mkdtemp(join(tmpdir(), 'maas-pack-cli-'));
    await model().save(join(root, '1'));
    const cache = join(root, 'cache');
    const lines: string[] = [];
    const print = (line: string) => lines.push(line);
    await runPack(join(root, '1'), { packedCache: cache, print });
    await runPack(join(root, '1', 'model.json'), { packedCache: cache, print, precision: 'fp32' });
    expect(lines[0]).toMatch(/^packed .*model\.json: fp32 for f32_gemm\S+, [\d.]+ [KM]iB in .*cache \(\d+ ms\)$/);
    expect(lines[1]).toMatch(/^already packed /);
    const served = await pool.load(join(root, '1', 'model.json'), { packedCache: cache });
    pool.discard(served);
    expect(served.cached).toBe('hit');
    await writeFile(join(root, 'model.json.enc'), 'not really encrypted');
    await expect(runPack(join(root, 'model.json.enc'), { packedCache: cache, print })).rejects.toMatchObject({
      code: 'MAAS_ERR_ARG_RANGE',
      message: expect.stringMatching(/encrypted models are never cached/),
    });
  });

  it('prunes stale entries, leftovers and, by least recent use, entries over a size', async () => {
    const root = await mkdtemp(join(tmpdir(), 'maas-prune-'));
    const cache = join(root, 'cache');
    for (const v of ['1', '2', '3']) await model().save(join(root, v));
    const lines: string[] = [];
    const print = (line: string) => lines.push(line);
    for (const v of ['1', '2', '3']) await runPack(join(root, v), { packedCache: cache, print });
    const packs = async () => (await readdir(cache)).filter((f) => f.endsWith('.pack')).length;
    expect(await packs()).toBe(3);
    const entryBytes = (
      await stat(
        join(
          cache,
          (await readdir(cache)).find((f) => f.endsWith('.pack'))!,
        ),
      )
    ).size;

    // Version 1 edited (a new key), version 2 deleted: both entries are stale; a leftover of a dead pack goes too.
    const later = new Date(Date.now() + 5000);
    await utimes(join(root, '1', 'model.json'), later, later);
    await rm(join(root, '2'), { recursive: true });
    const leftover = join(cache, `.${'0'.repeat(40)}.123.abc.tmp`);
    await writeFile(leftover, 'x');
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(leftover, old, old);
    lines.length = 0;
    await runPack(undefined, { packedCache: cache, prune: true, print });
    expect(lines.filter((l) => l.startsWith('removed stale entry')).sort()).toEqual([
      `removed stale entry of ${join(root, '1', 'model.json')}`,
      `removed stale entry of ${join(root, '2', 'model.json')}`,
    ]);
    expect(lines.at(-1)).toMatch(
      /^pruned .*: 2 stale, 0 evicted, 1 leftover files; freed [\d.]+ [KM]iB, [\d.]+ [KM]iB kept$/,
    );
    expect(await packs()).toBe(1);
    const survivor = await pool.load(join(root, '3', 'model.json'), { packedCache: cache });
    pool.discard(survivor);
    expect(survivor.cached).toBe('hit');

    // Three live entries over a cap of two: the least recently used goes, a hit counts as a use.
    for (const v of ['4', '5']) {
      await model().save(join(root, v));
      await runPack(join(root, v), { packedCache: cache, print });
    }
    pool.discard(await pool.load(join(root, '3', 'model.json'), { packedCache: cache }));
    lines.length = 0;
    await runPack(undefined, { packedCache: cache, prune: true, maxSize: 2 * entryBytes, print });
    expect(lines[0]).toBe(`evicted ${join(root, '4', 'model.json')} (least recently used)`);
    expect(await packs()).toBe(2);
    const kept = await pool.load(join(root, '3', 'model.json'), { packedCache: cache });
    pool.discard(kept);
    expect(kept.cached).toBe('hit');
    // The most recent entry stays whatever the cap.
    await runPack(undefined, { packedCache: cache, prune: true, maxSize: 1, print });
    expect(await packs()).toBe(1);
    await expect(runPack(undefined, { packedCache: cache, print })).rejects.toMatchObject({
      code: 'MAAS_ERR_ARG_RANGE',
      message: expect.stringMatching(/or prune the cache with --prune/),
    });
    await rm(root, { recursive: true, force: true });
  });

  it('keeps the cache under --packed-cache-max-size while serving', async () => {
    const root = await mkdtemp(join(tmpdir(), 'maas-prune-serve-'));
    const cache = join(root, 'cache');
    const repo = join(root, 'repo');
    for (const name of ['a', 'b', 'c']) await model().save(join(repo, name, '1'));
    const { serve } = await import('../../src/index.js');
    const probe = await pool.load(join(repo, 'a', '1', 'model.json'));
    pool.discard(probe);
    const server = await serve({
      modelRepository: repo,
      grpcPort: 0,
      httpPort: 0,
      metricsPort: 0,
      workers: 1,
      packedCache: cache,
      packedCacheMaxBytes: Math.floor(probe.region.byteLength * 2.5),
      logLevel: 'silent',
    });
    try {
      expect((await readdir(cache)).filter((f) => f.endsWith('.pack')).length).toBe(2);
    } finally {
      await server.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
