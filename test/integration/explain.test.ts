/**
 * The explain extension through the real server and both clients: each method configured per
 * model in config.json (method, options, background file of rows or of raw records), answers equal
 * to the library's on the same rows, raw records explained by column, int8 models, process
 * workers, the extension in ServerMetadata, metrics and statistics, and every refusal coded.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient, HttpInferenceClient, InferenceServerError } from '../../src/client/index.js';
import {
  integratedGradients,
  kernelShap,
  lime,
  prepare,
  quantize,
  type Explanation,
  type Sequential,
} from '../../src/index.js';
import type { ExplanationMessage } from '../../src/protocol/explain.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const D = 6;
let server: RunningServer;
let rest: HttpInferenceClient;
let grpcClient: GrpcInferenceClient;
let model: Sequential;
let carsModel: Sequential;
const background = Array.from({ length: 12 }, (_, i) => Array.from(inputs(1, D, 100 + i)));
const rows = inputs(3, D, 7);

const COLORS = ['red', 'green', 'blue'];
function cars(count: number) {
  return Array.from({ length: count }, (_, i) => ({
    weight: 1800 + ((i * 37) % 2500),
    color: COLORS[i % 3]!,
    doors: 2 + 2 * (i % 2),
  }));
}

function explainConfig(method: string, options: object, file?: string) {
  return {
    // Above MAX_EXPLAIN_ROWS: a request of 65 rows meets the explain limit, not the batch size.
    max_batch_size: 128,
    parameters: {
      explain_method: { string_value: method },
      explain_options: { string_value: JSON.stringify(options) },
      ...(file ? { explain_background: { string_value: file } } : {}),
    },
  };
}

beforeAll(async () => {
  model = smallModel(D, 3, 21);
  const root = await tempRepository();
  await addVersion(root, 'ig', 1, model, explainConfig('integratedGradients', { steps: 32 }));
  await addVersion(root, 'shap', 1, model, explainConfig('kernelShap', { nsamples: 200, seed: 3 }, 'background.json'));
  await writeFile(join(root, 'shap', 'background.json'), JSON.stringify(background));
  await addVersion(
    root,
    'int8',
    1,
    quantize(model, { calibrationData: background }) as never,
    explainConfig('integratedGradients', {}),
  );
  await addVersion(root, 'plain', 1, model, { max_batch_size: 16 });
  // The same weights, saved with their background: explain_method alone enables SHAP.
  const carrying = smallModel(D, 3, 21);
  carrying.setExplanationBackground(background);
  await addVersion(root, 'saved', 1, carrying, explainConfig('kernelShap', { nsamples: 200, seed: 3 }));
  const { pipeline } = prepare(cars(30), { onWarning: 'ignore' });
  carsModel = smallModel(pipeline.width, 1, 31);
  carsModel.setPreparation(pipeline);
  await addVersion(root, 'cars', 1, carsModel, explainConfig('kernelShap', {}, 'records.json'));
  await writeFile(join(root, 'cars', 'records.json'), JSON.stringify(cars(10)));
  server = await startServer(root);
  rest = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
  grpcClient = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
});

afterAll(async () => {
  grpcClient?.close();
  await server?.close();
});

const tensor = (data: Float32Array, count: number) => ({
  name: 'input',
  datatype: 'FP32' as const,
  shape: [count, D],
  data,
});

function expectSame(got: ExplanationMessage, want: Explanation, tol = 1e-5): void {
  expect(got.output).toBe(want.output);
  expect(got.value).toBeCloseTo(want.value, 6);
  expect(got.base).toBeCloseTo(want.base, 6);
  expect(got.features).toEqual(want.features);
  got.attributions.forEach((a, i) => expect(Math.abs(a - want.attributions[i]!)).toBeLessThan(tol));
}

describe('explain over REST and gRPC', () => {
  it('lists the extension in ServerMetadata', async () => {
    for (const client of [rest, grpcClient]) expect((await client.serverMetadata()).extensions).toContain('explain');
  });

  it("answers integrated gradients as the library computes them, with the config's steps", async () => {
    const want = integratedGradients(model, rows, { steps: 32 });
    for (const client of [rest, grpcClient]) {
      const got = await client.explain({ model: 'ig', id: 'a', inputs: [tensor(rows, 3)] });
      expect(got.method).toBe('integratedGradients');
      expect(got.id).toBe('a');
      expect(got.explanations).toHaveLength(3);
      got.explanations.forEach((e, r) => {
        expectSame(e, want[r]!);
        expect(Math.abs(e.completeness_gap!)).toBeLessThan(1e-3);
      });
    }
  });

  it('takes the method and its options as request parameters, the background from the config', async () => {
    const want = kernelShap(model, rows.subarray(0, D), { background, nsamples: 200, seed: 3, output: 1 });
    const lm = lime(model, rows.subarray(0, D), { background, samples: 300, seed: 9 });
    for (const client of [rest, grpcClient]) {
      const shap = await client.explain({
        model: 'shap',
        inputs: [tensor(rows.subarray(0, D), 1)],
        parameters: { output: 1 },
      });
      expect(shap.method).toBe('kernelShap');
      expectSame(shap.explanations[0]!, want[0]!);
      expect(Math.abs(shap.explanations[0]!.additivity_gap!)).toBeLessThan(1e-5);
      const viaLime = await client.explain({
        model: 'shap',
        method: 'lime',
        inputs: [tensor(rows.subarray(0, D), 1)],
        parameters: { samples: 300, seed: 9 },
      });
      expect(viaLime.method).toBe('lime');
      expectSame(viaLime.explanations[0]!, lm[0]!, 1e-4);
      expect(viaLime.explanations[0]!.r2).toBeGreaterThan(0);
    }
  });

  it('explains with the background saved with the model when the config names no file', async () => {
    const want = kernelShap(model, rows.subarray(0, D), { background, nsamples: 200, seed: 3 });
    for (const client of [rest, grpcClient]) {
      const got = await client.explain({ model: 'saved', inputs: [tensor(rows.subarray(0, D), 1)] });
      expectSame(got.explanations[0]!, want[0]!);
    }
  });

  it('explains an int8 model through its dequantized weights, its value the int8 prediction', async () => {
    const got = await rest.explain({ model: 'int8', inputs: [tensor(rows.subarray(0, D), 1)] });
    const fp32 = integratedGradients(model, rows.subarray(0, D), { output: got.explanations[0]!.output })[0]!;
    const e = got.explanations[0]!;
    const diff = Math.hypot(...e.attributions.map((a, i) => a - fp32.attributions[i]!));
    expect(diff / Math.hypot(...fp32.attributions)).toBeLessThan(0.1);
  });

  it('explains raw records by column, with a background of records', async () => {
    const records = cars(2);
    for (const client of [rest, grpcClient]) {
      const got = await client.explain({ model: 'cars', records });
      expect(got.explanations).toHaveLength(2);
      const e = got.explanations[0]!;
      expect(e.features).toContain('color=green');
      expect(e.columns!.map((c) => c.column)).toEqual(['weight', 'color', 'doors']);
      const total = e.columns!.reduce((s, c) => s + c.attribution, 0);
      expect(total).toBeCloseTo(e.value - e.base, 4);
    }
  });

  it('counts explanations in metrics and statistics', async () => {
    await rest.explain({ model: 'ig', inputs: [tensor(rows.subarray(0, D), 1)] });
    const metrics = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/maas_explain_request_success\{model="ig",version="1"\} [1-9]/);
    expect(metrics).toMatch(/maas_explain_count\{model="ig",version="1",method="integratedGradients"\} [1-9]/);
    const [stats] = await rest.modelStatistics('ig', '1');
    expect(stats!.explain_stats!.success.count).toBeGreaterThan(0);
    expect(stats!.explain_stats!.compute_explain.ns).toBeGreaterThan(0);
    expect(stats!.explain_stats!.explained_rows.integratedGradients).toBeGreaterThan(0);
    expect((await rest.modelStatistics('plain', '1'))[0]!.explain_stats).toBeUndefined();
  });

  it('refuses with coded errors, and keeps serving', async () => {
    const refused = async (promise: Promise<unknown>, code: string) => {
      const error = await promise.then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InferenceServerError);
      expect((error as InferenceServerError).code).toBe(code);
    };
    const one = [tensor(rows.subarray(0, D), 1)];
    for (const client of [rest, grpcClient]) {
      await refused(client.explain({ model: 'plain', inputs: one }), 'MAAS_ERR_EXPLAIN_OFF');
      await refused(client.explain({ model: 'ig', method: 'kernelShap', inputs: one }), 'MAAS_ERR_EXPLAIN_BACKGROUND');
      await refused(client.explain({ model: 'ig', method: 'magic', inputs: one }), 'MAAS_ERR_ARG_RANGE');
      await refused(client.explain({ model: 'ig', inputs: one, parameters: { steps: 0 } }), 'MAAS_ERR_ARG_RANGE');
      await refused(client.explain({ model: 'ig', inputs: one, parameters: { output: 9 } }), 'MAAS_ERR_ARG_RANGE');
      await refused(client.explain({ model: 'nope', inputs: one }), 'MAAS_ERR_MODEL_UNKNOWN');
      await refused(
        client.explain({ model: 'ig', inputs: [{ ...one[0]!, shape: [1, D - 1], data: rows.subarray(0, D - 1) }] }),
        'MAAS_ERR_INFER_INPUT',
      );
    }
    const many = inputs(65, D, 1);
    await refused(rest.explain({ model: 'ig', inputs: [tensor(many, 65)] }), 'MAAS_ERR_INFER_INPUT');
    await expect(rest.explain({ model: 'ig', inputs: [tensor(many, 65)] })).rejects.toThrow(/at most 64 rows/);
    expect((await rest.explain({ model: 'ig', inputs: one })).explanations).toHaveLength(1);
  });
});

describe('explain with process workers', () => {
  it('maps the round trip in each worker process, takes the background along, and answers as the library does', async () => {
    const root = await tempRepository();
    await addVersion(root, 'ig', 1, model, explainConfig('integratedGradients', { steps: 16 }));
    await addVersion(
      root,
      'shap',
      1,
      model,
      explainConfig('kernelShap', { nsamples: 200, seed: 3 }, 'background.json'),
    );
    await writeFile(join(root, 'shap', 'background.json'), JSON.stringify(background));
    const isolated = await startServer(root, { workerIsolation: 'process' });
    try {
      const client = new HttpInferenceClient(`http://127.0.0.1:${isolated.httpPort}`);
      const want = integratedGradients(model, rows, { steps: 16 });
      // More requests than workers: every worker process opens its own mapping.
      const answers = await Promise.all(
        [0, 1, 2, 3].map(() => client.explain({ model: 'ig', inputs: [tensor(rows, 3)] })),
      );
      for (const got of answers) got.explanations.forEach((e, r) => expectSame(e, want[r]!));
      // The background (shared memory in the serving process) reaches a worker process as a copy.
      const shap = await client.explain({ model: 'shap', inputs: [tensor(rows.subarray(0, D), 1)] });
      const shapWant = kernelShap(model, rows.subarray(0, D), { background, nsamples: 200, seed: 3 });
      expectSame(shap.explanations[0]!, shapWant[0]!);
    } finally {
      await isolated.close();
    }
  });
});
