/**
 * A dense stack as the files maas writes: tfjs-layers artifacts (topology, weight specs and
 * bytes, the maas extension field) and the fp32 ONNX graph. Takes built layers, so every model
 * shell exports the same way.
 */
import type { Dense } from '../layers/dense.js';
import type { ModelArtifacts, WeightSpec } from './artifacts.js';
import { buildDenseOnnx } from './onnx-export.js';
import { toTopology } from './topology.js';

/** What a model adds to its layers in the maas extension field. */
export interface ArtifactExtras {
  trainingConfig?: unknown;
  preparation?: unknown;
  quantization?: unknown;
  /** Every epoch of every fit (the model layer's TrainingHistoryJson). */
  trainingHistory?: unknown;
  /** The rows explanations compare against (the model layer's BackgroundJson). */
  explanationBackground?: unknown;
}

/** The model as file artifacts: topology, weight specs and bytes, extension field. */
export function denseArtifacts(name: string, layers: readonly Dense[], extras: ArtifactExtras = {}): ModelArtifacts {
  const specs: WeightSpec[] = [];
  const parts: Float32Array[] = [];
  for (const layer of layers) {
    specs.push({ name: `${layer.name}/kernel`, shape: [layer.inputDim!, layer.units], dtype: 'float32' });
    parts.push(layer.kernel!);
    if (layer.bias) {
      specs.push({ name: `${layer.name}/bias`, shape: [layer.units], dtype: 'float32' });
      parts.push(layer.bias);
    }
  }
  const weightData = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    weightData.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), offset);
    offset += p.byteLength;
  }
  return {
    modelTopology: toTopology(name, layers),
    weightSpecs: specs,
    weightData,
    generatedBy: 'maas 0.1.0',
    maas: {
      formatVersion: 1,
      signature: {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, layers[0]!.inputDim!] }],
        outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, layers[layers.length - 1]!.units] }],
      },
      weightsSha256: '',
      // Only the extras the model has: a file without them reads as before.
      ...Object.fromEntries(Object.entries(extras).filter(([, value]) => value !== undefined && value !== null)),
    },
  };
}

/** A built Dense layer as the ONNX writers take it: sizes, weights and its activation's parameters. */
export function onnxLayer(l: Dense) {
  return {
    in: l.inputDim!,
    out: l.units,
    weights: l.kernel!,
    bias: l.bias,
    activation: l.activation,
    ...l.nativeActivationParams(),
  };
}

/** The fp32 stack as ONNX bytes (opset 13): a Gemm per layer (or MatMul + Add) and its activation. */
export function denseOnnx(layers: readonly Dense[], options: { op?: 'gemm' | 'matmul' } = {}): Uint8Array {
  return buildDenseOnnx(layers.map(onnxLayer), options);
}
