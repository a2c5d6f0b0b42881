/**
 * The model repository through the real server: explicit load/unload, hot reload under load
 * with zero failed requests, unload with requests in flight, a corrupt version refused while the
 * old one keeps serving, poll mode, version policies, config overrides, and /metrics.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { GrpcInferenceClient, InferenceServerError } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository, until } from './server-helpers.js';

const WIDTH = 8;
const opened: { server: RunningServer; client: GrpcInferenceClient }[] = [];

async function open(root: string, options: Parameters<typeof startServer>[1] = {}) {
  const server = await startServer(root, options);
  const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  opened.push({ server, client });
  return { server, client };
}

afterEach(async () => {
  for (const { server, client } of opened.splice(0)) {
    client.close();
    await server.close();
  }
});

const x1 = inputs(1, WIDTH, 77);
const ask = (client: GrpcInferenceClient, version?: string) =>
  client.infer({ model: 'm', version, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x1 }] });

describe('explicit model control', () => {
  it('loads on request, hot-swaps a new version under load with zero failed requests, then unloads', async () => {
    const root = await tempRepository();
    const v1 = smallModel(WIDTH, 1, 1);
    const v2 = smallModel(WIDTH, 1, 2);
    // In the pool, so that requests are still queued or running when the unload below comes.
    const pooled = { max_batch_size: 8, dynamic_batching: {}, parameters: { placement: { string_value: 'pool' } } };
    await addVersion(root, 'm', 1, v1, pooled);
    const { server, client } = await open(root, { modelControlMode: 'explicit' });
    expect(await client.repositoryIndex()).toEqual([{ name: 'm', version: '', state: '', reason: '' }]);
    expect((await ask(client).catch((e: InferenceServerError) => e)) as InferenceServerError).toMatchObject({
      status: status.INVALID_ARGUMENT,
    });
    await client.loadModel('m');
    expect((await ask(client)).version).toBe('1');

    // Eight clients in a closed loop while version 2 appears and is loaded.
    let stop = false;
    const seen = new Map<string, number>();
    const failures: unknown[] = [];
    const want = { '1': v1.predict(x1.slice()).values[0]!, '2': v2.predict(x1.slice()).values[0]! };
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const r = await ask(client);
          seen.set(r.version, (seen.get(r.version) ?? 0) + 1);
          expect(Math.abs((r.outputs[0]!.data as Float32Array)[0]! - want[r.version as '1' | '2'])).toBeLessThanOrEqual(
            1e-6,
          );
        } catch (error) {
          failures.push(error);
        }
      }
    });
    await until(async () => (seen.get('1') ?? 0) > 20, 'version 1 traffic', 20_000, 2);
    await addVersion(root, 'm', 2, v2);
    await client.loadModel('m');
    await until(async () => (seen.get('2') ?? 0) > 20, 'version 2 traffic', 20_000, 2);
    stop = true;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(seen.get('1')).toBeGreaterThan(0);
    expect(await client.repositoryIndex()).toEqual([{ name: 'm', version: '2', state: 'READY', reason: '' }]);
    expect((await ask(client, '1').catch((e: InferenceServerError) => e)) as InferenceServerError).toMatchObject({
      status: status.INVALID_ARGUMENT,
    });

    // Unload with requests in flight: each one answers (or is refused as unavailable), nothing hangs.
    const inFlight = Array.from({ length: 300 }, () =>
      ask(client).then(
        () => 'ok',
        (e: InferenceServerError) => e.status,
      ),
    );
    const held = () => server.dataplane.repository.servedVersions('m')[0]?.batcher.pending ?? 0;
    await until(async () => held() > 0, 'requests held by the server', 20_000, 2); // unload while some are queued or running
    await client.unloadModel('m');
    const outcomes = await Promise.all(inFlight);
    expect(outcomes.filter((o) => o !== 'ok' && o !== status.UNAVAILABLE)).toEqual([]);
    expect(outcomes).toContain('ok');
    expect(await client.modelReady('m').catch((e: InferenceServerError) => e.status)).toBe(false);
    expect(await client.repositoryIndex()).toEqual([
      { name: 'm', version: '', state: 'UNAVAILABLE', reason: 'unloaded' },
    ]);
    const refused = (await ask(client).catch((e: InferenceServerError) => e)) as InferenceServerError;
    expect(refused.status).toBe(status.UNAVAILABLE);
    expect(refused.message).toMatch(/'m' has no ready version: unloaded/);
    expect(server.dataplane.live()).toBe(true);
  });

  it('refuses a corrupt version and keeps serving the old one, reporting why', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 1, 3));
    const { client } = await open(root, { modelControlMode: 'explicit', loadModels: ['m'] });
    expect((await ask(client)).version).toBe('1');
    await addVersion(root, 'm', 2, smallModel(WIDTH, 1, 4));
    const weights = (await readdir(join(root, 'm', '2'))).find((f) => f.endsWith('.bin'))!;
    await truncate(join(root, 'm', '2', weights), 100);
    const e = (await client.loadModel('m').catch((error: InferenceServerError) => error)) as InferenceServerError;
    expect(e).toBeInstanceOf(InferenceServerError);
    expect(e.message).toMatch(/failed to load 'm': version 2: /);
    expect((await ask(client)).version).toBe('1');
    const index = await client.repositoryIndex();
    expect(index[0]).toEqual({ name: 'm', version: '1', state: 'READY', reason: '' });
    expect(index[1]).toMatchObject({ name: 'm', version: '2', state: 'UNAVAILABLE' });
    expect(index[1]!.reason).toMatch(/weights|shorter|checksum|sha/i);
    expect(await client.modelReady('m', '2')).toBe(false);
    // Fixed on disk: the next load serves version 2 and retires version 1.
    await rm(join(root, 'm', '2'), { recursive: true });
    await addVersion(root, 'm', 2, smallModel(WIDTH, 1, 4));
    await client.loadModel('m');
    expect((await ask(client)).version).toBe('2');
  });

  it('refuses to load an unknown name without creating an index entry or losing readiness', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 1, 3));
    const { client } = await open(root, { modelControlMode: 'explicit', loadModels: ['m'] });
    for (const name of ['nope', 'nope2', 'm.old']) {
      const e = (await client.loadModel(name).catch((error: InferenceServerError) => error)) as InferenceServerError;
      expect(e).toBeInstanceOf(InferenceServerError);
      expect(e.message).toBe(`Request for unknown model: '${name}' is not found`);
    }
    expect((await client.repositoryIndex()).map((r) => r.name)).toEqual(['m']);
    expect(await client.serverReady()).toBe(true);
  });

  it('refuses to load a model directory that is a symbolic link', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 1, 3));
    await symlink(join(root, 'm'), join(root, 'alias'), 'dir');
    const { client } = await open(root, { modelControlMode: 'explicit', loadModels: ['m'] });
    const e = (await client.loadModel('alias').catch((error: InferenceServerError) => error)) as InferenceServerError;
    expect(e).toBeInstanceOf(InferenceServerError);
    expect(e.message).toMatch(/Expected the model directory 'alias' to be a directory, not a symbolic link/);
    expect((await ask(client)).version).toBe('1');
  });

  it('applies a config override from the load request, and refuses a bad one', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 1, 5));
    const { client } = await open(root, { modelControlMode: 'explicit', loadModels: ['*'] });
    await client.loadModel('m', {
      config: { max_batch_size: 4, dynamic_batching: { preferred_batch_size: [4], max_queue_delay_microseconds: 100 } },
    });
    expect(await client.modelConfig('m')).toMatchObject({
      max_batch_size: 4,
      dynamic_batching: { preferred_batch_size: [4] },
    });
    const e = (await client
      .loadModel('m', { config: { max_batch_size: 4, input: [{ name: 'input', dims: [9] }] } })
      .catch((error: InferenceServerError) => error)) as InferenceServerError;
    expect(e.message).toMatch(/Expected \[8\] \(the model's input width\) for input\[0\]\.dims/);
    // Integers that size allocations or timers are bounded: refused at once, nothing allocated.
    const huge: [object, RegExp][] = [
      [
        { dynamic_batching: { priority_levels: 1e8 } },
        /an integer in \[0, 256\] for dynamic_batching\.priority_levels/,
      ],
      [{ max_batch_size: 2 ** 40 }, /an integer in \[0, 65536\] for max_batch_size/],
      [
        { dynamic_batching: { preferred_batch_size: Array.from({ length: 100 }, () => 1) } },
        /at most 64 sizes for dynamic_batching\.preferred_batch_size/,
      ],
      [
        { dynamic_batching: { default_queue_policy: { max_queue_size: '99999999999' } } },
        /an integer in \[0, 1000000\] for dynamic_batching\.default_queue_policy\.max_queue_size/,
      ],
    ];
    for (const [config, message] of huge) {
      const refused = (await client
        .loadModel('m', { config })
        .catch((error: InferenceServerError) => error)) as InferenceServerError;
      expect(refused).toBeInstanceOf(InferenceServerError);
      expect(refused.message).toMatch(message);
    }
    expect((await ask(client)).version).toBe('1'); // still serving
  });
});

describe('poll mode, policies and config errors', () => {
  it('picks up a new version and a removed model on its own', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 1, 6));
    await addVersion(root, 'other', 1, smallModel(WIDTH, 1, 7));
    const { client } = await open(root, { modelControlMode: 'poll', repositoryPollSeconds: 0.2 });
    expect((await ask(client)).version).toBe('1');
    await addVersion(root, 'm', 2, smallModel(WIDTH, 1, 8));
    await until(async () => (await ask(client)).version === '2', 'version 2 to load', 20_000, 2);
    await rm(join(root, 'other'), { recursive: true });
    await until(async () => !(await client.modelReady('other').catch(() => false)), 'other to unload', 20_000, 2);
  });

  it('serves every version under {all}, and only the listed ones under {specific}', async () => {
    const root = await tempRepository();
    for (const v of [1, 2, 3]) await addVersion(root, 'm', v, smallModel(WIDTH, 1, 10 + v));
    await writeFile(join(root, 'm', 'config.json'), JSON.stringify({ version_policy: { all: {} } }));
    await addVersion(root, 's', 1, smallModel(WIDTH, 1, 20));
    await addVersion(root, 's', 2, smallModel(WIDTH, 1, 21));
    await writeFile(
      join(root, 's', 'config.json'),
      JSON.stringify({ version_policy: { specific: { versions: [1] } } }),
    );
    const { client } = await open(root);
    expect((await client.modelMetadata('m')).versions).toEqual(['1', '2', '3']);
    for (const v of ['1', '2', '3']) expect((await ask(client, v)).version).toBe(v);
    expect((await ask(client)).version).toBe('3');
    expect((await client.modelMetadata('s')).versions).toEqual(['1']);
  });

  it('confines loading to the repository: no path in default_model_filename, no linked or special files', async () => {
    const root = await tempRepository();
    await addVersion(root, 'good', 1, smallModel(WIDTH, 1, 30));
    // a config that names a file outside the version directory
    await addVersion(root, 'escape', 1, smallModel(WIDTH, 1, 31), {
      default_model_filename: '../../good/1/model.json',
    });
    // a version directory that is a link to another model's
    await mkdir(join(root, 'linked'));
    await symlink(join(root, 'good', '1'), join(root, 'linked', '1'), 'dir');
    // a FIFO where model.json belongs: refused at once, not waited on
    await mkdir(join(root, 'fifo', '1'), { recursive: true });
    execFileSync('mkfifo', [join(root, 'fifo', '1', 'model.json')]);
    const { client } = await open(root);
    expect(await client.modelReady('good')).toBe(true);
    const reasons = Object.fromEntries((await client.repositoryIndex()).map((r) => [r.name, r.reason ?? '']));
    expect(reasons.escape).toMatch(/Expected a file name for default_model_filename in the config of model 'escape'/);
    expect(reasons.linked).toMatch(/Model 'linked' has no version directory/); // links are not version directories
    expect(reasons.fifo).toMatch(/to be a regular file, not a FIFO/);
    const answer = await client.infer({
      model: 'good',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x1 }],
    });
    expect(answer.version).toBe('1');
  });

  it('starts with a broken model reported in the index, not ready, the good one serving', async () => {
    const root = await tempRepository();
    await addVersion(root, 'good', 1, smallModel(WIDTH, 1, 30));
    await addVersion(root, 'bad', 1, smallModel(WIDTH, 1, 31));
    await writeFile(join(root, 'bad', 'config.json'), '{"max_batch_size": -1}');
    const { client } = await open(root);
    expect(await client.serverReady()).toBe(false);
    expect(await client.modelReady('good')).toBe(true);
    const index = await client.repositoryIndex();
    expect(index.find((m) => m.name === 'bad')).toMatchObject({ state: 'UNAVAILABLE' });
    expect(index.find((m) => m.name === 'bad')!.reason).toMatch(
      /Expected an integer in \[0, 65536\] for max_batch_size in the config of model 'bad' but received -1/,
    );
  });

  it('exports Triton metric names on /metrics', async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, smallModel(WIDTH, 1, 40));
    const { server, client } = await open(root);
    for (let i = 0; i < 5; i++) await ask(client);
    await ask(client, '7').catch(() => {});
    await client
      .infer({ model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: new Float32Array(3) }] })
      .catch(() => {});
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^nv_inference_request_success\{model="m",version="1"\} 5$/m);
    expect(text).toMatch(/^nv_inference_request_failure\{model="m",version="1",reason="OTHER"\} 1$/m);
    expect(text).toMatch(/^nv_inference_count\{model="m",version="1"\} 5$/m);
    expect(text).toMatch(/^nv_inference_exec_count\{model="m",version="1"\} \d+$/m);
    expect(text).toMatch(/^nv_inference_pending_request_count\{model="m",version="1"\} 0$/m);
    for (const name of [
      'nv_inference_request_duration_us',
      'nv_inference_queue_duration_us',
      'nv_inference_compute_infer_duration_us',
    ]) {
      expect(text).toMatch(new RegExp(`^${name}\\{model="m",version="1"\\} \\d`, 'm'));
    }
    expect(text).toMatch(/^nv_inference_request_duration_histogram_us_bucket\{le="1000",model="m",version="1"\} \d+$/m);
    expect(text).toMatch(/^nv_inference_request_duration_histogram_us_bucket\{le="\+Inf",model="m",version="1"\} 5$/m);
    expect(text).toMatch(/^nv_inference_request_duration_histogram_us_count\{model="m",version="1"\} 5$/m);
    expect(text).toMatch(/^nv_inference_compute_infer_duration_histogram_us_count\{model="m",version="1"\} 5$/m);
  });
});

describe('int8 models', () => {
  it('serves a quantized model like an fp32 one, its packed int8 weights shared by the workers', async () => {
    const { quantize } = await import('../../src/index.js');
    const root = await tempRepository();
    const fp32 = smallModel(WIDTH, 1, 50);
    const calibration = inputs(64, WIDTH, 51);
    const int8 = quantize(fp32, { calibrationData: calibration });
    await addVersion(root, 'fp', 1, fp32);
    await int8.save(join(root, 'q', '1'));
    const { client } = await open(root);
    const meta = await client.modelMetadata('q');
    expect(meta.platform).toBe('maas_dense_int8');
    expect((await client.modelMetadata('fp')).platform).toBe('maas_dense');
    const config = await client.modelConfig('q');
    expect(config.platform).toBe('maas_dense_int8');
    expect((config.parameters as Record<string, { string_value: string }>).precision!.string_value).toBe('int8');
    expect((config.parameters as Record<string, { string_value: string }>).quantization!.string_value).toMatch(
      /static minmax, per-channel weights/,
    );
    const x = inputs(7, WIDTH, 52);
    const r = await client.infer({
      model: 'q',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [7, WIDTH], data: x }],
    });
    expect(Array.from(r.outputs[0]!.data as Float32Array)).toEqual(Array.from(int8.predict(x.slice()).values));
    const [stats] = await client.modelStatistics('q');
    expect(stats!.memory_usage[0]!.byte_size).toBe(int8.packed().buffer.byteLength);
  });
});

describe('model integrity', () => {
  /** A saved model with its digests removed, as a file written by another tool. */
  async function addUnverifiable(root: string, name: string, config?: object): Promise<void> {
    await addVersion(root, name, 1, smallModel(WIDTH, 1, 60), config);
    const path = join(root, name, '1', 'model.json');
    const json = JSON.parse(await readFile(path, 'utf8')) as { maas: Record<string, unknown> };
    delete json.maas.weightsSha256;
    delete json.maas.descriptionSha256;
    await writeFile(path, JSON.stringify(json));
  }
  const strict = (value: string) => ({ parameters: { strict_integrity: { string_value: value } } });

  it('--strict-model-integrity refuses files without a digest unless the model opts out', async () => {
    const root = await tempRepository();
    await addVersion(root, 'signed', 1, smallModel(WIDTH, 1, 61));
    await addUnverifiable(root, 'plain');
    await addUnverifiable(root, 'waived', strict('false'));
    await addUnverifiable(root, 'typo', strict('yes'));
    const { client } = await open(root, { strictModelIntegrity: true });
    const index = await client.repositoryIndex();
    const row = (name: string) => index.find((r) => r.name === name)!;
    expect(row('signed')).toMatchObject({ state: 'READY' });
    expect(row('waived')).toMatchObject({ state: 'READY' });
    expect(row('plain')).toMatchObject({ state: 'UNAVAILABLE' });
    expect(row('plain').reason).toMatch(/strictIntegrity refuses .*model.json: it records no digest/);
    expect(row('typo')).toMatchObject({ state: 'UNAVAILABLE' });
    expect(row('typo').reason).toMatch(/parameters.strict_integrity/);
  });

  it('a model can ask for strict integrity on a lenient server; a damaged file is refused either way', async () => {
    const root = await tempRepository();
    await addUnverifiable(root, 'plain');
    await addUnverifiable(root, 'strict', strict('true'));
    await addVersion(root, 'damaged', 1, smallModel(WIDTH, 1, 62));
    const weights = (await readdir(join(root, 'damaged', '1'))).find((f) => f.endsWith('.bin'))!;
    const bytes = await readFile(join(root, 'damaged', '1', weights));
    bytes[9]! ^= 0x01;
    await writeFile(join(root, 'damaged', '1', weights), bytes);
    const { client } = await open(root);
    const index = await client.repositoryIndex();
    const row = (name: string) => index.find((r) => r.name === name)!;
    expect(row('plain')).toMatchObject({ state: 'READY' });
    expect(row('strict')).toMatchObject({ state: 'UNAVAILABLE' });
    expect(row('strict').reason).toMatch(/records no digest/);
    expect(row('damaged')).toMatchObject({ state: 'UNAVAILABLE' });
    expect(row('damaged').reason).toMatch(/do not match the SHA-256 recorded in maas.weightsSha256/);
  });
});

