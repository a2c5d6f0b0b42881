/**
 * Serving imported models through the real server: a Keras .h5 and an ONNX dense chain copied
 * from the shared fixtures into a repository, and a Keras model fine-tuned with fit, then served.
 */
import { copyFile, mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/index.js';
import { adam, loadModel } from '../../src/index.js';
import { decodeTensor } from '../../src/io/onnx.js';
import { packageRoot } from '../../src/core/package-root.js';
import type { RunningServer } from '../../src/serving/server.js';
import { inputs, startServer, tempRepository } from './server-helpers.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures');
/** MANIFEST.md's suggested tolerance for the fixtures' expected outputs. */
const FIXTURE_TOL = 1e-5;
/** The server runs the same native kernels as predict in this process. */
const SAME_KERNEL_TOL = 1e-6;
const KERAS_CASE = {
  model: 'keras_h5/dl4j_simple_sparse_xent_mlp/simple_sparse_xent_mlp_keras_2_model.h5',
  expected: 'keras_h5/dl4j_simple_sparse_xent_mlp/expected.json',
};
const ONNX_CASE = 'onnx/hls4ml_three_layer_keras';

const opened: { server: RunningServer; client: GrpcInferenceClient }[] = [];
afterEach(async () => {
  for (const { server, client } of opened.splice(0)) {
    client.close();
    await server.close();
  }
});

async function open(root: string): Promise<GrpcInferenceClient> {
  const server = await startServer(root);
  const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  opened.push({ server, client });
  return client;
}

/** Copies a fixture file into `<root>/<name>/1/<file>`. */
async function place(root: string, name: string, source: string, file: string): Promise<void> {
  await mkdir(join(root, name, '1'), { recursive: true });
  await copyFile(join(FIXTURES, source), join(root, name, '1', file));
}

async function infer(
  client: GrpcInferenceClient,
  model: string,
  data: Float32Array,
  width: number,
): Promise<Float32Array> {
  const r = await client.infer({
    model,
    inputs: [{ name: 'input', datatype: 'FP32', shape: [data.length / width, width], data }],
  });
  return r.outputs[0]!.data as Float32Array;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  expect(Array.from(want).some((v) => v !== 0)).toBe(true);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `index ${i}`).toBeLessThanOrEqual(tol);
}

describe('imported models in a repository', () => {
  it('serves a Keras model.h5 and an ONNX model.onnx copied from the fixtures, matching their expected outputs', async () => {
    const root = await tempRepository();
    await place(root, 'keras', KERAS_CASE.model, 'model.h5');
    await place(root, 'onnx', `${ONNX_CASE}/model.onnx`, 'model.onnx');
    const client = await open(root);

    const expected = JSON.parse(await readFile(join(FIXTURES, KERAS_CASE.expected), 'utf8')) as {
      inputs: number[][];
      outputs: number[][];
    };
    const width = expected.inputs[0]!.length;
    expectClose(
      await infer(client, 'keras', Float32Array.from(expected.inputs.flat()), width),
      expected.outputs.flat(),
      FIXTURE_TOL,
    );

    const dir = join(FIXTURES, ONNX_CASE);
    const sets = (await readdir(dir)).filter((d) => d.startsWith('test_data_set_')).sort();
    expect(sets.length).toBe(4);
    for (const set of sets) {
      const x = decodeTensor(await readFile(join(dir, set, 'input_0.pb')));
      const y = decodeTensor(await readFile(join(dir, set, 'output_0.pb')));
      expectClose(await infer(client, 'onnx', x.values, x.dims[1]!), y.values, FIXTURE_TOL);
    }
  });

  it('serves a Keras model fine-tuned with fit: the loss drops and the server answers as its predict', async () => {
    const model = await loadModel(join(FIXTURES, 'keras_h5/dl4j_tfkeras_mlp/mlp_14.h5'));
    const width = model.inputShape![1],
      units = model.outputShape![1];
    // Targets the imported model does not already fit: a fixed mix of the inputs.
    const x = inputs(256, width, 5);
    const y = Float32Array.from({ length: 256 * units }, (_, k) => {
      const r = Math.floor(k / units),
        j = k % units;
      return 0.5 * x[r * width + (j % width)]! + 0.25 * j;
    });
    model.compile({ optimizer: adam({ learningRate: 0.01 }), loss: 'meanSquaredError' });
    const before = model.predict(x.slice(0, 8 * width)).values.slice();
    const history = await model.fit(x, y, { epochs: 8, batchSize: 32, verbose: 0 });
    const loss = history.history.loss!;
    expect(loss).toHaveLength(8);
    expect(loss[loss.length - 1]!).toBeLessThan(loss[0]! * 0.7);

    const root = await tempRepository();
    await mkdir(join(root, 'finetuned'), { recursive: true });
    await model.save(join(root, 'finetuned', '1'));
    const client = await open(root);
    const probe = inputs(8, width, 9);
    const want = model.predict(probe).values;
    expect(Array.from(want)).not.toEqual(Array.from(before));
    expectClose(await infer(client, 'finetuned', probe, width), want, SAME_KERNEL_TOL);
  });
});
