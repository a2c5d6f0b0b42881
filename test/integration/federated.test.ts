/**
 * maas.FederatedService through the real gRPC client: a round opened on the serving version,
 * clients that train locally (trainAndSubmit) and send deltas, never rows; the close averages them
 * exactly (without noise), judges the result on the model's held-out rows and promotes it; with
 * DP-FedAvg the (ε, δ) report follows the Rényi bound; and every bad update, stale round or early
 * close is refused with a coded error while the round goes on.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/index.js';
import { dpEpsilon, loadModel, localUpdate, trainAndSubmit, type ClientUpdate, type Random } from '../../src/index.js';
import type { RunningServer, ServeOptions } from '../../src/serving/server.js';
import { publishVersion } from '../../src/lifecycle/publish.js';
import { rng } from '../helpers.js';
import { addVersion, smallModel, startServer, tempRepository, refusal } from './server-helpers.js';

const D = 6;

function task(rows: number, random: Random): { x: Float32Array; y: Float32Array } {
  const x = Float32Array.from({ length: rows * D }, () => random.uniform(-1, 1));
  const y = Float32Array.from({ length: rows }, (_, r) => (x[r * D]! - x[r * D + 3]! > 0 ? 1 : 0));
  return { x, y };
}

let server: RunningServer | null = null;
let client: GrpcInferenceClient | null = null;
afterEach(async () => {
  client?.close();
  await server?.close();
  server = null;
  client = null;
});

/** A served model 'm' (compiled, untrained) with a held-out file, and a client to it. */
async function start(
  random: Random,
  options: { record?: string; serve?: Partial<ServeOptions> } = {},
): Promise<{ root: string; grpc: GrpcInferenceClient }> {
  const root = await tempRepository();
  const model = smallModel(D, 1, 5);
  model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
  await addVersion(root, 'm', 1, model, { parameters: { update_holdout: { string_value: 'holdout.json' } } });
  const held = task(300, random);
  await writeFile(
    join(root, 'm', 'holdout.json'),
    JSON.stringify({
      x: Array.from({ length: 300 }, (_, r) => Array.from(held.x.subarray(r * D, (r + 1) * D))),
      y: Array.from(held.y),
    }),
  );
  if (options.record !== undefined) await writeFile(join(root, 'm', '1', 'version.json'), options.record);
  server = await startServer(root, options.serve);
  client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  return { root, grpc: client };
}

