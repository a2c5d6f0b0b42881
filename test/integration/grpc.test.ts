/**
 * The gRPC endpoint through the real client: every RPC, every input representation and
 * datatype, hundreds of requests in flight checked against predict(), streaming, and bad inputs
 * answered with the right status and message while the server stays up.
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../src/protocol/limits.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { GrpcInferenceClient, InferenceServerError } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';
import type { Sequential } from '../../src/index.js';

const WIDTH = 12;
const CLASSES = 3;
let server: RunningServer;
let client: GrpcInferenceClient;
let model: Sequential;

function expected(x: Float32Array): Float32Array {
  return model.predict(x.slice()).values;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

async function failure(promise: Promise<unknown>): Promise<InferenceServerError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InferenceServerError);
  return error as InferenceServerError;
}

beforeAll(async () => {
  const root = await tempRepository();
  model = smallModel(WIDTH, CLASSES, 11);
  await addVersion(root, 'mlp', 1, model, {
    max_batch_size: 32,
    input: [{ name: 'features', data_type: 'TYPE_FP32', dims: [WIDTH] }],
    output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [CLASSES] }],
    dynamic_batching: { max_queue_delay_microseconds: 200 },
    parameters: { convert_input_datatypes: { string_value: 'true' } },
  });
  await addVersion(root, 'nobatch', 1, smallModel(WIDTH, 1, 5), { max_batch_size: 0 });
  server = await startServer(root);
  client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const request = (x: Float32Array, rows: number, extra: object = {}) => ({
  model: 'mlp',
  inputs: [{ name: 'features', datatype: 'FP32', shape: [rows, WIDTH], data: x }],
  ...extra,
});

describe('gRPC: health and metadata', () => {
  it('answers ServerLive, ServerReady, ModelReady and ServerMetadata', async () => {
    expect(await client.serverLive()).toBe(true);
    expect(await client.serverReady()).toBe(true);
    expect(await client.modelReady('mlp')).toBe(true);
    expect(await client.modelReady('mlp', '1')).toBe(true);
    const meta = await client.serverMetadata();
    expect(meta.name).toBe('maas');
    expect(meta.extensions).toEqual([
      'model_repository',
      'model_configuration',
      'schedule_policy',
      'binary_tensor_data',
      'parameters',
      'statistics',
      'explain',
      'model_card',
      'update',
      'federated',
    ]);
  });

  it('answers ModelMetadata and ModelConfig from config.json', async () => {
    expect(await client.modelMetadata('mlp')).toEqual({
      name: 'mlp',
      versions: ['1'],
      platform: 'maas_dense',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, WIDTH] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, CLASSES] }],
    });
    const config = await client.modelConfig('mlp', '1');
    expect(config).toMatchObject({
      name: 'mlp',
      max_batch_size: 32,
      backend: 'maas',
      input: [{ name: 'features', data_type: 'TYPE_FP32', dims: [WIDTH] }],
    });
    expect(config.dynamic_batching).toMatchObject({ max_queue_delay_microseconds: 200 });
    expect(config.version_policy).toMatchObject({ latest: { num_versions: 1 } });
  });

  it('lists the repository', async () => {
    expect(await client.repositoryIndex()).toEqual([
      { name: 'mlp', version: '1', state: 'READY', reason: '' },
      { name: 'nobatch', version: '1', state: 'READY', reason: '' },
    ]);
  });
});

describe('gRPC: ModelInfer', () => {
  it('answers raw FP32 inputs in raw_output_contents, echoing the id', async () => {
    const x = inputs(5, WIDTH, 1);
    const result = await client.infer(request(x, 5, { id: 'req-42' }));
    expect(result).toMatchObject({ model: 'mlp', version: '1', id: 'req-42' });
    expect(result.outputs[0]).toMatchObject({ name: 'probabilities', datatype: 'FP32', shape: [5, CLASSES] });
    expect(maxDiff(result.outputs[0]!.data as Float32Array, expected(x))).toBeLessThanOrEqual(1e-6);
  });

  it('takes typed contents and every numeric datatype, converted to FP32', async () => {
    const ints = Array.from({ length: 2 * WIDTH }, (_, i) => (i % 7) - 3);
    const want = expected(Float32Array.from(ints));
    const cases: [string, ArrayLike<number | bigint>][] = [
      ['FP64', Float64Array.from(ints)],
      ['INT8', Int8Array.from(ints)],
      ['INT16', Int16Array.from(ints)],
      ['INT32', Int32Array.from(ints)],
      ['INT64', BigInt64Array.from(ints, BigInt)],
    ];
    for (const typed of [false, true]) {
      for (const [datatype, data] of cases) {
        const r = await client.infer({
          model: 'mlp',
          typed,
          inputs: [{ name: 'features', datatype, shape: [2, WIDTH], data: data as Float64Array }],
        });
        expect(maxDiff(r.outputs[0]!.data as Float32Array, want), `${datatype} typed=${typed}`).toBeLessThanOrEqual(
          1e-6,
        );
      }
    }
    const positive = ints.map((v) => v + 3);
    const wantPositive = expected(Float32Array.from(positive));
    for (const [datatype, data] of [
      ['UINT8', Uint8Array.from(positive)],
      ['UINT16', Uint16Array.from(positive)],
      ['UINT32', Uint32Array.from(positive)],
      ['UINT64', BigUint64Array.from(positive, BigInt)],
    ] as const) {
      const r = await client.infer({ model: 'mlp', inputs: [{ name: 'features', datatype, shape: [2, WIDTH], data }] });
      expect(maxDiff(r.outputs[0]!.data as Float32Array, wantPositive), datatype).toBeLessThanOrEqual(1e-6);
    }
    const bools = positive.map((v) => v % 2 === 1);
    const r = await client.infer({
      model: 'mlp',
      typed: true,
      inputs: [{ name: 'features', datatype: 'BOOL', shape: [2, WIDTH], data: bools }],
    });
    expect(maxDiff(r.outputs[0]!.data as Float32Array, expected(Float32Array.from(bools, Number)))).toBeLessThanOrEqual(
      1e-6,
    );
  });

  it('takes FP16 and BF16 as raw bit patterns', async () => {
    // 1.5 = 0x3e00 in float16 and 0x3fc0 in bfloat16; -0.25 = 0xb400 / 0xbe80
    const pattern = (a: number, b: number) => Uint16Array.from({ length: WIDTH }, (_, i) => (i % 2 ? a : b));
    const want = expected(Float32Array.from({ length: WIDTH }, (_, i) => (i % 2 ? -0.25 : 1.5)));
    for (const [datatype, data] of [
      ['FP16', pattern(0xb400, 0x3e00)],
      ['BF16', pattern(0xbe80, 0x3fc0)],
    ] as const) {
      const r = await client.infer({ model: 'mlp', inputs: [{ name: 'features', datatype, shape: [1, WIDTH], data }] });
      expect(maxDiff(r.outputs[0]!.data as Float32Array, want), datatype).toBeLessThanOrEqual(1e-6);
    }
  });

  it('filters to the requested output, and refuses one the model lacks', async () => {
    const x = inputs(1, WIDTH, 2);
    const r = await client.infer(request(x, 1, { outputs: ['probabilities'] }));
    expect(r.outputs.map((o) => o.name)).toEqual(['probabilities']);
    const e = await failure(client.infer(request(x, 1, { outputs: ['logits'] })));
    expect(e.status).toBe(status.INVALID_ARGUMENT);
    expect(e.message).toBe("unexpected inference output 'logits' for model 'mlp', allowed outputs are: probabilities");
  });

  it('serves a model without a batch dimension from a flat shape', async () => {
    const x = inputs(1, WIDTH, 3);
    const r = await client.infer({
      model: 'nobatch',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [WIDTH], data: x }],
    });
    expect(r.outputs[0]!.shape).toEqual([1]);
  });

  it('keeps 400 requests in flight and answers each one correctly', async () => {
    const jobs = Array.from({ length: 400 }, (_, i) => {
      const rows = 1 + (i % 4);
      const x = inputs(rows, WIDTH, 100 + i);
      return client.infer(request(x, rows, { id: `r${i}` })).then((r) => ({ r, x, i }));
    });
    for (const { r, x, i } of await Promise.all(jobs)) {
      expect(r.id).toBe(`r${i}`);
      expect(maxDiff(r.outputs[0]!.data as Float32Array, expected(x))).toBeLessThanOrEqual(1e-6);
    }
    const [stats] = await client.modelStatistics('mlp', '1');
    expect(stats!.execution_count).toBeLessThan(stats!.inference_stats.success.count); // requests were batched
    expect(stats!.batch_stats.some((b: { batch_size: number }) => b.batch_size > 4)).toBe(true);
    for (const b of stats!.batch_stats as {
      compute_input: { count: number };
      compute_infer: { count: number };
      compute_output: { count: number };
    }[]) {
      expect(b.compute_input.count).toBe(b.compute_infer.count); // every execution times all three phases
      expect(b.compute_output.count).toBe(b.compute_infer.count);
    }
  });
});

describe('gRPC: ModelStreamInfer', () => {
  it('answers every request on the stream, and reports errors as messages without ending it', async () => {
    const stream = client.openStream();
    const xs = Array.from({ length: 50 }, (_, i) => inputs(1, WIDTH, 500 + i));
    const answers = xs.map((x) => stream.send(request(x, 1)));
    const bad = stream
      .send({
        model: 'mlp',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, WIDTH + 1], data: new Float32Array(WIDTH + 1) }],
      })
      .then(
        () => null,
        (e: Error) => e,
      );
    const after = stream.send(request(xs[0]!, 1));
    const results = await Promise.all(answers);
    results.forEach((r, i) =>
      expect(maxDiff(r.outputs[0]!.data as Float32Array, expected(xs[i]!))).toBeLessThanOrEqual(1e-6),
    );
    expect((await bad)?.message).toMatch(/unexpected shape for input 'features'/);
    await after;
    stream.end();
  });
});

describe('gRPC: bad requests get a clear status and the server stays up', () => {
  const x = new Float32Array(WIDTH);
  const cases: [string, object, number, RegExp][] = [
    [
      'unknown model',
      { model: 'nope', inputs: [] },
      status.INVALID_ARGUMENT,
      /^Request for unknown model: 'nope' is not found$/,
    ],
    [
      'a 200 KB model name, clipped in the status message instead of passing the header limit',
      { model: 'n'.repeat(200_000), inputs: [] },
      status.INVALID_ARGUMENT,
      /^Request for unknown model: 'n{4000,}…$/,
    ],
    [
      'unknown version',
      { model: 'mlp', version: '9', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, WIDTH], data: x }] },
      status.INVALID_ARGUMENT,
      /^Request for unknown model: 'mlp' version 9 is not found$/,
    ],
    [
      'wrong input name',
      { model: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, WIDTH], data: x }] },
      status.INVALID_ARGUMENT,
      /unexpected inference input 'x' for model 'mlp', allowed inputs are: features/,
    ],
    [
      'wrong shape',
      { model: 'mlp', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, WIDTH - 1], data: x.subarray(1) }] },
      status.INVALID_ARGUMENT,
      /Expected \[-1,12\] with a batch of 1 to 32, got \[1,11\]/,
    ],
    [
      'batch above max_batch_size',
      {
        model: 'mlp',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [33, WIDTH], data: new Float32Array(33 * WIDTH) }],
      },
      status.INVALID_ARGUMENT,
      /batch of 1 to 32, got \[33,12\]/,
    ],
    [
      'byte size',
      { model: 'mlp', inputs: [{ name: 'features', datatype: 'FP32', shape: [2, WIDTH], data: x }] },
      status.INVALID_ARGUMENT,
      /unexpected total byte size 48 for input 'features', expecting 96/,
    ],
    [
      'no inputs',
      { model: 'mlp', inputs: [] },
      status.INVALID_ARGUMENT,
      /expected 1 inputs but got 0 inputs for model 'mlp'/,
    ],
    [
      'bad priority',
      {
        model: 'mlp',
        parameters: { priority: 5 },
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, WIDTH], data: x }],
      },
      status.INVALID_ARGUMENT,
      /priority/,
    ],
  ];
  for (const [what, req, code, message] of cases) {
    it(what, async () => {
      const e = await failure(client.infer(req as never));
      expect(e.status).toBe(code);
      expect(e.message).toMatch(message);
      expect(e.code).toMatch(/^MAAS_ERR_/);
    });
  }

  it('refuses a message above the 64 MiB default limit with RESOURCE_EXHAUSTED (grpc-js, before decoding)', async () => {
    const big = new Float32Array(DEFAULT_MAX_MESSAGE_BYTES / 4 + 1);
    const e = await failure(
      client.infer({
        model: 'mlp',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, big.length], data: big }],
      }),
    );
    expect(e.status).toBe(status.RESOURCE_EXHAUSTED);
    expect(e.message).toMatch(
      new RegExp(`^Received message larger than max \\(\\d+ vs ${DEFAULT_MAX_MESSAGE_BYTES}\\)$`),
    );
  });

  it('refuses raw and typed contents together, and typed contents in the wrong field', async () => {
    const raw = await failure(
      (client as unknown as { call: (m: string, r: object) => Promise<unknown> }).call('ModelInfer', {
        model_name: 'mlp',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, WIDTH], contents: { fp32_contents: Array.from(x) } }],
        raw_input_contents: [Buffer.from(x.buffer)],
      }),
    );
    expect(raw.message).toMatch(/both raw_input_contents and typed contents/);
    const field = await failure(
      (client as unknown as { call: (m: string, r: object) => Promise<unknown> }).call('ModelInfer', {
        model_name: 'mlp',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, WIDTH], contents: { int_contents: Array.from(x) } }],
      }),
    );
    expect(field.message).toMatch(/Expected FP32 data in fp32_contents for input 'features' but received int_contents/);
    const bytes = await failure(
      (client as unknown as { call: (m: string, r: object) => Promise<unknown> }).call('ModelInfer', {
        model_name: 'mlp',
        inputs: [
          { name: 'features', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from('hello')] } },
        ],
      }),
    );
    expect(bytes.status).toBe(status.INVALID_ARGUMENT);
    const bytesShaped = await failure(
      (client as unknown as { call: (m: string, r: object) => Promise<unknown> }).call('ModelInfer', {
        model_name: 'mlp',
        inputs: [
          {
            name: 'features',
            datatype: 'BYTES',
            shape: [1, WIDTH],
            contents: { bytes_contents: Array.from({ length: WIDTH }, () => Buffer.from('x')) },
          },
        ],
      }),
    );
    expect(bytesShaped.status).toBe(status.INVALID_ARGUMENT);
    expect(bytesShaped.message).toBe(
      "unexpected datatype TYPE_STRING for inference input 'features', expecting TYPE_FP32",
    );
  });

  it("refuses a datatype other than the model's unless its config opts in to conversion, as Triton does", async () => {
    const ints = await failure(
      client.infer({
        model: 'nobatch',
        inputs: [{ name: 'input', datatype: 'INT32', shape: [1, WIDTH], data: new Int32Array(WIDTH) }],
      }),
    );
    expect(ints.status).toBe(status.INVALID_ARGUMENT);
    expect(ints.message).toBe("unexpected datatype TYPE_INT32 for inference input 'input', expecting TYPE_FP32");
    expect(ints.code).toBe('MAAS_ERR_INFER_DATATYPE');
    // 'constructor' and 'toString' are inherited names of a plain object: the tables must not find them.
    for (const [model, datatype] of [
      ['nobatch', 'FP33'],
      ['mlp', 'FP33'],
      ['mlp', 'constructor'],
      ['mlp', 'toString'],
    ] as const) {
      const unknown = await failure(
        (client as unknown as { call: (m: string, r: object) => Promise<unknown> }).call('ModelInfer', {
          model_name: model,
          inputs: [{ name: model === 'mlp' ? 'features' : 'input', datatype, shape: [1, WIDTH], contents: {} }],
          raw_input_contents: [Buffer.alloc(4 * WIDTH)],
        }),
      );
      expect(unknown.status).toBe(status.INVALID_ARGUMENT);
      expect(unknown.message).toBe(
        `unknown datatype '${datatype}' for inference input '${model === 'mlp' ? 'features' : 'input'}', expecting FP32`,
      );
    }
  });

  it('refuses load and unload outside explicit mode, with UNAVAILABLE', async () => {
    const e = await failure(client.loadModel('mlp'));
    expect(e.status).toBe(status.UNAVAILABLE);
    expect(e.message).toMatch(/explicit/);
  });

  it('answers a bad request with INVALID_ARGUMENT, counts it as a failure, and serves the next one', async () => {
    const [before] = await client.modelStatistics('mlp');
    const bad = await failure(client.infer(request(inputs(2, WIDTH - 1, 8), 2)));
    expect(bad.status).toBe(status.INVALID_ARGUMENT);
    const x2 = inputs(3, WIDTH, 9);
    const r = await client.infer(request(x2, 3));
    expect(maxDiff(r.outputs[0]!.data as Float32Array, expected(x2))).toBeLessThanOrEqual(1e-6);
    const [after] = await client.modelStatistics('mlp');
    expect(after!.inference_stats.fail.count - before!.inference_stats.fail.count).toBe(1);
    expect(after!.inference_stats.success.count - before!.inference_stats.success.count).toBe(1);
  });
});
