/**
 * Placement through the real server: each version's measured cost decides whether its batches
 * run inline on the serving thread or in the pool; `parameters.placement` pins either; what was
 * decided shows in ModelConfig and on /metrics, and the answers are the same wherever they ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 12;
const model = smallModel(WIDTH, 3, 5);
const placed = (placement?: string) => ({
  max_batch_size: 16,
  dynamic_batching: {},
  ...(placement ? { parameters: { placement: { string_value: placement } } } : {}),
});

let server: RunningServer;
let client: GrpcInferenceClient;

beforeAll(async () => {
  const root = await tempRepository();
  await addVersion(root, 'auto', 1, model, placed());
  await addVersion(root, 'inline', 1, model, placed('inline'));
  await addVersion(root, 'pool', 1, model, placed('pool'));
  await addVersion(root, 'bad', 1, model, placed('gpu'));
  server = await startServer(root, { workers: 1 });
  client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const parametersOf = async (name: string) =>
  (await client.modelConfig(name)).parameters as Record<string, { string_value: string }>;

/** maas_inference_exec_count for one model and placement. */
async function executions(name: string, placement: 'inline' | 'pool'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  const line = new RegExp(
    `^maas_inference_exec_count\\{model="${name}",version="1",placement="${placement}"\\} (\\d+)$`,
    'm',
  );
  return Number(line.exec(text)?.[1] ?? NaN);
}

describe('placement', () => {
  it('answers the same wherever a batch runs, and counts executions by placement', async () => {
    const x = inputs(3, WIDTH, 9);
    const expected = model.predict(x.slice(), { batchSize: 3 }).values;
    for (const name of ['auto', 'inline', 'pool']) {
      const before = { inline: await executions(name, 'inline'), pool: await executions(name, 'pool') };
      for (let i = 0; i < 4; i++) {
        const result = await client.infer({
          model: name,
          inputs: [{ name: 'input', datatype: 'FP32', shape: [3, WIDTH], data: x }],
        });
        const y = result.outputs[0]!.data as Float32Array;
        for (let j = 0; j < expected.length; j++) expect(y[j]).toBeCloseTo(expected[j]!, 6);
      }
      const ran = {
        inline: (await executions(name, 'inline')) - before.inline,
        pool: (await executions(name, 'pool')) - before.pool,
      };
      expect(ran.inline + ran.pool).toBe(4);
      if (name === 'inline') expect(ran).toEqual({ inline: 4, pool: 0 });
      if (name === 'pool') expect(ran).toEqual({ inline: 0, pool: 4 });
      if (name === 'auto') {
        // Auto: inline exactly when the batch (3 rows) is within the measured bound.
        const maxRows = Number((await parametersOf('auto')).inline_max_rows!.string_value);
        expect(ran).toEqual(maxRows >= 3 ? { inline: 4, pool: 0 } : { inline: 0, pool: 4 });
      }
    }
  });

  it('shows what it measured and decided in ModelConfig', async () => {
    const auto = await parametersOf('auto');
    expect(auto.placement).toEqual({ string_value: 'auto' });
    expect(auto.inline_max_rows!.string_value).toMatch(/^\d+$/);
    expect(Number(auto.cost_per_row_ns!.string_value)).toBeGreaterThan(0);
    expect(Number(auto.cost_per_batch_ns!.string_value)).toBeGreaterThanOrEqual(0);
    expect((await parametersOf('inline')).inline_max_rows).toEqual({ string_value: 'all' });
    expect((await parametersOf('pool')).inline_max_rows).toEqual({ string_value: '0' });
  });

  it('refuses a placement it does not know, naming the parameter, and serves the rest', async () => {
    const index = await client.repositoryIndex();
    const bad = index.find((m) => m.name === 'bad');
    expect(bad?.state).toBe('UNAVAILABLE');
    expect(bad?.reason).toMatch(/parameters\.placement/);
    expect(bad?.reason).toMatch(/"inline"/);
    expect(index.filter((m) => m.state === 'READY').map((m) => m.name)).toEqual(['auto', 'inline', 'pool']);
  });
});

describe('placement with process isolation', () => {
  it('keeps native code out of the serving process: auto runs in the pool and inline is refused', async () => {
    const root = await tempRepository();
    await addVersion(root, 'auto', 1, model, placed());
    await addVersion(root, 'inline', 1, model, placed('inline'));
    const isolated = await startServer(root, { workers: 1, workerIsolation: 'process' });
    const isolatedClient = new GrpcInferenceClient(`127.0.0.1:${isolated.grpcPort}`);
    try {
      const parameters = (await isolatedClient.modelConfig('auto')).parameters as Record<
        string,
        { string_value: string }
      >;
      expect(parameters.inline_max_rows).toEqual({ string_value: '0' });
      const inline = (await isolatedClient.repositoryIndex()).find((m) => m.name === 'inline');
      expect(inline?.state).toBe('UNAVAILABLE');
      expect(inline?.reason).toMatch(/placement inline.*processes/);
    } finally {
      isolatedClient.close();
      await isolated.close();
    }
  });
});
