/**
 * Version labels and a canary's share: requests by label ("stable", "canary") on REST and gRPC, the
 * unversioned ones split by the configured percent, the labels and share changed at run time
 * (GET/POST …/routing), and refusals coded: a label of a version not serving, a share outside
 * [0, 100], a malformed label, labels in config.json that the version policy does not serve.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient, HttpInferenceClient } from '../../src/client/index.js';
import type { Sequential } from '../../src/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const D = 4;
let server: RunningServer;
let base: string;
let rest: HttpInferenceClient;
let grpcClient: GrpcInferenceClient;
let v1: Sequential;
let v2: Sequential;
const x = inputs(1, D, 3);

function labelled(labels: object, percent?: number) {
  return {
    version_policy: { all: {} },
    parameters: {
      version_labels: { string_value: JSON.stringify(labels) },
      ...(percent !== undefined ? { canary_traffic_percent: { string_value: String(percent) } } : {}),
    },
  };
}

beforeAll(async () => {
  const root = await tempRepository();
  v1 = smallModel(D, 2, 1);
  v2 = smallModel(D, 2, 2);
  await addVersion(root, 'm', 1, v1);
  await addVersion(root, 'm', 2, v2, labelled({ stable: 1, canary: 2 }, 25));
  await addVersion(root, 'bad', 1, v1, labelled({ stable: 3 }));
  server = await startServer(root);
  base = `http://127.0.0.1:${server.httpPort}`;
  rest = new HttpInferenceClient(base);
  grpcClient = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
});

afterAll(async () => {
  grpcClient?.close();
  await server?.close();
});

const request = (version?: string) => ({
  model: 'm',
  ...(version !== undefined ? { version } : {}),
  inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, D], data: x }],
});

async function post(path: string, body: unknown) {
  const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('version labels and a canary share', () => {
  it('answers a request by label with that version, on both transports', async () => {
    for (const client of [rest, grpcClient]) {
      const stable = await client.infer(request('stable'));
      expect(stable.version).toBe('1');
      expect(Array.from(stable.outputs[0]!.data as ArrayLike<number>)).toEqual(Array.from(v1.predict(x).values));
      const canary = await client.infer(request('canary'));
      expect(canary.version).toBe('2');
      expect(Array.from(canary.outputs[0]!.data as ArrayLike<number>)).toEqual(Array.from(v2.predict(x).values));
    }
    await expect(rest.infer(request('beta'))).rejects.toMatchObject({ status: 400 });
  });

  it('sends the canary its share of unversioned requests, the rest to stable', async () => {
    const versions = await Promise.all(Array.from({ length: 400 }, () => rest.infer(request()).then((r) => r.version)));
    const canary = versions.filter((v) => v === '2').length;
    expect(versions.filter((v) => v !== '1' && v !== '2')).toEqual([]);
    // 25% of 400 is 100 ± 8.7 (one sd): 60 to 140 fails about once in 200 000 runs.
    expect(canary).toBeGreaterThan(60);
    expect(canary).toBeLessThan(140);
  });

  it('changes labels and share at run time, and shows them', async () => {
    expect(await (await fetch(`${base}/v2/repository/models/m/routing`)).json()).toEqual({
      labels: { stable: 1, canary: 2 },
      canary_percent: 25,
    });
    // Through the package's client, as a deploy script would.
    expect(await rest.routing('m')).toEqual({ labels: { stable: 1, canary: 2 }, canaryPercent: 25 });
    const promoted = await rest.setRouting('m', { labels: { stable: 2, canary: 1 }, canaryPercent: 0 });
    expect(promoted).toEqual({ labels: { stable: 2, canary: 1 }, canaryPercent: 0 });
    const versions = await Promise.all(Array.from({ length: 20 }, () => rest.infer(request()).then((r) => r.version)));
    expect(new Set(versions)).toEqual(new Set(['2']));
    expect((await rest.infer(request('canary'))).version).toBe('1');
    // Without labels, the highest version serves again.
    expect((await post('/v2/repository/models/m/routing', { labels: {} })).status).toBe(200);
    expect((await rest.infer(request())).version).toBe('2');
  });

  it('refuses a label of a version not serving, a share outside [0, 100], a bad label, labels in config the policy does not serve', async () => {
    const absent = await post('/v2/repository/models/m/routing', {
      labels: { stable: 1, canary: 7 },
      canary_percent: 10,
    });
    expect(absent.status).toBe(503);
    expect(absent.body.error).toMatch(/version 7 .* not serving/);
    const share = await post('/v2/repository/models/m/routing', {
      labels: { stable: 1, canary: 2 },
      canary_percent: 150,
    });
    expect(share.status).toBe(400);
    const lonely = await post('/v2/repository/models/m/routing', { labels: { canary: 2 }, canary_percent: 10 });
    expect(lonely.status).toBe(400);
    const name = await post('/v2/repository/models/m/routing', { labels: { '1': 1 } });
    expect(name.status).toBe(400);
    const index = await server.dataplane.repositoryIndex();
    const bad = index.find((e) => e.name === 'bad')!;
    expect(bad.state).toBe('UNAVAILABLE');
    expect(bad.reason).toMatch(/labels version 3 'stable', but its version policy does not serve it/);
  });
});

describe('the canary guard', () => {
  it('rolls back a canary whose requests fail, in its share, and the service answers on', async () => {
    const root = await tempRepository();
    // The canary takes 5 inputs: every request of 4 it receives fails.
    await addVersion(root, 'g', 1, smallModel(D, 2, 5));
    await addVersion(root, 'g', 2, smallModel(D + 1, 2, 6), {
      version_policy: { all: {} },
      parameters: {
        version_labels: { string_value: JSON.stringify({ stable: 1, canary: 2 }) },
        canary_traffic_percent: { string_value: '50' },
        canary_max_error_increase: { string_value: '0.2' },
        canary_min_requests: { string_value: '10' },
      },
    });
    const guarded = await startServer(root);
    try {
      const client = new HttpInferenceClient(`http://127.0.0.1:${guarded.httpPort}`);
      const ask = () =>
        client.infer({ model: 'g', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, D], data: x }] }).then(
          () => true,
          () => false,
        );
      const outcomes: boolean[] = [];
      for (let i = 0; i < 120; i++) outcomes.push(await ask());
      const failed = outcomes.filter((ok) => !ok).length;
      // Failures until the canary had 10 requests (about 20 in all), none after the rollback.
      expect(failed).toBeGreaterThanOrEqual(10);
      expect(outcomes.slice(-60).every((ok) => ok)).toBe(true);
      const routing = await (await fetch(`http://127.0.0.1:${guarded.httpPort}/v2/repository/models/g/routing`)).json();
      expect(routing).toEqual({ labels: { stable: 1, canary: 2 }, canary_percent: 0 });
      const metrics = await (await fetch(`http://127.0.0.1:${guarded.metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/maas_canary_rollbacks\{model="g",version="2"\} 1/);
    } finally {
      await guarded.close();
    }
  });
});
