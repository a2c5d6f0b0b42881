/**
 * A repository in an S3-compatible bucket (`--model-repository s3://bucket/prefix`), against a
 * real S3 server started on loopback (s3rver): served from a local copy, new and changed
 * versions found by ETag in poll mode and switched to with no request failing, removed models
 * unloaded, a restart served from the copy while the store is down, unsafe keys never written,
 * and every misconfiguration answered by a coded error that says what to fix.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { MaasError } from '../../src/core/errors.js';
import { packageRoot } from '../../src/core/package-root.js';
import { repositoryLocation } from '../../src/serving/repository/s3-mirror.js';
import type { RunningServer } from '../../src/serving/server.js';
import { bannerPorts, memoryLogger, smallModel, startServer, tempRepository, until } from './server-helpers.js';

const ROOT = packageRoot();
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const D = 4;
const BUCKET = 'models';
/** s3rver's one account; it checks the key id (an unknown one is refused), not the signature. */
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

let store: S3rver;
let endpoint: string;
let s3: S3Client;
const savedEnv: Record<string, string | undefined> = {};
let server: RunningServer | null = null;
let child: ChildProcess | null = null;

async function startStore(directory: string): Promise<{ store: S3rver; endpoint: string }> {
  const instance = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory });
  const { port } = await instance.run();
  return { store: instance, endpoint: `http://127.0.0.1:${port}` };
}

