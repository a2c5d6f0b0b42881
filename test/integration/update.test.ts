/**
 * The update extension through both real clients: rows streamed in, a candidate trained in the
 * pool, judged against the serving version and promoted (or kept); the refusals (busy, bad rows,
 * bad parameters, versions it cannot update); and cancellation, which leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GrpcInferenceClient, HttpInferenceClient } from '../../src/client/index.js';
import type { UpdateProgress, UpdateRowsBatch } from '../../src/client/types.js';
import { Random, quantize } from '../../src/index.js';
import { publishVersion } from '../../src/lifecycle/publish.js';
import type { RunningServer } from '../../src/serving/server.js';
import * as grpcJs from '@grpc/grpc-js';
import { pino } from 'pino';
import { updateService } from '../../src/protocol/grpc.js';
import { serveUpdateStream } from '../../src/serving/grpc/update.js';
import { rng } from '../helpers.js';
import { addVersion, smallModel, startServer, tempRepository, refusal } from './server-helpers.js';

const D = 6;

/** Rows of a task the seeded small model cannot do untrained: is x0 + x1 above 0? */
function task(rows: number, random: Random): { x: Float32Array; y: Float32Array } {
  const x = Float32Array.from({ length: rows * D }, () => random.uniform(-1, 1));
  const y = Float32Array.from({ length: rows }, (_, r) => (x[r * D]! + x[r * D + 1]! > 0 ? 1 : 0));
  return { x, y };
}

/** A repository with model 'm' version 1 (compiled, untrained) and the given config. */
async function repository(config: object = {}): Promise<string> {
  const root = await tempRepository();
  const model = smallModel(D, 1, 5);
  model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
  await addVersion(root, 'm', 1, model, { max_batch_size: 64, ...config });
  return root;
}

/** The model directory's entries other than config.json: versions, and anything left behind. */
async function leftovers(root: string): Promise<string[]> {
  return (await readdir(join(root, 'm'))).filter((f) => f !== 'config.json').sort();
}

