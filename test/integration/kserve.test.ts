/**
 * KServe's conventions, through the real command: `maas serve --model_name=NAME --model_dir=DIR`
 * (KServe's Python-style flags) serves one model's directory — its files directly, or its version
 * directories — under NAME, on the ports PORT and GRPC_PORT name; conflicting or bad settings stop
 * the command with a message.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { packageRoot } from '../../src/core/package-root.js';
import { bannerPorts, smallModel, tempRepository } from './server-helpers.js';

const ROOT = packageRoot();
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const D = 4;
let child: ChildProcess | null = null;

afterEach(() => {
  child?.kill('SIGKILL');
  child = null;
});

/** Starts `maas serve` with `args` and `env`; resolves with its REST port once it prints the banner. */
function serveCli(args: string[], env: Record<string, string>): Promise<number> {
  child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return bannerPorts(child).then((ports) => ports.http);
}

const common = [
  '--host',
  '127.0.0.1',
  '--metrics-port',
  '0',
  '--no-packed-cache',
  '--log-level',
  'warn',
  '--workers',
  '1',
];
const ephemeral = { PORT: '0', GRPC_PORT: '0' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answer = Record<string, any>;

async function json(port: number, path: string, body?: unknown): Promise<{ status: number; body: Answer }> {
  const r = await fetch(
    `http://127.0.0.1:${port}${path}`,
    body === undefined
      ? {}
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
  );
  return { status: r.status, body: (await r.json()) as Answer };
}

const infer = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, D], data: [0.1, 0.2, 0.3, 0.4] }] };

describe('KServe conventions', () => {
  it('serves a directory of one model’s files under --model_name, on $PORT', async () => {
    const dir = await tempRepository();
    const model = smallModel(D, 2, 1);
    model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy' });
    await model.save(dir); // model.json and its weights, directly in the directory
    const port = await serveCli(['--model_name=churn', `--model_dir=${dir}`, ...common], ephemeral);
    const meta = await json(port, '/v2/models/churn');
    expect(meta.body).toMatchObject({ name: 'churn', versions: ['1'] });
    const answer = await json(port, '/v2/models/churn/infer', infer);
    expect(answer.status).toBe(200);
    expect(answer.body.outputs[0].data).toEqual(Array.from(model.predict(Float32Array.of(0.1, 0.2, 0.3, 0.4)).values));
    expect((await json(port, '/v2/models/other')).status).toBe(400);
    // A flat directory has no versions to add one beside: updates are refused, not written into it.
    const update = await json(port, '/v2/models/churn/update', { batches: [{ x: [[1, 2, 3, 4]], y: [[1, 0]] }] });
    expect(update.body.error).toMatch(/no version directories/);
  }, 60_000);

  it('serves a model directory of versions and config.json under --model-name, dashed flags too', async () => {
    const dir = await tempRepository();
    for (const v of [1, 2]) await smallModel(D, 2, v).save(join(dir, String(v)));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ max_batch_size: 8 }));
    await mkdir(join(dir, 'notes'), { recursive: true }); // not a version: ignored
    const port = await serveCli(['--model-name', 'churn', '--model-dir', dir, ...common], ephemeral);
    const meta = await json(port, '/v2/models/churn');
    expect(meta.body.versions).toEqual(['2']);
    expect((await json(port, '/v2/models/churn/config')).body.max_batch_size).toBe(8);
    expect((await json(port, '/v2/repository/index', {})).body).toEqual([
      { name: 'churn', version: '2', state: 'READY', reason: '' },
    ]);
  }, 60_000);

  it('the ClusterServingRuntime’s own args (deploy/kserve) serve the bundled model', async () => {
    const manifest = parse(readFileSync(join(ROOT, 'deploy', 'kserve', 'cluster-serving-runtime.yaml'), 'utf8'));
    const container = manifest.spec.containers[0];
    // As KServe would run them: {{.Name}} is the InferenceService's name and /mnt/models holds the
    // downloaded storageUri. Here the ports are ephemeral and the address loopback.
    const local: Record<string, string> = {
      '--model_dir=/mnt/models': `--model_dir=${join(ROOT, 'models', 'classic')}`,
      '--http_port=8080': '--http_port=0',
      '--grpc_port=9000': '--grpc_port=0',
      '--metrics-port=8002': '--metrics-port=0',
      '--host=0.0.0.0': '--host=127.0.0.1',
      '--workers=2': '--workers=1',
    };
    const args = (container.args as string[]).slice(1).map((a) => local[a] ?? a.replace('{{.Name}}', 'classic'));
    expect(container.args[0]).toBe('serve');
    expect(args.filter((a) => /8080|9000|8002|0\.0\.0\.0|\/mnt\//.test(a))).toEqual([]);
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    env.MAAS_PACKED_CACHE = join(await tempRepository(), 'packed');
    const port = await serveCli(args, env);
    const sample = JSON.parse(readFileSync(join(ROOT, 'models', 'classic', 'sample-request.json'), 'utf8'));
    const answer = await json(port, '/v2/models/classic/infer', sample);
    expect(answer.status).toBe(200);
    expect(answer.body.outputs[0].shape).toEqual([2, 1]);
    expect((await fetch(`http://127.0.0.1:${port}/v2/health/ready`)).status).toBe(200);
  }, 60_000);

  it('stops with a message on conflicting flags or a bad $PORT', () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 60_000,
      });
    const both = run(['--model-name', 'x', '--model-repository', '/tmp']);
    expect(both.status).not.toBe(0);
    expect(both.stderr).toMatch(/leave out --model-repository/);
    const neither = run([]);
    expect(neither.stderr).toMatch(/Give --model-repository DIR, or --model-name NAME/);
    const badPort = run(['--model-name', 'x'], { PORT: 'eighty' });
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toMatch(/\$PORT: expected a port/);
  }, 120_000);
});