/** A client of an s3rver instance, its bucket made. */
async function storeClient(at: string): Promise<S3Client> {
  const client = new S3Client({
    endpoint: at,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  return client;
}

beforeAll(async () => {
  for (const [k, v] of Object.entries(CREDENTIALS)) {
    savedEnv[k] = process.env[k];
    process.env[k] = v;
  }
  ({ store, endpoint } = await startStore(await mkdtemp(join(tmpdir(), 'maas-s3rver-'))));
  s3 = await storeClient(endpoint);
}, 30_000);

afterAll(async () => {
  s3?.destroy();
  await store?.close();
  for (const [k, v] of Object.entries(savedEnv))
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
});

afterEach(async () => {
  await server?.close();
  server = null;
  child?.kill('SIGKILL');
  child = null;
});

/** Uploads a local directory's files under `prefix`. */
async function upload(dir: string, prefix: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = relative(dir, join(entry.parentPath, entry.name)).split('\\').join('/');
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}${path}`, Body: await readFile(join(dir, path)) }),
    );
  }
}

async function removePrefix(prefix: string): Promise<void> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: o.Key! }));
}

/** Saves `model` as version `version` of `name` and uploads it under `prefix`. */
async function publish(prefix: string, name: string, version: number, seed: number): Promise<Float32Array> {
  const dir = await tempRepository();
  const model = smallModel(D, 2, seed);
  await model.save(join(dir, name, String(version)));
  await upload(dir, prefix);
  return Float32Array.from(model.predict(row).values);
}

const row = Float32Array.of(0.1, -0.2, 0.3, 0.4);
const body = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, D], data: [...row] }] };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answer = Record<string, any>;
async function post(port: number, path: string, payload: unknown): Promise<{ status: number; body: Answer }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  return { status: r.status, body: (await r.json()) as Answer };
}

const closeTo = (actual: number[], expected: Float32Array) =>
  actual.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));

describe('s3:// repositories', () => {
  it('serves the bucket, switches to new and changed versions found by ETag with no request failing, and drops removed models', async () => {
    const prefix = 'poll/';
    const v1 = await publish(prefix, 'churn', 1, 1);
    const cache = await tempRepository();
    server = await startServer(`s3://${BUCKET}/${prefix}`, {
      s3Endpoint: endpoint,
      repositoryCache: cache,
      modelControlMode: 'poll',
      repositoryPollSeconds: 1,
    });
    const port = server.httpPort!;
    closeTo((await post(port, '/v2/models/churn/infer', body)).body.outputs[0].data, v1);
    expect(existsSync(join(cache, 'churn', '1', 'model.json'))).toBe(true);

    // Requests run all through the switches: none may fail.
    let failures = 0;
    let answered = 0;
    let driving = true;
    const drive = (async () => {
      while (driving) {
        const r = await post(port, '/v2/models/churn/infer', body);
        if (r.status === 200) answered++;
        else failures++;
      }
    })();
    const served = async (expected: Float32Array) => {
      const r = await post(port, '/v2/models/churn/infer', body);
      const data = r.body.outputs?.[0]?.data as number[] | undefined;
      return data !== undefined && Math.abs(data[0]! - expected[0]!) < 1e-5;
    };

    const v2 = await publish(prefix, 'churn', 2, 2);
    await until(() => served(v2), 'version 2');
    // A version's files replaced by another model's, then a config.json rewritten with as many bytes:
    // only the ETag tells the new object from the old.
    const v2b = await publish(prefix, 'churn', 2, 3);
    await until(() => served(v2b), 'version 2 changed');
    for (const size of [8, 9]) {
      await s3.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}churn/config.json`, Body: `{"max_batch_size":${size}}` }),
      );
      await until(async () => {
        const r = await fetch(`http://127.0.0.1:${port}/v2/models/churn/config`);
        return ((await r.json()) as Answer).max_batch_size === size;
      }, `max_batch_size ${size}`);
    }
    driving = false;
    await drive;
    expect(failures).toBe(0);
    expect(answered).toBeGreaterThan(0);

    await removePrefix(`${prefix}churn/`);
    await until(async () => (await post(port, '/v2/models/churn/infer', body)).status !== 200, 'the model unloaded');
    expect(existsSync(join(cache, 'churn'))).toBe(false);
  }, 90_000);

  it('restarts from the local copy while the store is down; with no copy, says the store cannot be read', async () => {
    const own = await startStore(await mkdtemp(join(tmpdir(), 'maas-s3rver-')));
    const client = await storeClient(own.endpoint);
    const dir = await tempRepository();
    const model = smallModel(D, 2, 5);
    await model.save(join(dir, 'churn', '1'));
    for (const f of await readdir(join(dir, 'churn', '1')))
      await client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: `r/churn/1/${f}`,
          Body: await readFile(join(dir, 'churn', '1', f)),
        }),
      );
    client.destroy();
    const cache = await tempRepository();
    const url = `s3://${BUCKET}/r`;
    server = await startServer(url, { s3Endpoint: own.endpoint, repositoryCache: cache });
    await server.close();
    server = null;
    await own.store.close();

    const { logger, records } = memoryLogger('warn');
    server = await startServer(url, { s3Endpoint: own.endpoint, repositoryCache: cache, logger });
    closeTo(
      (await post(server.httpPort!, '/v2/models/churn/infer', body)).body.outputs[0].data,
      Float32Array.from(model.predict(row).values),
    );
    expect(records.map((r) => r.msg)).toContain('the model store cannot be read: serving the copy from the last sync');
    await server.close();
    server = null;

    const empty = await tempRepository();
    const error = await startServer(url, { s3Endpoint: own.endpoint, repositoryCache: empty }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MaasError);
    expect((error as MaasError).code).toBe('MAAS_ERR_REPOSITORY_STORE');
    expect((error as MaasError).message).toMatch(/Could not list in s3:\/\/models\/r\//);
  }, 60_000);

  it('skips keys that are not plain paths, and writes nothing outside the copy', async () => {
    const prefix = 'keys/';
    await publish(prefix, 'churn', 1, 1);
    const unsafe = [
      `${prefix}churn/.hidden`,
      `${prefix}a/b/c/d/e.json`,
      `${prefix}churn/1/we ird.bin`,
      `${prefix}churn/-x`,
      `${prefix}churn/../../../escape.json`,
    ];
    for (const Key of unsafe) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'x' }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}churn/1`, Body: 'a file and a directory' }));
    const cache = await tempRepository();
    const { logger, records } = memoryLogger('warn');
    server = await startServer(`s3://${BUCKET}/${prefix}`, {
      s3Endpoint: endpoint,
      repositoryCache: join(cache, 'copy'),
      logger,
    });
    expect((await post(server.httpPort!, '/v2/models/churn/infer', body)).status).toBe(200);
    const skipped = records.filter((r) => r.msg === 'model store object skipped').map((r) => r.key);
    // Every unsafe key the store holds as written is skipped (a store may normalise "..": then
    // it names another plain key, which must still land inside the copy).
    const stored = new Set(
      ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? []).map((o) => o.Key),
    );
    expect(skipped).toEqual(expect.arrayContaining([...unsafe.filter((k) => stored.has(k)), `${prefix}churn/1`]));
    expect(unsafe.filter((k) => stored.has(k)).length).toBeGreaterThanOrEqual(4);
    const written = (await readdir(cache, { recursive: true })).sort();
    expect(written.filter((p) => !p.startsWith('copy'))).toEqual([]);
    expect(existsSync(join(cache, 'copy', 'churn', '.hidden'))).toBe(false);
    expect(existsSync(join(cache, 'copy', 'a'))).toBe(false);
    // The ".." key, read from the copy's churn directory, would name the cache's parent.
    expect(existsSync(join(cache, '..', 'escape.json'))).toBe(false);
  }, 60_000);

  it('keeps its copy to itself: a directory of other files or a copy in use is refused, nothing else deleted', async () => {
    const prefix = 'own/';
    await publish(prefix, 'churn', 1, 1);
    const url = `s3://${BUCKET}/${prefix}`;
    const crowded = await tempRepository();
    await writeFile(join(crowded, 'notes.txt'), 'mine');
    const refused = await startServer(url, { s3Endpoint: endpoint, repositoryCache: crowded }).catch(
      (e: unknown) => e as MaasError,
    );
    expect((refused as MaasError).code).toBe('MAAS_ERR_REPOSITORY_URL');
    expect((refused as MaasError).message).toMatch(/holds other files/);
    expect(readFileSync(join(crowded, 'notes.txt'), 'utf8')).toBe('mine');

    const cache = await tempRepository();
    server = await startServer(url, { s3Endpoint: endpoint, repositoryCache: cache });
    // Another server process on the same copy is refused while this one holds it.
    child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        CLI,
        'serve',
        '--model-repository',
        url,
        '--repository-cache',
        cache,
        '--s3-endpoint',
        endpoint,
      ],
      { env: { ...process.env, ...CREDENTIALS }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exit = await bannerPorts(child).then(
      () => 'served',
      (e: Error) => e.message,
    );
    expect(exit).toMatch(/in use by process \d+: give each server its own --repository-cache/);
    // Another URL on the same copy is refused too.
    await server.close();
    server = null;
    const other = await startServer(`s3://${BUCKET}/poll/`, { s3Endpoint: endpoint, repositoryCache: cache }).catch(
      (e: unknown) => e as MaasError,
    );
    expect((other as MaasError).message).toMatch(/holds a copy of s3:\/\/models\/own\//);
  }, 60_000);

  it('in explicit mode a load syncs first, and loads the copy while the store is down', async () => {
    const own = await startStore(await mkdtemp(join(tmpdir(), 'maas-s3rver-')));
    const client = await storeClient(own.endpoint);
    const put = async (name: string, version: number, seed: number) => {
      const dir = await tempRepository();
      const model = smallModel(D, 2, seed);
      await model.save(join(dir, String(version)));
      for (const f of await readdir(join(dir, String(version))))
        await client.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: `e/${name}/${version}/${f}`,
            Body: await readFile(join(dir, String(version), f)),
          }),
        );
      return Float32Array.from(model.predict(row).values);
    };
    await put('churn', 1, 1);
    const options = {
      s3Endpoint: own.endpoint,
      repositoryCache: await tempRepository(),
      modelControlMode: 'explicit' as const,
      loadModels: ['churn'],
    };
    server = await startServer(`s3://${BUCKET}/e`, options);
    const port = server.httpPort!;
    const v2 = await put('churn', 2, 2);
    const loaded = await fetch(`http://127.0.0.1:${port}/v2/repository/models/churn/load`, { method: 'POST' });
    expect(loaded.status).toBe(200);
    closeTo((await post(port, '/v2/models/churn/infer', body)).body.outputs[0].data, v2);
    client.destroy();
    await own.store.close();
    const reloaded = await fetch(`http://127.0.0.1:${port}/v2/repository/models/churn/load`, { method: 'POST' });
    expect(reloaded.status).toBe(200);
    closeTo((await post(port, '/v2/models/churn/infer', body)).body.outputs[0].data, v2);
  }, 60_000);

  it('refuses updates of a mirrored model: new versions are published to the store', async () => {
    const prefix = 'updates/';
    await publish(prefix, 'churn', 1, 1);
    server = await startServer(`s3://${BUCKET}/${prefix}`, {
      s3Endpoint: endpoint,
      repositoryCache: await tempRepository(),
    });
    const r = await post(server.httpPort!, '/v2/models/churn/update', {
      batches: [{ x: [[1, 2, 3, 4]], y: [[1, 0]] }],
    });
    expect(r.body.error).toMatch(/served from a copy of s3:\/\/models\/updates\/: publish new versions to the store/);
  }, 60_000);

  it('answers a wrong key id, a missing bucket and other schemes with coded errors that say what to fix', async () => {
    const cache = await tempRepository();
    const started = (url: string, env: Record<string, string> = {}) => {
      const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
      Object.assign(process.env, env);
      return startServer(url, { s3Endpoint: endpoint, repositoryCache: cache })
        .catch((e: unknown) => e as MaasError)
        .finally(() => Object.assign(process.env, saved));
    };
    const denied = (await started(`s3://${BUCKET}/poll`, { AWS_ACCESS_KEY_ID: 'NOBODY' })) as MaasError;
    expect(denied.code).toBe('MAAS_ERR_REPOSITORY_STORE');
    expect(denied.message).toMatch(/access denied/);
    const missing = (await started('s3://no-such-bucket/x')) as MaasError;
    expect(missing.message).toMatch(/the bucket no-such-bucket does not exist/);
    for (const url of ['gs://bucket/models', 'https://example.com/models', 'azure://c/m']) {
      const refused = (await started(url)) as MaasError;
      expect(refused.code, url).toBe('MAAS_ERR_REPOSITORY_URL');
    }
    expect(((await started('gs://bucket/models')) as MaasError).message).toMatch(/storage\.googleapis\.com/);
    expect(() => repositoryLocation('s3://Bad_Bucket/x')).toThrow(/Expected an S3 bucket name/);
    expect(() => repositoryLocation('s3://bucket/../x')).toThrow(/plain names/);
    expect(repositoryLocation('s3://bucket')).toMatchObject({ bucket: 'bucket', prefix: '' });
    expect(repositoryLocation('s3://bucket//a/b/')).toMatchObject({ prefix: 'a/b/', url: 's3://bucket/a/b/' });
    expect(repositoryLocation('/srv/models')).toBeNull();
  }, 60_000);

  it('the plain Deployment’s args (deploy/kubernetes) serve a bucket, the endpoint and keys from the environment', async () => {
    await upload(join(ROOT, 'models'), 'repository/');
    const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'kubernetes', 'maas.yaml'), 'utf8'));
    const deployment = docs.map((d) => d.toJS() as Answer).find((m) => m.kind === 'Deployment')!;
    const container = deployment.spec.template.spec.containers[0];
    const scratch = await tempRepository();
    const local: Record<string, string> = {
      '--host=0.0.0.0': '--host=127.0.0.1',
      '--repository-cache=/var/cache/maas/repository': `--repository-cache=${join(scratch, 'repository')}`,
      '--workers=2': '--workers=1',
    };
    const args = (container.args as string[]).slice(1).map((a) => local[a] ?? a);
    expect(args).toContain(`--model-repository=s3://${BUCKET}/repository`);
    expect(args.filter((a) => a.includes('0.0.0.0') || a.includes('/var/'))).toEqual([]);
    child = spawn(
      process.execPath,
      ['--import', 'tsx', CLI, 'serve', ...args, '--http-port=0', '--grpc-port=0', '--metrics-port=0'],
      {
        env: {
          ...process.env,
          ...CREDENTIALS,
          AWS_ENDPOINT_URL_S3: endpoint,
          MAAS_PACKED_CACHE: join(scratch, 'packed'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const port = (await bannerPorts(child)).http;
    const sample = JSON.parse(readFileSync(join(ROOT, 'models', 'classic', 'sample-request.json'), 'utf8'));
    const answer = await post(port, '/v2/models/classic/infer', sample);
    expect(answer.status).toBe(200);
    expect(answer.body.outputs[0].shape).toEqual([2, 1]);
    expect(existsSync(join(scratch, 'repository', 'classic_int8', '1'))).toBe(true);
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
  }, 60_000);
});
