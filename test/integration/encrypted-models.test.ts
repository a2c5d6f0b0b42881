/**
 * Encrypted models through the real server: each format (tfjs fp32, int8, ONNX, Keras .h5)
 * encrypted serves over REST exactly what its plaintext twin serves, with no plaintext written
 * anywhere on the way; poll mode follows a key rotation to a new version; a tampered version and
 * one under an unknown key are refused with their codes while the serving version answers on.
 */
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { GrpcInferenceClient, HttpInferenceClient, InferenceServerError } from '../../src/client/index.js';
import { ModelKeyring, encryptModel, generateModelKey, quantize } from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import type { RunningServer } from '../../src/serving/server.js';
import { inputs, smallModel, startServer, tempRepository, until } from './server-helpers.js';

const WIDTH = 8;
const H5 = join(packageRoot(), 'test', 'fixtures', 'keras_h5', 'dl4j_dense_known_weights', 'dense_tensorflow_2.h5');
const running: RunningServer[] = [];
const clients: GrpcInferenceClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of running.splice(0)) await s.close();
});

/** A key file, 0600, of "<key id> <key>" lines. */
async function keyFile(dir: string, keys: Record<string, string>): Promise<string> {
  const path = join(dir, 'model-keys');
  await writeFile(
    path,
    Object.entries(keys)
      .map(([id, key]) => `${id} ${key}\n`)
      .join(''),
    { mode: 0o600 },
  );
  return path;
}

/** Every regular file under `dir` with its size and modification time (a snapshot to compare). */
async function files(dir: string, into = new Map<string, string>()): Promise<Map<string, string>> {
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await files(path, into);
    else if (entry.isFile()) {
      const s = await stat(path);
      into.set(path, `${s.size}:${s.mtimeMs}`);
    }
  }
  return into;
}

/** The files that are new or changed since `before`, whose bytes hold any of `markers`. */
async function holdingMarkers(dirs: string[], before: Map<string, string>, markers: Buffer[]): Promise<string[]> {
  const found: string[] = [];
  for (const dir of dirs)
    for (const [path, version] of await files(dir)) {
      if (before.get(path) === version) continue;
      const bytes = await readFile(path).catch(() => Buffer.alloc(0));
      if (markers.some((m) => bytes.includes(m))) found.push(path);
    }
  return found;
}

/** Slices of a plaintext file that no other file holds by chance (32 bytes at a few offsets). */
async function markersOf(path: string): Promise<Buffer[]> {
  const bytes = await readFile(path);
  return [0.25, 0.5, 0.75].map((f) =>
    Buffer.from(bytes.subarray(Math.floor(bytes.length * f), Math.floor(bytes.length * f) + 32)),
  );
}

