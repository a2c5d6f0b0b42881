/**
 * ONNX import: every float fixture case in test/fixtures/onnx reproduces its test_data_set
 * outputs, dense chains through loadModel and the other graphs through loadOnnxGraph; graphs
 * built here (dense stacks; broadcasting, softmax axes by opset, Flatten/Reshape) agree with
 * onnxruntime; the quantization operator fixtures reproduce exactly, every output; unsupported
 * ops are named.
 */
import { T, info, writeModel } from '../onnx-writer.js';
import { readFile, readdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { loadModel, loadOnnxGraph, initializers, dense, sequential } from '../../src/index.js';
import { decodeOnnxFile, decodeTensor, onnxTypes } from '../../src/io/onnx.js';
import { packageRoot } from '../../src/core/package-root.js';
import { buildDenseOnnx, createOrtSession, type DenseSpec } from '../../bench/peers/onnx.js';
import { errorOf } from '../helpers.js';

/** The fixtures' suggested tolerance (MANIFEST.md). */
const FIXTURE_TOL = 1e-5;
/** maas against onnxruntime on the same float32 weights. */
const ORT_TOL = 2e-5;
const ONNX_FIXTURES = join(packageRoot(), 'test', 'fixtures', 'onnx');

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
    model
      .predict(input.values)
      .values.forEach((v, i) => expect(Math.abs(v - output.values[i]!)).toBeLessThanOrEqual(FIXTURE_TOL));
  });

  for (const [test, weights] of [
    ['test_gemm_default_vector_bias', ['b', 'c']],
    ['test_gemm_default_no_bias', ['b']],
    ['test_gemm_transposeB', ['b', 'c']],
    ['test_matmul_2d', ['b']],
  ] as const) {
    it(`onnx_node/${test}: weights bound as constants reproduce the backend test's output`, async () => {
      const dir = join(ONNX_FIXTURES, 'onnx_node', test);
      const set = join(dir, 'test_data_set_0');
      const constants = Object.fromEntries(
        await Promise.all(
          weights.map(async (name, i) => [name, decodeTensor(await readFile(join(set, `input_${i + 1}.pb`)))] as const),
        ),
      );
      const model = await loadModel(join(dir, 'model.onnx'), { constants });
      const input = decodeTensor(await readFile(join(set, 'input_0.pb')));
      const output = decodeTensor(await readFile(join(set, 'output_0.pb')));
      model
        .predict(input.values)
        .values.forEach((v, i) => expect(Math.abs(v - output.values[i]!)).toBeLessThanOrEqual(FIXTURE_TOL));
    });
  }

  for (const op of ['gemm', 'matmul'] as const) {
    it(`a ${op} graph of every activation loads and matches onnxruntime`, async () => {
      const source = sequential({
        layers: [
          dense({
            units: 9,
            activation: 'leakyRelu',
            alpha: 0.1,
            inputShape: [6],
            kernelInitializer: initializers.glorotUniform({ seed: 1 }),
            biasInitializer: initializers.randomNormal({ seed: 2 }),
          }),
          dense({
            units: 7,
            activation: 'elu',
            alpha: 0.5,
            useBias: false,
            kernelInitializer: initializers.glorotUniform({ seed: 3 }),
          }),
          dense({ units: 5, activation: 'tanh', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
          dense({ units: 4, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: 5 }) }),
        ],
      });
      const w = source.getWeights();
      let i = 0;
      const specs: DenseSpec[] = source.layers.map((l) => ({
        in: l.inputDim!,
        out: l.units,
        weights: w[i++]!.values,
        bias: l.useBias ? w[i++]!.values : null,
        activation: l.activation,
        alpha: l.alpha,
      }));
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
    expect(await errorOf(() => loadModel(node))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: ONNX node '.*' \(MatMul\) is not supported: its input '.*' must be an initializer/,
    );
  });

  it('loadOnnxGraph refuses an op outside its set, naming the node and the op', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-onnx-op-'));
    const file = join(dir, 'conv.onnx');
    await writeFile(file, graphModel(13, [{ op: 'Conv', input: ['x', 'x'], output: 'y' }], { x: [1, 1, 3, 3] }, 'y'));
    expect(await errorOf(() => loadOnnxGraph(file))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: ONNX node 'y' \(Conv\) is not supported: maas evaluates only Gemm, MatMul/,
    );
  });

  it('loadOnnxGraph.run names a missing input and a data/shape mismatch', async () => {
    const graph = await loadOnnxGraph(join(ONNX_FIXTURES, 'onnx_node', 'test_add_bcast', 'model.onnx'));
    expect(graph.inputNames).toEqual(['x', 'y']);
    expect(await errorOf(async () => graph.run({ x: { data: new Float32Array(60), shape: [3, 4, 5] } }))).toMatch(
      /^MAAS_ERR_ARG_TYPE: Expected an object \{ data, shape \} for run\(inputs\['y'\]\) but received undefined/,
    );
    expect(
      await errorOf(async () =>
        graph.run({
          x: { data: new Float32Array(60), shape: [3, 4, 5] },
          y: { data: new Float32Array(4), shape: [5] },
        }),
      ),
    ).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH: Expected 5 values for shape \[5\] for run\(inputs\['y'\]\)\.data but received Float32Array of length 4/,
    );
  });
});

