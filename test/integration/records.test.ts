/**
 * Raw records in, labels out, through the real server and both clients: JSON records over REST,
 * one input per column (MLServer's content_type "pd", BYTES for text) over gRPC, Triton's
 * classification extension ("score:index:label") with the pipeline's class names or a config's
 * label_filename, the raw inputs in ModelMetadata, strict columns with coded errors, and the
 * prepared-tensor input still answering.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient, HttpInferenceClient, InferenceServerError } from '../../src/client/index.js';
import { DataFrame, prepare, type Sequential } from '../../src/index.js';
import { serializeBytesTensor } from '../../src/protocol/bytes-tensor.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, memoryLogger, smallModel, startServer, tempRepository } from './server-helpers.js';

const ORIGINS = ['europe', 'japan', 'usa'];

/** A small car table: numbers, a category, a date, an ID-like name, and a class label. */
function cars(rows: number) {
  return Array.from({ length: rows }, (_, i) => ({
    name: `car ${i}`,
    weight: 1800 + ((i * 37) % 2500),
    cylinders: 4 + 2 * (i % 3),
    origin: ORIGINS[i % 3]!,
    built: `${1970 + (i % 12)}-0${1 + (i % 9)}-15`,
    size: i % 4 === 0 ? 'large' : i % 4 === 1 ? 'medium' : 'small',
  }));
}

let server: RunningServer;
let rest: HttpInferenceClient;
let grpcClient: GrpcInferenceClient;
let model: Sequential;
let unlabelled: Sequential;
let repository: string;

beforeAll(async () => {
  const frame = DataFrame.fromRecords(cars(60), { onWarning: 'ignore' });
  const { pipeline } = prepare(frame, { label: 'size', onWarning: 'ignore' });
  model = smallModel(pipeline.width, 3, 11);
  model.setPreparation(pipeline);
  unlabelled = smallModel(4, 3, 12);
  const root = (repository = await tempRepository());
  await addVersion(root, 'cars', 1, model, { max_batch_size: 16 });
  await addVersion(root, 'plain', 1, unlabelled, {
    max_batch_size: 8,
    output: [{ name: 'output', data_type: 'TYPE_FP32', dims: [3], label_filename: 'labels.txt' }],
  });
  await writeFile(join(root, 'plain', 'labels.txt'), 'cat\ndog\nbird\n');
  server = await startServer(root);
  rest = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
  grpcClient = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
});

afterAll(async () => {
  grpcClient?.close();
  await server?.close();
});

const records = cars(5).map(({ size: _size, ...features }) => features);