describe('bf16 models', () => {
  it('serves an fp32 model in bf16 when its config asks, exactly as the model predicts in bf16', async () => {
    const root = await tempRepository();
    const fp32 = smallModel(WIDTH, 3, 60);
    await addVersion(root, 'b', 1, fp32, { parameters: { precision: { string_value: 'bf16' } } });
    const { client } = await open(root);
    const config = await client.modelConfig('b');
    const parameters = config.parameters as Record<string, { string_value: string }>;
    expect(config.platform).toBe('maas_dense');
    expect(parameters.precision!.string_value).toBe('bf16');
    expect(parameters.kernel!.string_value).toMatch(/^bf16_gemm_/);
    const x = inputs(9, WIDTH, 61);
    const r = await client.infer({
      model: 'b',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [9, WIDTH], data: x }],
    });
    fp32.setPrecision('bf16');
    expect(Array.from(r.outputs[0]!.data as Float32Array)).toEqual(Array.from(fp32.predict(x.slice()).values));
    const [stats] = await client.modelStatistics('b');
    expect(stats!.memory_usage[0]!.byte_size).toBe(fp32.packed().buffer.byteLength);
  });

  it('refuses a precision it cannot serve, with a coded error naming the parameter', async () => {
    const { quantize } = await import('../../src/index.js');
    const root = await tempRepository();
    const fp32 = smallModel(WIDTH, 1, 62);
    await addVersion(root, 'word', 1, fp32, { parameters: { precision: { string_value: 'int8' } } });
    await addVersion(root, 'q', 1, fp32, { parameters: { precision: { string_value: 'bf16' } } });
    await rm(join(root, 'q', '1'), { recursive: true });
    await quantize(fp32, { calibrationData: inputs(32, WIDTH, 63) }).save(join(root, 'q', '1'));
    const { client } = await open(root, { modelControlMode: 'explicit' });
    await expect(client.loadModel('word')).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_CONFIG',
      message: expect.stringMatching(/parameters\.precision/),
    });
    await expect(client.loadModel('q')).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_CONFIG',
      message: expect.stringMatching(/precision bf16 .* is an int8 model/),
    });
    // The server is still up, and the fp32 model loads once its config is mended.
    await writeFile(
      join(root, 'word', 'config.json'),
      JSON.stringify({ parameters: { precision: { string_value: 'fp32' } } }),
    );
    await client.loadModel('word');
    expect((await client.modelConfig('word')).parameters).toMatchObject({ precision: { string_value: 'fp32' } });
  });
});