describe('encrypted models in a served repository', () => {
  it('serve every format as their plaintext twins do, and write no plaintext while loading', async () => {
    const staging = await mkdtemp(join(tmpdir(), 'maas-encrypted-staging-'));
    const root = await tempRepository();
    const key = generateModelKey();
    const keys = new ModelKeyring({ keyFile: await keyFile(staging, { 'k-2026': key }), environment: null });
    // Plaintext models, staged outside the repository; each goes in twice: as it is, and encrypted.
    const fp32 = smallModel(WIDTH, 2, 91);
    await fp32.save(join(staging, 'tfjs'));
    const int8 = quantize(smallModel(WIDTH, 1, 92), { calibrationData: inputs(64, WIDTH, 93) });
    await int8.save(join(staging, 'int8'));
    int8.dispose();
    await smallModel(WIDTH, 3, 94).saveOnnx(join(staging, 'model.onnx'));
    await copyFile(H5, join(staging, 'model.h5'));
    const models: [string, string, string][] = [
      ['tfjs', join(staging, 'tfjs'), 'model.json'],
      ['int8', join(staging, 'int8'), 'model.json'],
      ['onnx', join(staging, 'model.onnx'), 'model.onnx'],
      ['h5', join(staging, 'model.h5'), 'model.h5'],
    ];
    const markers: Buffer[] = [];
    for (const [name, source, file] of models) {
      await mkdir(join(root, `sealed_${name}`, '1'), { recursive: true });
      await encryptModel(source, join(root, `sealed_${name}`, '1', `${file}.enc`), { keys, keyId: 'k-2026' });
      await mkdir(join(root, `plain_${name}`, '1'), { recursive: true });
      if (file === 'model.json') {
        for (const f of await readdir(source)) await copyFile(join(source, f), join(root, `plain_${name}`, '1', f));
        const weights = (await readdir(source)).find((f) => f.endsWith('.bin'))!;
        markers.push(...(await markersOf(join(source, weights))), ...(await markersOf(join(source, 'model.json'))));
      } else {
        await copyFile(source, join(root, `plain_${name}`, '1', file));
        markers.push(...(await markersOf(source)));
      }
    }
    // Load threads and the HDF5 thread inherit this TMPDIR: a temporary file would land here.
    const privateTmp = await mkdtemp(join(tmpdir(), 'maas-encrypted-tmp-'));
    const before = await files(root);
    const logs: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logs.push(chunk.toString('utf8'));
          done();
        },
      }),
    );
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    let server: RunningServer;
    try {
      server = await startServer(root, { modelKeys: keys, logger });
      running.push(server);
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
    const client = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
    const index = await client.repositoryIndex();
    expect(index.map((r) => [r.name, r.state])).toEqual(
      ['plain', 'sealed'].flatMap((kind) => ['h5', 'int8', 'onnx', 'tfjs'].map((n) => [`${kind}_${n}`, 'READY'])),
    );
    for (const [name] of models) {
      const meta = await client.modelMetadata(`sealed_${name}`);
      const width = meta.inputs[0]!.shape[1]!;
      const x = inputs(5, width, 95);
      const ask = (model: string) =>
        client.infer({ model, inputs: [{ name: meta.inputs[0]!.name, datatype: 'FP32', shape: [5, width], data: x }] });
      const [plain, sealed] = [await ask(`plain_${name}`), await ask(`sealed_${name}`)];
      expect(Array.from(sealed.outputs[0]!.data as Float32Array), name).toEqual(
        Array.from(plain.outputs[0]!.data as Float32Array),
      );
      expect(meta.platform, name).toBe((await client.modelMetadata(`plain_${name}`)).platform);
      expect(await readdir(join(root, `sealed_${name}`, '1')), name).toEqual([
        `${models.find((m) => m[0] === name)![2]}.enc`,
      ]);
    }
    // Nothing new on disk holds a piece of any plaintext model file: not in the repository, not in TMPDIR.
    expect(markers.length).toBe(18);
    expect(await holdingMarkers([root, privateTmp], before, markers)).toEqual([]);
    // The key id is logged with each encrypted version; the key never is.
    const ready = logs.filter((l) => l.includes('model version ready'));
    expect(ready.filter((l) => l.includes('"keyId":"k-2026"'))).toHaveLength(4);
    expect(logs.join('').includes(key)).toBe(false);
    expect(logs.join('').includes(Buffer.from(key, 'base64').toString('hex'))).toBe(false);
  });

  it('poll mode follows a key rotation to a new version, and keeps it serving past a tampered one and an unknown key', async () => {
    const staging = await mkdtemp(join(tmpdir(), 'maas-encrypted-staging-'));
    const root = await tempRepository();
    const keysA = { a: generateModelKey() };
    const keysAB = { ...keysA, b: generateModelKey() };
    const path = await keyFile(staging, keysA);
    const keys = new ModelKeyring({ keyFile: path, environment: null, cacheMs: 0 });
    const versions = [1, 2, 3, 4].map((v) => smallModel(WIDTH, 1, 100 + v));
    /** Encrypts version `version` in the staging directory, then moves its directory into the repository in one step. */
    const publish = async (version: number, keyId: string, keyring: ModelKeyring, change?: (bytes: Buffer) => void) => {
      await versions[version - 1]!.save(join(staging, `plain-${version}`));
      const dir = join(staging, `v${version}`);
      await mkdir(dir);
      await encryptModel(join(staging, `plain-${version}`), join(dir, 'model.json.enc'), { keys: keyring, keyId });
      if (change) {
        const bytes = await readFile(join(dir, 'model.json.enc'));
        change(bytes);
        await writeFile(join(dir, 'model.json.enc'), bytes);
      }
      await rename(dir, join(root, 'm', String(version)));
    };
    await mkdir(join(root, 'm'));
    await publish(1, 'a', keys);
    const server = await startServer(root, { modelKeys: keys, modelControlMode: 'poll', repositoryPollSeconds: 0.2 });
    running.push(server);
    const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
    clients.push(client);
    const x = inputs(1, WIDTH, 107);
    const ask = async () => {
      const r = await client.infer({
        model: 'm',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x }],
      });
      return { version: r.version, y: (r.outputs[0]!.data as Float32Array)[0]! };
    };
    const expected = (version: number) => versions[version - 1]!.predict(x.slice()).values[0]!;
    expect((await ask()).version).toBe('1');

    // Rotation: key b joins the key file (read again at each lookup), version 2 is encrypted with it.
    await keyFile(staging, keysAB);
    await publish(2, 'b', new ModelKeyring({ keys: keysAB, environment: null }));
    await until(async () => (await ask()).version === '2', 'version 2 to serve', 30_000, 20);
    expect(Math.abs((await ask()).y - expected(2))).toBeLessThanOrEqual(1e-6);

    // Version 3 is tampered with: one ciphertext byte flipped after encryption.
    await publish(3, 'b', new ModelKeyring({ keys: keysAB, environment: null }), (bytes) => {
      bytes[bytes.length - 100]! ^= 0x04;
    });
    const row = async (version: string) => (await client.repositoryIndex()).find((r) => r.version === version);
    await until(async () => (await row('3'))?.state === 'UNAVAILABLE', 'version 3 to be refused', 30_000, 20);
    expect((await row('3'))!.reason).toMatch(
      /The encrypted model file .*m\/3\/model.json.enc failed authentication with key 'b': it was damaged, truncated or tampered with/,
    );
    expect((await ask()).version).toBe('2');
    expect(Math.abs((await ask()).y - expected(2))).toBeLessThanOrEqual(1e-6);

    // Version 4 names a key no source holds.
    await publish(4, 'c', new ModelKeyring({ keys: { c: generateModelKey() }, environment: null }));
    await until(async () => (await row('4'))?.state === 'UNAVAILABLE', 'version 4 to be refused', 30_000, 20);
    expect((await row('4'))!.reason).toMatch(/No model key has the key id 'c' \(searched the key file .*model-keys\)/);
    expect((await ask()).version).toBe('2');
    expect(await row('2')).toMatchObject({ state: 'READY' });
  });

  it('explicit mode answers a load of a tampered version with its code; the old version serves on', async () => {
    const staging = await mkdtemp(join(tmpdir(), 'maas-encrypted-staging-'));
    const root = await tempRepository();
    const keys = new ModelKeyring({ keys: { k: generateModelKey() }, environment: null });
    for (const v of [1, 2]) {
      await smallModel(WIDTH, 1, 110 + v).save(join(staging, String(v)));
      await mkdir(join(root, 'm', String(v)), { recursive: true });
    }
    await encryptModel(join(staging, '1'), join(root, 'm', '1', 'model.json.enc'), { keys, keyId: 'k' });
    // Version 2 is encrypted with another key under the same key id: the wrong key.
    const impostor = new ModelKeyring({ keys: { k: generateModelKey() }, environment: null });
    await encryptModel(join(staging, '2'), join(root, 'm', '2', 'model.json.enc'), { keys: impostor, keyId: 'k' });
    await writeFile(
      join(root, 'm', 'config.json'),
      JSON.stringify({ version_policy: { specific: { versions: [1] } } }),
    );
    const server = await startServer(root, { modelKeys: keys, modelControlMode: 'explicit', loadModels: ['m'] });
    running.push(server);
    const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
    clients.push(client);
    const ask = () =>
      client.infer({
        model: 'm',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: inputs(1, WIDTH, 1) }],
      });
    expect((await ask()).version).toBe('1');
    await writeFile(join(root, 'm', 'config.json'), JSON.stringify({ version_policy: { all: {} } }));
    const e = (await client.loadModel('m').catch((error: InferenceServerError) => error)) as InferenceServerError;
    expect(e).toBeInstanceOf(InferenceServerError);
    expect(e.status).toBe(status.FAILED_PRECONDITION);
    expect(e.code).toBe('MAAS_ERR_MODEL_DECRYPT');
    expect(e.message).toMatch(
      /version 2: The encrypted model file .* was encrypted with another key than the one key id 'k' names here/,
    );
    expect((await ask()).version).toBe('1');
  });
});