describe('raw records through the service', () => {
  it('answers JSON records over REST and columns over gRPC with the class names the library predicts', async () => {
    const expected = model.predictLabels(records);
    const scores = model.predictRaw(records).values;
    for (const client of [rest, grpcClient]) {
      const result = await client.infer({ model: 'cars', records });
      const byName = Object.fromEntries(result.outputs.map((o) => [o.name, o]));
      expect(byName.size!.datatype).toBe('BYTES');
      expect(byName.size!.shape).toEqual([5]);
      expect(byName.size!.data).toEqual(expected);
      expect(byName.output!.shape).toEqual([5, 3]);
      expect(Array.from(byName.output!.data as Float32Array)).toEqual(Array.from(scores));
    }
    // JSON all the way (REST typed) and typed gRPC contents (bytes_contents) as well.
    const typed = await rest.infer({ model: 'cars', records, typed: true, outputs: ['size'] });
    expect(typed.outputs.map((o) => [o.name, o.data])).toEqual([['size', expected]]);
    const grpcTyped = await grpcClient.infer({ model: 'cars', records, typed: true, outputs: ['size'] });
    expect(grpcTyped.outputs[0]!.data).toEqual(expected);
  });

  it("answers Triton's classification extension with score:index:label strings, both transports", async () => {
    const scores = model.predictRaw(records.slice(0, 2)).values;
    const classes = model.preparation!.classes!;
    const top2 = [0, 1].flatMap((r) =>
      [0, 1, 2]
        .sort((a, b) => scores[r * 3 + b]! - scores[r * 3 + a]! || a - b)
        .slice(0, 2)
        .map((j) => `${scores[r * 3 + j]!.toFixed(6)}:${j}:${classes[j]}`),
    );
    for (const client of [rest, grpcClient]) {
      const result = await client.infer({
        model: 'cars',
        records: records.slice(0, 2),
        outputs: [{ name: 'output', parameters: { classification: 2 } }],
      });
      expect(result.outputs).toHaveLength(1);
      expect(result.outputs[0]!.datatype).toBe('BYTES');
      expect(result.outputs[0]!.shape).toEqual([2, 2]);
      expect(result.outputs[0]!.data).toEqual(top2);
    }
  });

  it("labels a prepared-tensor request's classification with the config's label_filename", async () => {
    const x = Float32Array.of(0.5, -1, 2, 0.25);
    const y = unlabelled.predict(x).values;
    const best = [0, 1, 2].sort((a, b) => y[b]! - y[a]! || a - b)[0]!;
    const result = await grpcClient.infer({
      model: 'plain',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: x }],
      outputs: [{ name: 'output', parameters: { classification: 1 } }],
    });
    expect(result.outputs[0]!.data).toEqual([`${y[best]!.toFixed(6)}:${best}:${['cat', 'dog', 'bird'][best]}`]);
  });

  it('lists the raw inputs and the label output in ModelMetadata; the prepared input keeps working', async () => {
    const meta = await rest.modelMetadata('cars');
    expect(meta.inputs).toEqual([
      { name: 'input', datatype: 'FP32', shape: [-1, model.preparation!.width] },
      { name: 'weight', datatype: 'FP32', shape: [-1] },
      { name: 'cylinders', datatype: 'FP32', shape: [-1] },
      { name: 'origin', datatype: 'BYTES', shape: [-1] },
      { name: 'built', datatype: 'BYTES', shape: [-1] },
    ]);
    expect(meta.outputs).toEqual([
      { name: 'output', datatype: 'FP32', shape: [-1, 3] },
      { name: 'size', datatype: 'BYTES', shape: [-1] },
    ]);
    const x = model.preparation!.transform(records.slice(0, 1));
    const result = await grpcClient.infer({
      model: 'cars',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, x.length], data: x }],
    });
    expect(result.outputs.map((o) => o.name)).toEqual(['output']);
    expect(Array.from(result.outputs[0]!.data as Float32Array)).toEqual(Array.from(model.predict(x).values));
  });

  it('refuses records lacking a column or naming an unknown one, with coded errors; allow_missing fills', async () => {
    const { weight: _weight, ...noWeight } = records[0]!;
    for (const client of [rest, grpcClient]) {
      const missing = (await client
        .infer({ model: 'cars', records: [noWeight] })
        .catch((e: unknown) => e)) as InferenceServerError;
      expect(missing).toBeInstanceOf(InferenceServerError);
      expect(missing.code).toBe('MAAS_ERR_DATA_COLUMNS');
      expect(missing.message).toMatch(/Missing column 'weight'/);
      const unknown = (await client
        .infer({ model: 'cars', records: [{ ...records[0]!, wieght: 1 }] })
        .catch((e: unknown) => e)) as InferenceServerError;
      expect(unknown.code).toBe('MAAS_ERR_DATA_COLUMNS');
      const filled = await client.infer({ model: 'cars', records: [noWeight], parameters: { allow_missing: true } });
      expect(filled.outputs[1]!.data).toEqual(
        model.predictLabels([noWeight], { allowMissing: true, onWarning: 'ignore' }),
      );
    }
  });

  it('reads the pipeline when the weights come from the packed cache (the load opens no model file)', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'maas-records-cache-'));
    const expected = model.predictLabels(records);
    try {
      // The first server packs into the cache, the second maps from it: the logs say which happened.
      for (const round of ['written', 'hit']) {
        const { logger, records: logs } = memoryLogger();
        const cached = await startServer(repository, { packedCache: cache, httpPort: null, metricsPort: null, logger });
        const client = new GrpcInferenceClient(`127.0.0.1:${cached.grpcPort}`);
        try {
          expect(logs.some((r) => r.model === 'cars' && r.packedCache === round)).toBe(true);
          const result = await client.infer({ model: 'cars', records, outputs: ['size'] });
          expect([round, result.outputs[0]!.data]).toEqual([round, expected]);
        } finally {
          client.close();
          await cached.close();
        }
      }
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });

  it('answers malformed raw data with coded errors and keeps serving', async () => {
    const bad = async (body: object, model = 'cars') => {
      const response = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/${model}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as { error: string } };
    };
    expect(await bad({ records: [{ weight: { nested: 1 } }] })).toMatchObject({ status: 400 });
    expect(await bad({ records: [] })).toMatchObject({ status: 400 });
    expect(await bad({ records: Array.from({ length: 17 }, () => records[0]) })).toMatchObject({ status: 400 });
    expect(await bad({ records: [records[0]], inputs: [] })).toMatchObject({ status: 400 });
    expect(await bad({ records: [{ a: 1 }] }, 'plain')).toMatchObject({
      status: 400,
      body: { error: expect.stringMatching(/saved without a preparation pipeline/) as unknown },
    });
    // A BYTES column (REST binary data) whose length prefix runs past its bytes.
    const broken = serializeBytesTensor(['usa']);
    broken.writeUInt32LE(1000, 0);
    const header = Buffer.from(
      JSON.stringify({
        parameters: { content_type: 'pd' },
        inputs: [{ name: 'origin', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: broken.length } }],
      }),
    );
    const raw = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/cars/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      body: Buffer.concat([header, broken]),
    });
    expect(raw.status).toBe(400);
    expect(await raw.text()).toMatch(/element 0 claims 1000 bytes but 3 are left/);
    const stillUp = await rest.infer({ model: 'cars', records: records.slice(0, 1), outputs: ['size'] });
    expect(stillUp.outputs[0]!.data).toEqual(model.predictLabels(records.slice(0, 1)));
  });
});