describe('federated rounds', () => {
  it('averages the clients’ deltas exactly, weighted by their rows, and promotes the result', async () => {
    const random = rng(61);
    const { root, grpc } = await start(random);
    const opened = await grpc.openRound('m', { minClients: 3 });
    expect(opened).toMatchObject({ model: 'm', baseVersion: '1', clients: 0, minClients: 3 });
    const local = smallModel(D, 1, 99); // any weights: trainAndSubmit starts it from the round's base
    local.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    const shards = [200, 500, 300].map((n) => task(n, random));
    for (const [i, shard] of shards.entries()) {
      const sent = await trainAndSubmit(grpc, {
        model: 'm',
        client: `hospital-${i}`,
        localModel: local,
        x: shard.x,
        y: shard.y,
        fitArgs: { epochs: 5, batchSize: 32, seed: i },
      });
      expect(sent).toMatchObject({
        roundId: opened.roundId,
        baseVersion: '1',
        samples: shard.y.length,
        clients: i + 1,
      });
    }
    // The same deltas, computed here from the same base, seeds and rows, give the expected mean.
    const round = await grpc.getRound('m', opened.roundId);
    local.setWeights(round.weights.map((t) => t.values));
    const deltas: ClientUpdate[] = [];
    for (const [i, shard] of shards.entries())
      deltas.push(await localUpdate(local, shard.x, shard.y, { client: `c${i}`, epochs: 5, batchSize: 32, seed: i }));
    const total = deltas.reduce((n, u) => n + u.samples, 0);
    const expected = round.weights.map((t, k) => {
      const sum = new Float64Array(t.values.length);
      for (const u of deltas) for (let j = 0; j < sum.length; j++) sum[j] = sum[j]! + u.samples * u.delta[k]![j]!;
      const mean = Float32Array.from(sum, (s) => s / total);
      return Float32Array.from(t.values, (v, j) => v + mean[j]!);
    });
    const result = await grpc.closeRound('m', opened.roundId);
    expect(result).toMatchObject({ clients: 3, samples: 1000, clipped: 0, refused: [], noiseStd: 0 });
    expect(result.privacy).toBeUndefined();
    expect(result.promoted).toBe(true);
    expect(result).toMatchObject({ version: '2', serving: true, metric: 'loss' });
    const promoted = await loadModel(join(root, 'm', '2'));
    promoted.getWeights().forEach((t, k) => expect(Array.from(t.values)).toEqual(Array.from(expected[k]!)));
    const record = JSON.parse(await readFile(join(root, 'm', '2', 'version.json'), 'utf8')) as {
      source: string;
      parent: number;
      details: { round: string; clients: number; samples: number };
    };
    expect(record).toMatchObject({
      source: 'federated',
      parent: 1,
      details: { round: opened.roundId, clients: 3, samples: 1000 },
    });
    // The round is over: a new one may open, on version 2.
    expect((await grpc.openRound('m')).baseVersion).toBe('2');
  }, 60_000);

  it('clips and noises with DP-FedAvg and reports (ε, δ) by the Rényi bound', async () => {
    const random = rng(62);
    const { grpc } = await start(random);
    // A clip norm below what 20 epochs of adam move any client's weights by (each of its ~80
    // steps moves every weight by about the learning rate), whatever the run's seed.
    const opened = await grpc.openRound('m', { clipNorm: 0.01, noiseMultiplier: 1.1, seed: 3, delta: 1e-6 });
    expect(opened).toMatchObject({ clipNorm: 0.01, noiseMultiplier: 1.1 });
    const local = smallModel(D, 1, 7);
    local.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    for (let i = 0; i < 4; i++) {
      const shard = task(100, random);
      await trainAndSubmit(grpc, {
        model: 'm',
        client: `c${i}`,
        localModel: local,
        x: shard.x,
        y: shard.y,
        fitArgs: { epochs: 20, seed: i },
      });
    }
    const result = await grpc.closeRound('m', opened.roundId);
    expect(result.clipped).toBe(4);
    expect(result.noiseStd).toBeCloseTo((1.1 * 0.01) / 4, 12); // each client counts once under DP
    expect(result.privacy).toEqual({
      epsilon: expect.closeTo(dpEpsilon({ noiseMultiplier: 1.1, rounds: 1, delta: 1e-6 }).epsilon, 9),
      delta: 1e-6,
      rounds: 1,
    });
  }, 60_000);

  it('refuses bad updates, stale rounds and early closes with coded errors, and the round goes on', async () => {
    const random = rng(63);
    const { grpc } = await start(random);
    const round = await grpc.openRound('m', { maxNorm: 5, minClients: 2 });
    const sizes = (await grpc.getRound('m')).weights.map((t) => t.values.length);
    const good = () => sizes.map((n) => new Float32Array(n).fill(0.001));
    const cases: [() => Promise<unknown>, string][] = [
      [() => grpc.openRound('m'), 'MAAS_ERR_FEDERATED_ROUND'],
      [
        () => grpc.submitUpdate('m', round.roundId, { client: 'a', samples: 10, delta: good().slice(1) }),
        'MAAS_ERR_FEDERATED_UPDATE',
      ],
      [
        () =>
          grpc.submitUpdate('m', round.roundId, {
            client: 'a',
            samples: 10,
            delta: good().map((d, i) => (i === 0 ? d.fill(Number.NaN) : d)),
          }),
        'MAAS_ERR_FEDERATED_UPDATE',
      ],
      [
        () =>
          grpc.submitUpdate('m', round.roundId, {
            client: 'a',
            samples: 10,
            delta: sizes.map((n) => new Float32Array(n).fill(1)),
          }),
        'MAAS_ERR_FEDERATED_UPDATE',
      ],
      [
        () => grpc.submitUpdate('m', round.roundId, { client: 'a', samples: 0, delta: good() }),
        'MAAS_ERR_FEDERATED_UPDATE',
      ],
      [
        () => grpc.submitUpdate('m', round.roundId, { client: '../x', samples: 1, delta: good() }),
        'MAAS_ERR_FEDERATED_UPDATE',
      ],
      [
        () => grpc.submitUpdate('m', 'feedfeedfeedfeed', { client: 'a', samples: 1, delta: good() }),
        'MAAS_ERR_FEDERATED_ROUND',
      ],
      [
        () => grpc.submitUpdate('nope', round.roundId, { client: 'a', samples: 1, delta: good() }),
        'MAAS_ERR_MODEL_UNKNOWN',
      ],
      [() => grpc.closeRound('m', round.roundId), 'MAAS_ERR_FEDERATED_ROUND'], // min_clients 2
      [() => grpc.openRound('m', { noiseMultiplier: 1 }), 'MAAS_ERR_FEDERATED_ROUND'],
    ];
    for (const [work, code] of cases) expect((await refusal(work())).code).toBe(code);
    expect(await grpc.submitUpdate('m', round.roundId, { client: 'a', samples: 10, delta: good() })).toMatchObject({
      clients: 1,
    });
    expect(
      (await refusal(grpc.submitUpdate('m', round.roundId, { client: 'a', samples: 10, delta: good() }))).code,
    ).toBe('MAAS_ERR_FEDERATED_UPDATE');
    expect(await grpc.submitUpdate('m', round.roundId, { client: 'b', samples: 30, delta: good() })).toMatchObject({
      clients: 2,
    });
    expect((await grpc.getRound('m')).samples).toBe(40);
    const result = await grpc.closeRound('m', round.roundId);
    expect(result.clients).toBe(2);
    expect(await grpc.serverLive()).toBe(true);
  }, 60_000);

  it('refuses a round on a model whose config names no held-out rows to judge it by', async () => {
    const root = await tempRepository();
    const model = smallModel(D, 1, 5);
    model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    await addVersion(root, 'm', 1, model);
    server = await startServer(root);
    client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
    const error = await refusal(client.openRound('m'));
    expect(error.code).toBe('MAAS_ERR_UPDATE_REFUSED');
    expect(error.message).toMatch(/update_holdout/);
  }, 60_000);

  it('carries the lineage’s privacy on, refuses a round without noise on it, and a record it cannot read', async () => {
    const random = rng(64);
    const record = JSON.stringify({ source: 'federated', details: { privacy: { rdp: 0.5, rounds: 1, delta: 1e-5 } } });
    const { grpc } = await start(random, { record });
    const plain = await refusal(grpc.openRound('m'));
    expect([plain.code, plain.message]).toEqual([
      'MAAS_ERR_UPDATE_PARAMETER',
      expect.stringMatching(/1 noised rounds/),
    ]);
    const round = await grpc.openRound('m', { clipNorm: 1, noiseMultiplier: 2, seed: 1 });
    const sizes = (await grpc.getRound('m')).weights.map((t) => t.values.length);
    await grpc.submitUpdate('m', round.roundId, {
      client: 'a',
      samples: 5,
      delta: sizes.map((n) => new Float32Array(n)),
    });
    const result = await grpc.closeRound('m', round.roundId);
    const rdp = 0.5 + 1 / (2 * 2 * 2);
    expect(result.privacy).toEqual({
      epsilon: expect.closeTo(rdp + 2 * Math.sqrt(rdp * Math.log(1e5)), 9),
      delta: 1e-5,
      rounds: 2,
    });
  }, 60_000);

  it('refuses to open a round over a version record it cannot read', async () => {
    const { grpc } = await start(rng(65), { record: '{"details": {"privacy": {"rdp": "much"}}}' });
    expect((await refusal(grpc.openRound('m', { clipNorm: 1, noiseMultiplier: 1 }))).code).toBe(
      'MAAS_ERR_MODEL_FORMAT',
    );
  }, 60_000);

  it('discards a round whose base version stopped serving before it closed', async () => {
    const random = rng(66);
    const { root, grpc } = await start(random, { serve: { modelControlMode: 'poll', repositoryPollSeconds: 0.2 } });
    const round = await grpc.openRound('m');
    const sizes = (await grpc.getRound('m')).weights.map((t) => t.values.length);
    await grpc.submitUpdate('m', round.roundId, {
      client: 'a',
      samples: 5,
      delta: sizes.map((n) => new Float32Array(n)),
    });
    const next = smallModel(D, 1, 8);
    next.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    await publishVersion(root, 'm', next, { source: 'test' });
    const deadline = Date.now() + 20_000;
    while (!(await grpc.modelReady('m', '2').catch(() => false)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const stale = await refusal(grpc.closeRound('m', round.roundId));
    expect([stale.code, stale.message]).toEqual([
      'MAAS_ERR_FEDERATED_ROUND',
      expect.stringMatching(/changed from 1 to 2/),
    ]);
    // The round is gone: a new one opens on version 2.
    expect((await grpc.openRound('m')).baseVersion).toBe('2');
  }, 60_000);
});