/** Dense chains load into a Sequential; the rest are graphs for loadOnnxGraph. */
const CHAINS = new Set([
  'hls4ml_three_layer_keras',
  'hls4ml_two_layer_keras',
  'onnx_pytorch_converted/test_Linear_no_bias',
  'onnx_node/test_gemm_default_vector_bias',
  'onnx_node/test_gemm_default_no_bias',
  'onnx_node/test_gemm_transposeB',
  'onnx_node/test_matmul_2d',
]);
/** The quantization operator cases: every output reproduced exactly by loadOnnxGraph (and by maas's kernels in quant-onnx.test.ts). */
const QUANT_CASES = [
  'matmulinteger',
  'qlinearmatmul_2D_uint8_float32',
  'qlinearmatmul_2D_int8_float32',
  'dynamicquantizelinear',
  'quantizelinear',
  'dequantizelinear',
].map((t) => `onnx_node/test_${t}`);

async function fixtureCases(): Promise<string[]> {
  const out: string[] = [];
  for (const group of await readdir(ONNX_FIXTURES)) {
    const entries = await readdir(join(ONNX_FIXTURES, group));
    if (entries.includes('model.onnx')) out.push(group);
    else out.push(...entries.map((e) => `${group}/${e}`));
  }
  return out.sort();
}

describe('every ONNX fixture case', async () => {
  const cases = await fixtureCases();
  it('is listed here as a chain, a graph or a quantization case (none is skipped silently)', () => {
    expect(cases.length).toBe(25);
    expect(QUANT_CASES.every((c) => cases.includes(c))).toBe(true);
  });
  for (const fixture of cases) {
    const chain = CHAINS.has(fixture);
    const quant = QUANT_CASES.includes(fixture);
    it(`${fixture} reproduces every test_data_set through ${chain ? 'loadModel' : 'loadOnnxGraph'}`, async () => {
      const dir = join(ONNX_FIXTURES, fixture);
      const proto = await decodeOnnxFile(join(dir, 'model.onnx'));
      const init = new Set((proto.graph!.initializer ?? []).map((t) => t.name));
      const names = proto.graph!.input!.map((i) => i.name).filter((n) => !init.has(n));
      const sets = (await readdir(dir)).filter((d) => d.startsWith('test_data_set_'));
      expect(sets.length).toBeGreaterThan(0);
      for (const set of sets) {
        const xs = await Promise.all(
          names.map(async (_, i) => decodeTensor(await readFile(join(dir, set, `input_${i}.pb`)))),
        );
        const outputs = proto.graph!.output!.map((o) => o.name);
        const wants = await Promise.all(
          outputs.map(async (_, i) => decodeTensor(await readFile(join(dir, set, `output_${i}.pb`)))),
        );
        const want = wants[0]!;
        expect(want.values.some((v) => v !== 0)).toBe(true);
        let got: ArrayLike<number>;
        if (chain) {
          const constants = Object.fromEntries(names.slice(1).map((n, i) => [n, xs[i + 1]!]));
          got = (await loadModel(join(dir, 'model.onnx'), { constants })).predict(xs[0]!.values).values;
        } else {
          await expect(loadModel(join(dir, 'model.onnx'))).rejects.toMatchObject({ code: 'MAAS_ERR_MODEL_FORMAT' });
          const graph = await loadOnnxGraph(join(dir, 'model.onnx'));
          const out = graph.run(
            Object.fromEntries(names.map((n, i) => [n, { data: xs[i]!.values, shape: xs[i]!.dims }])),
          );
          expect(out[graph.outputNames[0]!]!.shape).toEqual(want.dims);
          got = out[graph.outputNames[0]!]!.data;
          // Every further output (DynamicQuantizeLinear's scale and zero point) exactly.
          outputs
            .slice(1)
            .forEach((name, i) => expect(Array.from(out[name]!.data)).toEqual(Array.from(wants[i + 1]!.values)));
        }
        expect(got.length).toBe(want.values.length);
        if (quant) expect(Array.from(got), set).toEqual(Array.from(want.values));
        for (let i = 0; i < got.length; i++)
          expect(Math.abs(got[i]! - want.values[i]!), `${set} index ${i}`).toBeLessThanOrEqual(FIXTURE_TOL);
      }
    });
  }
});

/** A one-graph model (float inputs of the given shapes, int64 initializers), through the tests' ONNX writer. */
function graphModel(
  opset: number,
  nodes: { op: string; input: string[]; output: string; attrs?: Record<string, number | number[]> }[],
  inputs: Record<string, number[]>,
  output: string,
  initializer: { name: string; dims: number[]; int64: number[] }[] = [],
): Uint8Array {
  return writeModel({
    opset,
    nodes,
    initializers: initializer.map((t) => ({ name: t.name, type: T.INT64, dims: t.dims, values: t.int64 })),
    inputs: Object.entries(inputs).map(([n, d]) => info(n, T.FLOAT, d)),
    outputs: [info(output, T.FLOAT)],
  });
}

