/**
 * The ONNX quantization operator fixtures (onnx_node backend tests) reproduced exactly with maas's
 * own quantization arithmetic: src/quant/arith.ts, and the addon's parameters and quantizer where
 * the operator maps onto them (matmulinteger runs through every int8 kernel in int8-gemm.test.ts),
 * and by the ONNX evaluator (loadOnnxGraph), every output.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeOnnxFile, decodeTensor } from '../../src/io/onnx.js';
import { loadOnnxGraph } from '../../src/io/onnx-graph.js';
import { packageRoot } from '../../src/core/package-root.js';
import { native } from '../../src/native/index.js';
import { dequantizeLinear, dynamicQuantizeLinear, quantizeLinear, requantize } from '../../src/quant/arith.js';

const NODE_FIXTURES = join(packageRoot(), 'test', 'fixtures', 'onnx', 'onnx_node');

async function tensors(test: string, names: string[]): Promise<{ dims: number[]; values: Float32Array }[]> {
  const dir = join(NODE_FIXTURES, test, 'test_data_set_0');
  return Promise.all(names.map(async (n) => decodeTensor(await readFile(join(dir, `${n}.pb`)))));
}

describe('ONNX quantization operators, with our arithmetic', () => {
  it('test_quantizelinear: TS and the addon (reference and selected kernel) agree with the fixture', async () => {
    const [x, scale, zero, y] = await tensors('test_quantizelinear', ['input_0', 'input_1', 'input_2', 'output_0']);
    const want = Array.from(y!.values);
    expect(Array.from(quantizeLinear(x!.values, scale!.values[0]!, zero!.values[0]!))).toEqual(want);
    const ref = new Uint8Array(x!.values.length);
    native._quantizeU8(null, x!.values, scale!.values[0]!, zero!.values[0]!, ref);
    expect(Array.from(ref)).toEqual(want);
    const kernel = native.cpuInfo().int8Kernels.find((k) => k.supported && k.aMax === 255)!;
    const got = new Uint8Array(x!.values.length);
    native._quantizeU8(kernel.name, x!.values, scale!.values[0]!, zero!.values[0]!, got);
    expect(Array.from(got)).toEqual(want);
  });

  it('test_dequantizelinear', async () => {
    const [x, scale, zero, y] = await tensors('test_dequantizelinear', ['input_0', 'input_1', 'input_2', 'output_0']);
    expect(Array.from(dequantizeLinear(x!.values, scale!.values[0]!, zero!.values[0]!))).toEqual(Array.from(y!.values));
  });

  it('test_dynamicquantizelinear: values, scale and zero point; the addon derives the same parameters', async () => {
    const [x, y, scale, zero] = await tensors('test_dynamicquantizelinear', [
      'input_0',
      'output_0',
      'output_1',
      'output_2',
    ]);
    const got = dynamicQuantizeLinear(x!.values);
    expect(Array.from(got.y)).toEqual(Array.from(y!.values));
    expect(got.scale).toBe(scale!.values[0]);
    expect(got.zeroPoint).toBe(zero!.values[0]);
    const lo = Math.min(0, ...x!.values),
      hi = Math.max(0, ...x!.values);
    expect(native._activationQuantParams(lo, hi, 255)).toEqual({ scale: got.scale, zero: got.zeroPoint });
  });

  for (const [test, qmin, qmax] of [
    ['test_qlinearmatmul_2D_uint8_float32', 0, 255],
    ['test_qlinearmatmul_2D_int8_float32', -128, 127],
  ] as const) {
    it(`${test}: int32 accumulation of zero-point-shifted operands, then our requantizing epilogue`, async () => {
      const [a, aScale, aZero, b, bScale, bZero, yScale, yZero, y] = await tensors(test, [
        'input_0',
        'input_1',
        'input_2',
        'input_3',
        'input_4',
        'input_5',
        'input_6',
        'input_7',
        'output_0',
      ]);
      const [m, k] = a!.dims as [number, number];
      const n = b!.dims[1]!;
      const combined = Math.fround(aScale!.values[0]! * bScale!.values[0]!);
      const got: number[] = [];
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let p = 0; p < k; p++)
            acc += (a!.values[i * k + p]! - aZero!.values[0]!) * (b!.values[p * n + j]! - bZero!.values[0]!);
          got.push(requantize(acc, combined, yScale!.values[0]!, yZero!.values[0]!, qmin, qmax));
        }
      }
      expect(got).toEqual(Array.from(y!.values));
    });
  }
});

describe('ONNX quantization operators, with the evaluator', () => {
  for (const test of [
    'test_quantizelinear',
    'test_dequantizelinear',
    'test_dynamicquantizelinear',
    'test_matmulinteger',
    'test_qlinearmatmul_2D_uint8_float32',
    'test_qlinearmatmul_2D_int8_float32',
  ]) {
    it(`${test}: loadOnnxGraph reproduces every output exactly, typed as the graph declares it`, async () => {
      const file = join(NODE_FIXTURES, test, 'model.onnx');
      const proto = await decodeOnnxFile(file);
      const graph = await loadOnnxGraph(file);
      const inputs = await tensors(
        test,
        graph.inputNames.map((_, i) => `input_${i}`),
      );
      const outputs = await tensors(
        test,
        graph.outputNames.map((_, i) => `output_${i}`),
      );
      const got = graph.run(
        Object.fromEntries(graph.inputNames.map((n, i) => [n, { data: inputs[i]!.values, shape: inputs[i]!.dims }])),
      );
      graph.outputNames.forEach((name, i) => {
        const elem = proto.graph!.output![i]!.type?.tensor_type?.elem_type;
        const want = { 1: Float32Array, 2: Uint8Array, 3: Int8Array, 6: Int32Array }[elem as 1 | 2 | 3 | 6];
        expect(got[name]!.data, name).toBeInstanceOf(want);
        expect(got[name]!.shape, name).toEqual(outputs[i]!.dims);
        expect(Array.from(got[name]!.data), name).toEqual(Array.from(outputs[i]!.values));
      });
    });
  }
});
