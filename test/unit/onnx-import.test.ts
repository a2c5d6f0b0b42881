/**
 * ONNX import: the hls4ml Keras→ONNX fixtures (MatMul+Add chains with Relu, Sigmoid, Softmax,
 * opset 9) reproduce their test_data_set outputs; graphs built here with Gemm (transB, alpha,
 * beta) and with MatMul+Add load and agree with onnxruntime; unsupported ops are named.
 */
import { readFile, readdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel, initializers, dense, sequential } from '../../src/index.js';
import { decodeTensor } from '../../src/io/onnx.js';
import { packageRoot } from '../../src/native/index.js';
import { buildDenseOnnx, createOrtSession, type DenseSpec } from '../../bench/peers/onnx.js';
import { errorOf } from '../helpers.js';

/** The fixtures' suggested tolerance (MANIFEST.md). */
const FIXTURE_TOL = 1e-5;
/** maas against onnxruntime on the same float32 weights. */
const ORT_TOL = 2e-5;
const ONNX_FIXTURES = join(packageRoot(), '..', 'shared', 'fixtures', 'onnx');

describe('ONNX import', () => {
  for (const name of ['hls4ml_three_layer_keras', 'hls4ml_two_layer_keras']) {
    it(`${name} reproduces every test_data_set`, async () => {
      const model = await loadModel(join(ONNX_FIXTURES, name, 'model.onnx'));
      const sets = (await readdir(join(ONNX_FIXTURES, name))).filter((d) => d.startsWith('test_data_set_'));
      expect(sets.length).toBeGreaterThan(0);
      for (const set of sets) {
        const input = decodeTensor(await readFile(join(ONNX_FIXTURES, name, set, 'input_0.pb')));
        const output = decodeTensor(await readFile(join(ONNX_FIXTURES, name, set, 'output_0.pb')));
        const got = model.predict(input.values).values;
        expect(got.length).toBe(output.values.length);
        got.forEach((v, i) => expect(Math.abs(v - output.values[i]!)).toBeLessThanOrEqual(FIXTURE_TOL));
      }
    });
  }

  it('onnx_pytorch_converted/test_Linear_no_bias: Transpose(weight) > MatMul reproduces its output', async () => {
    const dir = join(ONNX_FIXTURES, 'onnx_pytorch_converted', 'test_Linear_no_bias');
    const model = await loadModel(join(dir, 'model.onnx'));
    const input = decodeTensor(await readFile(join(dir, 'test_data_set_0', 'input_0.pb')));
    const output = decodeTensor(await readFile(join(dir, 'test_data_set_0', 'output_0.pb')));
    model.predict(input.values).values.forEach((v, i) => expect(Math.abs(v - output.values[i]!)).toBeLessThanOrEqual(FIXTURE_TOL));
  });

  for (const [test, weights] of [['test_gemm_default_vector_bias', ['b', 'c']], ['test_gemm_default_no_bias', ['b']], ['test_gemm_transposeB', ['b', 'c']], ['test_matmul_2d', ['b']]] as const) {
    it(`onnx_node/${test}: weights bound as constants reproduce the backend test's output`, async () => {
      const dir = join(ONNX_FIXTURES, 'onnx_node', test);
      const set = join(dir, 'test_data_set_0');
      const constants = Object.fromEntries(await Promise.all(weights.map(async (name, i) => [name, decodeTensor(await readFile(join(set, `input_${i + 1}.pb`)))] as const)));
      const model = await loadModel(join(dir, 'model.onnx'), { constants });
      const input = decodeTensor(await readFile(join(set, 'input_0.pb')));
      const output = decodeTensor(await readFile(join(set, 'output_0.pb')));
      model.predict(input.values).values.forEach((v, i) => expect(Math.abs(v - output.values[i]!)).toBeLessThanOrEqual(FIXTURE_TOL));
    });
  }

  for (const op of ['gemm', 'matmul'] as const) {
    it(`a ${op} graph of every activation loads and matches onnxruntime`, async () => {
      const source = sequential({
        layers: [
          dense({ units: 9, activation: 'leakyRelu', alpha: 0.1, inputShape: [6], kernelInitializer: initializers.glorotUniform({ seed: 1 }), biasInitializer: initializers.randomNormal({ seed: 2 }) }),
          dense({ units: 7, activation: 'elu', alpha: 0.5, useBias: false, kernelInitializer: initializers.glorotUniform({ seed: 3 }) }),
          dense({ units: 5, activation: 'tanh', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
          dense({ units: 4, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: 5 }) }),
        ],
      });
      const w = source.getWeights();
      let i = 0;
      const specs: DenseSpec[] = source.layers.map((l) => ({ in: l.inputDim!, out: l.units, weights: w[i++]!.values, bias: l.useBias ? w[i++]!.values : null, activation: l.activation, alpha: l.alpha }));
      const bytes = buildDenseOnnx(specs, { op });
      const dir = await mkdtemp(join(tmpdir(), 'maas-onnx-'));
      await writeFile(join(dir, 'model.onnx'), bytes);
      const model = await loadModel(dir);
      expect(model.layers.map((l) => l.activation)).toEqual(['leakyRelu', 'elu', 'tanh', 'softmax']);
      const x = Float32Array.from({ length: 3 * 6 }, (_, k) => Math.cos(k));
      const ort = await createOrtSession(bytes, 1);
      const want = await ort.run(x, 3);
      await ort.release();
      model.predict(x).values.forEach((v, k) => expect(Math.abs(v - want[k]!)).toBeLessThanOrEqual(ORT_TOL));
    });
  }

  it('refuses an op it cannot run, naming the node and the op', async () => {
    const node = join(ONNX_FIXTURES, 'onnx_node', 'test_matmul_bcast', 'model.onnx');
    expect(await errorOf(() => loadModel(node))).toMatch(/^MAAS_ERR_MODEL_FORMAT: ONNX node '.*' \(MatMul\) is not supported: its input '.*' must be an initializer/);
  });
});