/** Seeded values in (-2, 2): never all zero. */
const values = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => 2 * Math.sin(seed * 7.1 + i * 1.3));

describe('loadOnnxGraph against onnxruntime on graphs built here', () => {
  const graphs: [string, Parameters<typeof graphModel>][] = [
    [
      'Softmax axis 1 of a rank-3 tensor, opset 11 (flattens at the axis)',
      [11, [{ op: 'Softmax', input: ['x'], output: 'y', attrs: { axis: 1 } }], { x: [2, 3, 4] }, 'y'],
    ],
    [
      'Softmax axis 1 of a rank-3 tensor, opset 13 (along the axis)',
      [13, [{ op: 'Softmax', input: ['x'], output: 'y', attrs: { axis: 1 } }], { x: [2, 3, 4] }, 'y'],
    ],
    [
      'Softmax default axis, opset 11 (1) and rank 3',
      [11, [{ op: 'Softmax', input: ['x'], output: 'y' }], { x: [2, 3, 4] }, 'y'],
    ],
    [
      'MatMul of a vector by a batch of matrices, then by a vector',
      [
        13,
        [
          { op: 'MatMul', input: ['v', 'm'], output: 'h' },
          { op: 'MatMul', input: ['h', 'w'], output: 'y' },
        ],
        { v: [4], m: [2, 4, 3], w: [3] },
        'y',
      ],
    ],
    [
      'Gemm transA, transB, alpha, beta with a [M,1] C',
      [
        13,
        [{ op: 'Gemm', input: ['a', 'b', 'c'], output: 'y', attrs: { transA: 1, transB: 1, alpha: 0.5, beta: -1.5 } }],
        { a: [5, 3], b: [4, 5], c: [3, 1] },
        'y',
      ],
    ],
    [
      'Add broadcasting both ways, Flatten axis 2, Reshape with 0 and -1, Tanh',
      [
        13,
        [
          { op: 'Add', input: ['a', 'b'], output: 's' },
          { op: 'Flatten', input: ['s'], output: 'f', attrs: { axis: 2 } },
          { op: 'Reshape', input: ['f', 'shape'], output: 'r' },
          { op: 'Tanh', input: ['r'], output: 'y' },
        ],
        { a: [2, 1, 4, 1], b: [3, 1, 5] },
        'y',
        [{ name: 'shape', dims: [3], int64: [0, -1, 4] }],
      ],
    ],
  ];
  for (const [name, args] of graphs) {
    it(name, async () => {
      const bytes = graphModel(...args);
      const dir = await mkdtemp(join(tmpdir(), 'maas-graph-'));
      await writeFile(join(dir, 'g.onnx'), bytes);
      const graph = await loadOnnxGraph(join(dir, 'g.onnx'));
      const feeds = Object.fromEntries(
        Object.entries(args[2]).map(([n, dims], i) => [
          n,
          {
            data: values(
              dims.reduce((a, b) => a * b, 1),
              i + 1,
            ),
            shape: dims,
          },
        ]),
      );
      const session = await InferenceSession.create(bytes);
      const want = (
        await session.run(
          Object.fromEntries(Object.entries(feeds).map(([n, f]) => [n, new OrtTensor('float32', f.data, f.shape)])),
        )
      )[args[3]]!;
      await session.release();
      const got = graph.run(feeds)[args[3]]!;
      expect(got.shape).toEqual(want.dims);
      const w = want.data as Float32Array;
      got.data.forEach((v, i) => expect(Math.abs(v - w[i]!), `index ${i}`).toBeLessThanOrEqual(ORT_TOL));
    });
  }
});

describe('loadOnnxGraph in float64', () => {
  it('keeps a double graph in float64 (a value float32 would round survives)', async () => {
    const type = onnxTypes().model;
    const info = (name: string) => ({
      name,
      type: { tensor_type: { elem_type: 11, shape: { dim: [{ dim_value: 1 }, { dim_value: 2 }] } } },
    });
    const bias = new Float64Array([1 + 2 ** -40, -3]);
    const bytes = type
      .encode(
        type.fromObject({
          ir_version: 7,
          opset_import: [{ domain: '', version: 13 }],
          graph: {
            name: 'd',
            node: [{ op_type: 'Add', name: 'add', input: ['x', 'b'], output: ['y'] }],
            initializer: [{ name: 'b', data_type: 11, dims: [2], raw_data: new Uint8Array(bias.buffer) }],
            input: [info('x')],
            output: [info('y')],
          },
        }),
      )
      .finish();
    const dir = await mkdtemp(join(tmpdir(), 'maas-graph-'));
    await writeFile(join(dir, 'd.onnx'), bytes);
    const out = (await loadOnnxGraph(join(dir, 'd.onnx'))).run({ x: { data: [0, 0.5], shape: [1, 2] } }).y!;
    expect(out.data).toBeInstanceOf(Float64Array);
    expect(Array.from(out.data)).toEqual([1 + 2 ** -40, -2.5]);
  });
});
