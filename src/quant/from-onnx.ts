/**
 * A quantized ONNX model (ONNX Runtime's QDQ or QOperator form, or maas's own export) as a
 * QuantizedModel: the int8 layers read by io/onnx-quantized.ts go into maas's own int8 path (the
 * packed s8 weights, u8 activations and native kernels quantize() builds), not an evaluator.
 * Each static layer keeps the file's input range; a 7-bit kernel (AVX2 without VNNI, aMax 127)
 * quantizes that range into 0..127 as it does for every maas model, so there the model is the
 * file's 7-bit twin; on 8-bit kernels (VNNI, AVX-512, AMX, scalar) it is the file's arithmetic.
 */
import { dense } from '../layers/dense.js';
import { sequential } from '../model/sequential.js';
import type { IntegrityOptions } from '../io/integrity.js';
import type { DecryptionOptions } from '../io/sealed.js';
import { readQuantizedOnnx, type ImportedQuantModel } from '../io/onnx-quantized.js';
import { QuantizedModel, type QuantizationSpec, type QuantizedLayerInfo } from './model.js';

/** Builds the QuantizedModel of imported int8 layers (its fp32 twin holds the dequantized weights). */
export function quantizedModelFrom(imported: ImportedQuantModel, name = 'onnx_int8'): QuantizedModel {
  const { layers, mode } = imported;
  const twin = sequential({
    name,
    layers: layers.map((l, i) =>
      dense({
        units: l.out,
        activation: l.activation,
        ...(l.alpha !== undefined ? { alpha: l.alpha } : {}),
        useBias: l.bias !== null,
        name: l.name,
        ...(i === 0 ? { inputShape: [l.in] } : {}),
      }),
    ),
  });
  twin.setWeights(layers.flatMap((l) => (l.bias ? [l.kernel, l.bias] : [l.kernel])));
  const infos: QuantizedLayerInfo[] = layers.map((l) => ({
    name: l.name,
    int8: l.int8 !== null,
    ...(l.weightScales ? { weightScales: Array.from(l.weightScales) } : {}),
    ...(l.input
      ? { input: { min: l.input.min, max: l.input.max, scale: l.input.scale, zeroPoint: l.input.zeroPoint } }
      : {}),
  }));
  const spec: QuantizationSpec = {
    formatVersion: 1,
    scheme: 'u8-asymmetric-activations/s8-symmetric-weights',
    // The ranges stored are the ones that reproduce the file's scales and zero points exactly.
    method: mode === 'dynamic' ? 'dynamic' : 'minmax',
    mode,
    perChannel: layers.some((l) => l.perChannel),
    layers: infos,
  };
  return new QuantizedModel(
    twin,
    spec,
    layers.map((l) => l.int8),
  );
}

/** Loads a quantized .onnx file into maas's int8 path (see io/onnx-quantized.ts for what maps exactly). */
export async function loadQuantizedOnnx(
  path: string,
  options: IntegrityOptions & DecryptionOptions = {},
): Promise<QuantizedModel> {
  return quantizedModelFrom(await readQuantizedOnnx(path, options));
}
