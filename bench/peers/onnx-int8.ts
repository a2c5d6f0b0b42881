/**
 * The onnxruntime-node int8 peer: a dense stack as ORT's dynamic quantization writes it, built by
 * the library's int8 exporter (src/io/onnx-int8-export.ts) with the same s8 weights maas uses.
 */
import { buildQuantizedOnnx } from '../../src/io/onnx-int8-export.js';
import { quantizeWeights } from '../../src/quant/arith.js';
import type { DenseSpec } from './onnx.js';

/** Builds the dynamic-quantization graph (opset 13) of the stack: input "x" [N, in], output "y". */
export function buildDynamicQuantOnnx(layers: DenseSpec[]): Uint8Array {
  return buildQuantizedOnnx(
    layers.map((l) => {
      const { q, scales } = quantizeWeights(l.weights, l.in, l.out, true);
      return { ...l, int8: { weights: q, scales } };
    }),
    'dynamic',
  );
}
