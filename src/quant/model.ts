/**
 * QuantizedModel: a dense stack whose layers run in int8 (except those kept in fp32), on the
 * InferenceModel shell: predict, packed, save and dispose are the shell's; this file says how an
 * int8 stack packs, what maas.quantization holds, and how the model exports (tfjs-layers with the
 * dequantized weights, which tfjs loads as fp32, and an int8 ONNX graph).
 */
import type { Dense } from '../layers/dense.js';
import type { Pipeline } from '../data/pipeline.js';
import type { ModelArtifacts } from '../io/artifacts.js';
import { denseArtifacts, onnxLayer } from '../io/export.js';
import { buildQuantizedOnnx } from '../io/onnx-int8-export.js';
import { packInt8Stack, type Int8PackLayer, type PackedModel } from '../model/packed.js';
import type { Sequential } from '../model/sequential.js';
import { InferenceModel } from '../model/shell.js';
import type { CalibrationMethod } from './calibrate.js';

/** One layer's entry in maas.quantization. */
export interface QuantizedLayerInfo {
  name: string;
  int8: boolean;
  /** Per output channel (or one repeated per channel when perChannel is false). */
  weightScales?: number[];
  /** Static activation range of the layer's input and its u8 parameters (levels 0..255). */
  input?: { min: number; max: number; scale: number; zeroPoint: number };
}

/** What a quantized model.json carries under maas.quantization. */
export interface QuantizationSpec {
  formatVersion: 1;
  scheme: 'u8-asymmetric-activations/s8-symmetric-weights';
  method: CalibrationMethod;
  mode: 'static' | 'dynamic';
  perChannel: boolean;
  percentile?: number;
  layers: QuantizedLayerInfo[];
}

/** A packed quantized model: share `buffer` with workers and open it there with openPackedModel. */
export interface PackedQuantizedModel extends PackedModel {
  readonly format: 'int8';
}

/** Layer `index`'s int8 packing inputs: its s8 weights and scales (null for an fp32 layer) and its input range. */
export function int8PackLayer(spec: QuantizationSpec, index: number, weights: Int8Array | null): Int8PackLayer {
  const info = spec.layers[index]!;
  return {
    weights: info.int8 ? weights : null,
    scales: info.int8 ? Float32Array.from(info.weightScales!) : null,
    inMin: info.input?.min ?? 0,
    inMax: info.input?.max ?? 0,
  };
}

/** Each layer's int8 packing inputs (int8PackLayer). */
export function int8PackLayers(spec: QuantizationSpec, int8Weights: readonly (Int8Array | null)[]): Int8PackLayer[] {
  return spec.layers.map((_, i) => int8PackLayer(spec, i, int8Weights[i] ?? null));
}

/** How a quantized model describes itself in a served config's parameters. */
export function describeQuantization(q: QuantizationSpec): string {
  return `${q.mode} ${q.method}, ${q.perChannel ? 'per-channel' : 'per-tensor'} weights, int8 layers ${q.layers.filter((l) => l.int8).length}/${q.layers.length}`;
}

/** A model whose dense layers run in int8 (except those kept in fp32); predict returns fp32. */
export class QuantizedModel extends InferenceModel {
  /**
   * @param float the fp32 twin: the same layers with dequantized weights (topology, preparation, save)
   * @param spec scales, zero points, ranges and the layers kept in fp32
   * @param int8Weights each int8 layer's s8 kernel [in, out] (null for layers kept in fp32)
   * @param extras training configuration and preparation to save with the model
   */
  constructor(
    readonly float: Sequential,
    readonly spec: QuantizationSpec,
    private readonly int8Weights: (Int8Array | null)[],
    private readonly extras: { trainingConfig?: unknown; preparation?: unknown } = {},
  ) {
    super();
    this.adoptCarried(float);
  }

  /** The model's name (its fp32 twin's). */
  get name(): string {
    return this.float.name;
  }

  /** The layers (with dequantized weights for int8 layers). */
  get layers(): readonly Dense[] {
    return this.float.layers;
  }

  protected preparationPipeline(): Pipeline | null {
    return this.float.preparation;
  }

  /** The packed int8 stack (see InferenceModel.packed): post `buffer` to workers, open it with openPackedModel. */
  override packed(): PackedQuantizedModel {
    return super.packed() as PackedQuantizedModel;
  }

  /** Packs the quantized stack for this thread's int8 kernel. */
  protected pack(): PackedQuantizedModel {
    return packInt8Stack(this.layers, int8PackLayers(this.spec, this.int8Weights), this.spec.mode === 'dynamic');
  }

  /** As tfjs-layers artifacts: the dequantized fp32 weights (tfjs loads them) and maas.quantization. */
  toArtifacts(): ModelArtifacts {
    this.checkLive();
    const preparation = this.extras.preparation ?? this.float.preparation?.toJSON();
    return denseArtifacts(this.name, this.layers, {
      ...(this.extras.trainingConfig ? { trainingConfig: this.extras.trainingConfig } : {}),
      ...(preparation ? { preparation } : {}),
      ...this.carriedArtifacts(),
      quantization: this.spec,
    });
  }

  /**
   * The quantized model as ONNX bytes (opset 13) for onnxruntime: per int8 layer QuantizeLinear
   * with the calibrated u8 scale and zero point (static) or DynamicQuantizeLinear (dynamic), then
   * MatMulInteger with the s8 weights, Cast, Mul by the scales, Add bias, activation; fp32 layers
   * as Gemm. The u8 parameters are the 0..255 ones; a 7-bit kernel (AVX2 without VNNI) predicts
   * with 0..127 levels, so there the graph is the model's 8-bit twin.
   */
  toOnnx(): Uint8Array {
    this.checkLive();
    return buildQuantizedOnnx(
      this.layers.map((l, i) => {
        const info = this.spec.layers[i]!;
        const q = this.int8Weights[i];
        return {
          ...onnxLayer(l),
          int8:
            info.int8 && q
              ? {
                  weights: q,
                  scales: Float32Array.from(info.weightScales!),
                  ...(info.input ? { input: { scale: info.input.scale, zeroPoint: info.input.zeroPoint } } : {}),
                }
              : null,
        };
      }),
      this.spec.mode,
    );
  }
}
