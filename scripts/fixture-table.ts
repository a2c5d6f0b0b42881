/**
 * Prints the formats × cases table for test/fixtures: how each case loads (loadModel or
 * loadOnnxGraph), its max error against the expected outputs, the tolerance, and pass/fail.
 */
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadModel, loadOnnxGraph } from '../src/index.js';
import { decodeOnnxFile, decodeTensor } from '../src/io/onnx.js';
import { packageRoot } from '../src/core/package-root.js';

const ROOT = join(packageRoot(), 'test', 'fixtures');
const TOL = 1e-5;
/** Quantization operator cases: reproduced exactly by test/unit/quant-onnx.test.ts with src/quant/arith.ts. */
const QUANT = new Set([
  'test_matmulinteger',
  'test_qlinearmatmul_2D_uint8_float32',
  'test_qlinearmatmul_2D_int8_float32',
  'test_dynamicquantizelinear',
  'test_quantizelinear',
  'test_dequantizelinear',
]);

type Row = {
  format: string;
  fixture: string;
  how: string;
  maxErr: number | null;
  tol: number;
  pass: boolean | null;
  note?: string;
};
const rows: Row[] = [];

/** An expected.json: input rows, output rows, and optionally the origin's suggested tolerance. */
interface ExpectedCase {
  inputs: number[][];
  outputs: number[][];
  suggested_tolerance?: number;
}

const maxErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  if (got.length !== want.length) return Infinity;
  let m = 0;
  for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i]! - want[i]!));
  return m;
};

async function jsonCase(format: string, model: string, expected: string, architecture?: string): Promise<void> {
  const e = JSON.parse(await readFile(join(ROOT, expected), 'utf8')) as ExpectedCase;
  const tol = e.suggested_tolerance ?? TOL;
  try {
    const m = await loadModel(join(ROOT, model), architecture ? { architecture: join(ROOT, architecture) } : {});
    const err = maxErr(m.predict(e.inputs).values, e.outputs.flat());
    rows.push({ format, fixture: model, how: 'loadModel', maxErr: err, tol, pass: err <= tol });
  } catch (error) {
    rows.push({
      format,
      fixture: model,
      how: 'refused',
      maxErr: null,
      tol,
      pass: false,
      note: (error as Error).message,
    });
  }
}

async function onnxCase(dir: string): Promise<void> {
  const fixture = relative(ROOT, dir);
  const name = dir.split('/').pop()!;
  if (QUANT.has(name)) {
    rows.push({
      format: 'onnx',
      fixture,
      how: 'quant arithmetic (quant-onnx.test.ts)',
      maxErr: null,
      tol: 0,
      pass: null,
    });
    return;
  }
  const proto = await decodeOnnxFile(join(dir, 'model.onnx'));
  const init = new Set((proto.graph?.initializer ?? []).map((t) => t.name));
  const inputs = (proto.graph?.input ?? []).map((i) => i.name).filter((n) => !init.has(n));
  for (const set of (await readdir(dir)).filter((d) => d.startsWith('test_data_set_')).sort()) {
    const read = async (f: string) => decodeTensor(await readFile(join(dir, set, f)));
    const xs = await Promise.all(inputs.map((_, i) => read(`input_${i}.pb`)));
    const want = await read('output_0.pb');
    const label = `${fixture}/${set}`;
    const constants = Object.fromEntries(inputs.slice(1).map((n, i) => [n, xs[i + 1]!]));
    try {
      const m = await loadModel(join(dir, 'model.onnx'), { constants });
      const err = maxErr(m.predict(xs[0]!.values).values, want.values);
      rows.push({ format: 'onnx', fixture: label, how: 'loadModel', maxErr: err, tol: TOL, pass: err <= TOL });
      continue;
    } catch (error) {
      if (!(error as { code?: string }).code) throw error;
    }
    try {
      const g = await loadOnnxGraph(join(dir, 'model.onnx'));
      const out = g.run(Object.fromEntries(inputs.map((n, i) => [n, { data: xs[i]!.values, shape: xs[i]!.dims }])));
      const err = maxErr(out[g.outputNames[0]!]!.data, want.values);
      rows.push({ format: 'onnx', fixture: label, how: 'loadOnnxGraph', maxErr: err, tol: TOL, pass: err <= TOL });
    } catch (error) {
      rows.push({
        format: 'onnx',
        fixture: label,
        how: 'refused',
        maxErr: null,
        tol: TOL,
        pass: false,
        note: (error as Error).message,
      });
    }
  }
}

const keras: [string, string, string?][] = [
  ['dl4j_activations/ReLU_0_model.h5', 'dl4j_activations/ReLU_0.expected.json'],
  ['dl4j_activations/Softmax_0_model.h5', 'dl4j_activations/Softmax_0.expected.json'],
  ['dl4j_simple_sparse_xent_mlp/simple_sparse_xent_mlp_keras_2_model.h5', 'dl4j_simple_sparse_xent_mlp/expected.json'],
  ['dl4j_dense_known_weights/dense_tensorflow_2.h5', 'dl4j_dense_known_weights/expected.json'],
  ...[0, 2, 4, 7, 8, 10, 14, 21, 26, 33, 44, 56].map((n): [string, string] => [
    `dl4j_tfkeras_mlp/mlp_${n}.h5`,
    `dl4j_tfkeras_mlp/mlp_${n}.expected.json`,
  ]),
  [
    'hls4ml_KERAS_3layer/KERAS_3layer_weights.h5',
    'hls4ml_KERAS_3layer/expected.json',
    'hls4ml_KERAS_3layer/KERAS_3layer.json',
  ],
];
for (const [m, e, a] of keras)
  await jsonCase('keras_h5', `keras_h5/${m}`, `keras_h5/${e}`, a ? `keras_h5/${a}` : undefined);
for (const [d, m] of [
  ['tfjs_examples_abalone', 'model.json'],
  ['ml5_balance_model1', 'model.json'],
  ['tfjs_rn_bundle_model_test', 'bundle_model_test.json'],
]) {
  await jsonCase('tfjs_layers', `tfjs_layers/${d}/${m}`, `tfjs_layers/${d}/expected.json`);
}
for (const group of (await readdir(join(ROOT, 'onnx'))).sort()) {
  const dir = join(ROOT, 'onnx', group);
  if (existsSync(join(dir, 'model.onnx'))) await onnxCase(dir);
  else for (const t of (await readdir(dir)).sort()) await onnxCase(join(dir, t));
}

console.log('| format | fixture case | loads through | max error | tolerance | pass |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  const err = r.maxErr === null ? '—' : r.maxErr.toExponential(2);
  const pass =
    r.pass === null
      ? 'see quant-onnx.test.ts (exact)'
      : r.pass
        ? 'yes'
        : `NO${r.note ? ` (${r.note.slice(0, 90)})` : ''}`;
  console.log(`| ${r.format} | ${r.fixture} | ${r.how} | ${err} | ${r.tol === 0 ? 'exact' : r.tol} | ${pass} |`);
}