describe('update extension', () => {
  const random = rng(41);
  const train = task(2000, random);
  const holdout = task(400, random);
  const batches = (): UpdateRowsBatch[] => [
    { x: train.x.subarray(0, 1000 * D), y: train.y.subarray(0, 1000) },
    { x: train.x.subarray(1000 * D), y: train.y.subarray(1000) },
    { set: 'holdout', x: holdout.x, y: holdout.y },
  ];
  // Each test has a repository and a server of its own: none depends on what another did.
  let root: string;
  let server: RunningServer;
  let http: HttpInferenceClient;
  let grpc: GrpcInferenceClient;
  const start = async (config: object = { parameters: { update_metric: { string_value: 'accuracy' } } }) => {
    root = await repository(config);
    server = await startServer(root);
    http = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
    grpc = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  };
  beforeEach(() => start());
  const afterEachServer = async () => {
    grpc.close();
    await server.close();
  };
  afterEach(() => afterEachServer());

  it('REST: trains, reports each epoch, promotes version 2 with its record, and serves it', async () => {
    const events: UpdateProgress[] = [];
    const outcome = await http.update({
      model: 'm',
      parameters: { epochs: 8, batch_size: 32, seed: 3, learning_rate: 0.01 },
      batches: batches(),
      onProgress: (e) => events.push(e),
    });
    expect(events[0]).toMatchObject({ event: 'training', baseVersion: '1', rows: 2000, holdoutRows: 400, epochs: 8 });
    expect(events.filter((e) => e.event === 'epoch').map((e) => (e.event === 'epoch' ? e.epoch : 0))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    expect(outcome).toMatchObject({ promoted: true, version: '2', serving: true, metric: 'accuracy', rows: 2000 });
    expect(outcome.candidate.accuracy!).toBeGreaterThan(outcome.servingMetrics.accuracy!);
    expect(outcome.improvement).toBeCloseTo(outcome.candidate.accuracy! - outcome.servingMetrics.accuracy!, 6);
    // The record beside the model: where it came from, on what data, with what scores.
    const record = JSON.parse(await readFile(join(root, 'm', '2', 'version.json'), 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const digest = createHash('sha256');
    for (const part of [
      train.x.subarray(0, 1000 * D),
      train.y.subarray(0, 1000),
      train.x.subarray(1000 * D),
      train.y.subarray(1000),
    ])
      digest.update(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    expect(record).toMatchObject({ source: 'update', parent: 1, dataSha256: digest.digest('hex') });
    expect(record.metrics.accuracy).toBeCloseTo(outcome.candidate.accuracy!, 6);
    expect(record.details.training).toMatchObject({
      epochs: 8,
      batchSize: 32,
      seed: 3,
      learningRate: 0.01,
      loss: 'binaryCrossentropy',
    });
    // Unversioned requests reach the new version now.
    const answer = await http.infer({
      model: 'm',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, D], data: holdout.x.subarray(0, D) }],
    });
    expect(answer.version).toBe('2');
    expect(await leftovers(root)).toEqual(['1', '2']);
  }, 60_000);

  it('gRPC: fine-tunes the serving version and keeps it when the candidate is not better by the margin', async () => {
    // No candidate gains 0.9 accuracy on an untrained model's ~0.5.
    await afterEachServer();
    await start({
      parameters: { update_metric: { string_value: 'accuracy' }, update_margin: { string_value: '0.9' } },
    });
    const outcome = await grpc.update({ model: 'm', parameters: { epochs: 4, seed: 1 }, batches: batches() });
    expect(outcome).toMatchObject({ promoted: false, serving: false, baseVersion: '1', metric: 'accuracy' });
    expect(outcome.version).toBeUndefined();
    expect(outcome.reason).toMatch(/not above the margin 0.9/);
    expect(await leftovers(root)).toEqual(['1']);
  }, 60_000);

  it('gRPC: trains from scratch with a given architecture, NDJSON over REST too', async () => {
    const progress: UpdateProgress[] = [];
    const outcome = await grpc.update({
      model: 'm',
      version: '1',
      parameters: {
        epochs: 6,
        seed: 9,
        architecture: { layers: [{ units: 24, activation: 'tanh' }], learningRate: 0.01 },
      },
      batches: batches(),
      onProgress: (e) => progress.push(e),
    });
    expect(progress.filter((e) => e.event === 'epoch')).toHaveLength(6);
    expect(outcome.baseVersion).toBe('1');
    if (outcome.promoted) {
      const saved = JSON.parse(await readFile(join(root, 'm', outcome.version!, 'model.json'), 'utf8')) as {
        modelTopology: { config: { layers: { config: { units: number; activation: string } }[] } };
      };
      expect(saved.modelTopology.config.layers[0]!.config).toMatchObject({ units: 24, activation: 'tanh' });
    }
    const json = await http.update({
      model: 'm',
      format: 'json',
      parameters: { epochs: 1, learning_rate: 1e-7 },
      batches: batches(),
    });
    expect(json.rows).toBe(2000);
    expect(json.holdoutRows).toBe(400);
  }, 60_000);

  it('refuses bad rows and parameters with coded errors, before any training, and stays up', async () => {
    const cases: [() => Promise<unknown>, string][] = [
      [() => http.update({ model: 'm', batches: [{ x: [[1, 2, 3]], y: [[1]] }] }), 'MAAS_ERR_UPDATE_DATA'],
      [
        () => http.update({ model: 'm', batches: [{ x: [[1, 2, 3, 4, 5, NaN]], y: [[1]] }], format: 'json' }),
        'MAAS_ERR_UPDATE_DATA',
      ],
      [
        () => http.update({ model: 'm', batches: [{ x: train.x.subarray(0, 10 * D), y: train.y.subarray(0, 10) }] }),
        'MAAS_ERR_UPDATE_DATA',
      ],
      [() => http.update({ model: 'm', parameters: { epoch: 3 }, batches: batches() }), 'MAAS_ERR_UPDATE_PARAMETER'],
      [
        () => grpc.update({ model: 'm', parameters: { learning_rate: -1 }, batches: batches() }),
        'MAAS_ERR_UPDATE_PARAMETER',
      ],
      [
        () => grpc.update({ model: 'm', batches: [{ x: [[1, 2, 3, 4, 5, 6]], y: [[1, 2, 3]] }] }),
        'MAAS_ERR_UPDATE_DATA',
      ],
      [() => grpc.update({ model: 'nope', batches: batches() }), 'MAAS_ERR_MODEL_UNKNOWN'],
      [() => http.update({ model: 'm', version: '7', batches: batches() }), 'MAAS_ERR_MODEL_UNKNOWN'],
    ];
    for (const [work, code] of cases) expect((await refusal(work())).code).toBe(code);
    // A raw body of the wrong type, and a frame that lies about its length.
    const base = `http://127.0.0.1:${server.httpPort}/v2/models/m/update`;
    const text = await fetch(base, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(400);
    const frame = Buffer.alloc(8);
    frame.writeUInt32LE(0xffffff, 0);
    const lying = await fetch(base, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: frame,
    });
    expect(lying.status).toBe(400);
    expect(await leftovers(root)).not.toContain('.update.lock');
    expect(await http.serverLive()).toBe(true);
  }, 60_000);

  it('refuses a second update of the same model while one runs, then takes the next', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    async function* slowBatches(): AsyncGenerator<UpdateRowsBatch> {
      yield batches()[0]!;
      await held;
      yield batches()[2]!;
    }
    const first = http.update({ model: 'm', parameters: { epochs: 1 }, batches: slowBatches() });
    // The first holds the lock once its first frame is read.
    const deadline = Date.now() + 10_000;
    while (!(await leftovers(root)).includes('.update.lock') && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const busyRest = await refusal(http.update({ model: 'm', batches: batches() }));
    expect([busyRest.status, busyRest.code]).toEqual([409, 'MAAS_ERR_UPDATE_BUSY']);
    const busyGrpc = await refusal(grpc.update({ model: 'm', batches: batches() }));
    expect([busyGrpc.status, busyGrpc.code]).toEqual([9, 'MAAS_ERR_UPDATE_BUSY']); // FAILED_PRECONDITION
    release();
    await first;
    await expect(
      grpc.update({ model: 'm', parameters: { epochs: 1, learning_rate: 1e-7 }, batches: batches() }),
    ).resolves.toMatchObject({
      rows: 2000,
    });
  }, 60_000);

  for (const transport of ['gRPC', 'REST'] as const)
    it(`${transport}: an update cancelled midway leaves nothing behind`, async () => {
      const before = await leftovers(root);
      const controller = new AbortController();
      const client = transport === 'gRPC' ? grpc : http;
      const work = client.update({
        model: 'm',
        // Enough epochs that the cancel lands while it trains.
        parameters: { epochs: 10_000, learning_rate: 0.05 },
        batches: batches(),
        signal: controller.signal,
        onProgress: (e) => e.event === 'epoch' && e.epoch === 2 && controller.abort(),
      });
      await expect(work).rejects.toThrow();
      // The update thread ends and the staged files go (asynchronously on the server's side).
      const deadline = Date.now() + 10_000;
      while (JSON.stringify(await leftovers(root)) !== JSON.stringify(before) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await leftovers(root)).toEqual(before);
      // The lock is free: the next update runs.
      await expect(
        http.update({ model: 'm', parameters: { epochs: 1, learning_rate: 1e-7 }, batches: batches() }),
      ).resolves.toMatchObject({
        rows: 2000,
      });
    }, 60_000);
});

describe('update extension: configured held-out rows and versions it cannot update', () => {
  it('judges by the config’s update_holdout file when the update sends no held-out rows', async () => {
    const random = rng(43);
    const root = await repository({
      parameters: { update_holdout: { string_value: 'holdout.json' }, update_margin: { string_value: '0.001' } },
    });
    const held = task(300, random);
    await writeFile(
      join(root, 'm', 'holdout.json'),
      JSON.stringify({
        x: Array.from({ length: 300 }, (_, r) => Array.from(held.x.subarray(r * D, (r + 1) * D))),
        y: Array.from(held.y),
      }),
    );
    const server = await startServer(root);
    try {
      const http = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
      const rows = task(1500, random);
      const outcome = await http.update({
        model: 'm',
        parameters: { epochs: 6, learning_rate: 0.01 },
        batches: [rows],
      });
      expect(outcome).toMatchObject({ promoted: true, version: '2', serving: true, holdoutRows: 300, metric: 'loss' });
      expect(outcome.improvement).toBeGreaterThan(0.001);
      // The configured rows judge: a client's own held-out rows are refused.
      const own = await refusal(http.update({ model: 'm', batches: [rows, { set: 'holdout', ...rows }] }));
      expect([own.code, own.message]).toEqual(['MAAS_ERR_UPDATE_DATA', expect.stringMatching(/update_holdout/)]);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('refuses an int8 version', async () => {
    const root = await repository();
    const model = smallModel(D, 1, 5);
    const random = new Random(1);
    const calibrationData = Float32Array.from({ length: 64 * D }, () => random.uniform(-1, 1));
    await quantize(model, { calibrationData }).save(join(root, 'm', '2'));
    const server = await startServer(root);
    try {
      const http = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
      const error = await refusal(http.update({ model: 'm', batches: [task(10, random)] }));
      expect(error.code).toBe('MAAS_ERR_UPDATE_REFUSED');
      expect(error.message).toMatch(/int8/);
    } finally {
      await server.close();
    }
  }, 60_000);
});

describe('update extension: a stalled stream', () => {
  it('ends a gRPC update stream that sends nothing while its rows are due, and frees the model', async () => {
    const root = await repository();
    const running = await startServer(root);
    // The same handler on a server of its own, with a short idle limit.
    const server = new grpcJs.Server();
    server.addService(updateService().service, {
      Update: (call: Parameters<typeof serveUpdateStream>[0]) =>
        serveUpdateStream(call, running.dataplane, pino({ level: 'silent' }), 300),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpcJs.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const Service = updateService();
    const stub = new Service(`127.0.0.1:${port}`, grpcJs.credentials.createInsecure()) as unknown as {
      Update: () => grpcJs.ClientDuplexStream<object, object>;
      close(): void;
    };
    try {
      const call = stub.Update();
      const ended = new Promise<grpcJs.ServiceError>((resolve) => call.on('error', resolve));
      call.on('data', () => {});
      const x = new Float32Array(D);
      call.write({ model_name: 'm', batch: { x: Buffer.from(x.buffer), y: Buffer.from(new Float32Array(1).buffer) } });
      const error = await ended;
      expect(error.code).toBe(grpcJs.status.INVALID_ARGUMENT);
      expect(error.metadata.get('maas-error-code')).toEqual(['MAAS_ERR_UPDATE_DATA']);
      expect(error.details).toMatch(/No update message for 0.3 s/);
      expect(await leftovers(root)).toEqual(['1']); // no lock left behind
      const http = new HttpInferenceClient(`http://127.0.0.1:${running.httpPort}`);
      const rows = task(100, new Random(3));
      await expect(
        http.update({ model: 'm', parameters: { epochs: 1 }, batches: [rows, { set: 'holdout', ...rows }] }),
      ).resolves.toMatchObject({ rows: 100 });
    } finally {
      stub.close();
      server.forceShutdown();
      await running.close();
    }
  }, 60_000);
});

describe('update extension: which version, and who holds the lock', () => {
  it('starts only from the serving version', async () => {
    const root = await repository({ version_policy: { all: {} } });
    const model = smallModel(D, 1, 6);
    model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    await addVersion(root, 'm', 2, model);
    const running = await startServer(root);
    try {
      const http = new HttpInferenceClient(`http://127.0.0.1:${running.httpPort}`);
      const rows = task(50, new Random(4));
      const refused = await refusal(http.update({ model: 'm', version: '1', batches: [rows] }));
      expect([refused.code, refused.message]).toEqual([
        'MAAS_ERR_UPDATE_REFUSED',
        expect.stringMatching(/not the one unversioned requests reach \(2\)/),
      ]);
      const outcome = await http.update({
        model: 'm',
        parameters: { epochs: 1 },
        batches: [rows, { set: 'holdout', ...rows }],
      });
      expect(outcome.baseVersion).toBe('2');
    } finally {
      await running.close();
    }
  }, 60_000);

  it('does not promote a candidate whose base stopped serving while it trained', async () => {
    const root = await repository();
    const running = await startServer(root, { modelControlMode: 'poll', repositoryPollSeconds: 0.2 });
    try {
      const http = new HttpInferenceClient(`http://127.0.0.1:${running.httpPort}`);
      const rows = task(2000, new Random(6));
      const next = smallModel(D, 1, 9);
      next.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
      let published: Promise<number> | null = null;
      const outcome = await http.update({
        model: 'm',
        // Long enough that version 2 is published and loaded while it trains.
        parameters: { epochs: 3000, learning_rate: 0.01 },
        batches: [rows, { set: 'holdout', ...rows }],
        onProgress: (e) => {
          if (e.event === 'epoch' && e.epoch === 1) published = publishVersion(root, 'm', next, { source: 'test' });
        },
      });
      expect(published).not.toBeNull();
      expect(await published!).toBe(2);
      expect(outcome).toMatchObject({ promoted: false, serving: false, baseVersion: '1' });
      expect(outcome.reason).toMatch(/serving version changed from 1 to 2 while it trained/);
      expect(await leftovers(root)).toEqual(['1', '2']);
    } finally {
      await running.close();
    }
  }, 120_000);

  it('takes over a lock whose process is gone, and refuses one held elsewhere or unreadable', async () => {
    const root = await repository();
    const running = await startServer(root);
    try {
      const http = new HttpInferenceClient(`http://127.0.0.1:${running.httpPort}`);
      const rows = task(50, new Random(5));
      const update = () =>
        http.update({ model: 'm', parameters: { epochs: 1 }, batches: [rows, { set: 'holdout', ...rows }] });
      const lock = join(root, 'm', '.update.lock');
      // A process that has exited: its pid is free.
      const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
      await writeFile(lock, JSON.stringify({ host: hostname(), pid: Number(gone), token: 'old' }));
      await expect(update()).resolves.toMatchObject({ rows: 50 });
      expect(await leftovers(root)).not.toContain('.update.lock');
      for (const held of [JSON.stringify({ host: 'another-host', pid: 1, token: 't' }), 'not a lock']) {
        await writeFile(lock, held);
        const busy = await refusal(update());
        expect([busy.status, busy.code]).toEqual([409, 'MAAS_ERR_UPDATE_BUSY']);
        expect(await readFile(lock, 'utf8')).toBe(held); // left as it was
      }
    } finally {
      await running.close();
    }
  }, 60_000);
});
