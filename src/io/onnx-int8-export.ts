/**
 * int8 ONNX export: a quantized dense stack as QuantizeLinear (or DynamicQuantizeLinear) →
 * MatMulInteger(u8, s8) → Cast → Mul by the scales → Add bias → activation; fp32 layers as Gemm.
 */
import { MaasError } from '../core/errors.js';
import {
  FLOAT,
  activationNodes,
  affineNodes,
  checkLayer,
  encodeModel,
  float32LeBytes,
  floatInitializer,
  floatValueInfo,
  node,
  type DenseSpec,
  type NodeObject,
  type TensorObject,
} from './onnx-export.js';

const UINT8 = 2;
const INT8 = 3;
const ATTR_INT = 2;
const f32 = Math.fround;

/** An int8 layer's quantized weights and, for static models, its input's u8 parameters. */
export interface Int8LayerSpec {
  /** s8 kernel [in, out] row-major. */
  weights: Int8Array;
  /** One scale per output column. */
  scales: Float32Array;
  /** The calibrated u8 (0..255) parameters of the layer's input; required for static models. */
  input?: { scale: number; zeroPoint: number };
}

/** One layer to export: fp32 weights (used when int8 is null) and the int8 part. */
export type QuantizedDenseSpec = DenseSpec & { int8: Int8LayerSpec | null };

function int8Initializer(name: string, dims: number[], values: Int8Array): TensorObject {
  return {
    name,
    data_type: INT8,
    dims,
    raw_data: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
  };
}

/** Nodes quantizing `input` into `${p}q` with zero point `${p}z`, and the per-column scale tensor's name. */
function quantizeNodes(
  mode: 'static' | 'dynamic',
  layer: QuantizedDenseSpec,
  index: number,
  input: string,
  init: TensorObject[],
): { nodes: NodeObject[]; scale: string } {
  const p = `q${index}_`;
  const { scales, input: inParams } = layer.int8!;
  if (mode === 'dynamic') {
    init.push(floatInitializer(`${p}wscale`, [layer.out], scales));
    return {
      nodes: [
        { ...node('DynamicQuantizeLinear', [input], `${p}q`), output: [`${p}q`, `${p}s`, `${p}z`] },
        node('Mul', [`${p}s`, `${p}wscale`], `${p}scale`),
      ],
      scale: `${p}scale`,
    };
  }
  if (!inParams)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Layer ${index} of a static quantized model needs its input's scale and zero point`,
    );
  init.push(floatInitializer(`${p}s`, [], Float32Array.of(inParams.scale)));
  init.push({ name: `${p}z`, data_type: UINT8, dims: [], raw_data: Uint8Array.of(inParams.zeroPoint) });
  // The input scale times each column's weight scale, rounded to float32 as the kernels combine them.
  init.push({
    name: `${p}scale`,
    data_type: FLOAT,
    dims: [layer.out],
    raw_data: float32LeBytes(Float32Array.from(scales, (w) => f32(inParams.scale * w))),
  });
  return { nodes: [node('QuantizeLinear', [input, `${p}s`, `${p}z`], `${p}q`)], scale: `${p}scale` };
}

/** One int8 layer's affine part: quantize, MatMulInteger, Cast, Mul by the scales, Add bias. */
function int8AffineNodes(
  mode: 'static' | 'dynamic',
  layer: QuantizedDenseSpec,
  index: number,
  input: string,
  output: string,
  init: TensorObject[],
): NodeObject[] {
  const p = `q${index}_`;
  const { weights } = layer.int8!;
  if (weights.length !== layer.in * layer.out)
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `layer ${index}: int8 weights has ${weights.length} values, expected ${layer.in}×${layer.out}`,
    );
  if (layer.int8!.scales.length !== layer.out)
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `layer ${index}: ${layer.int8!.scales.length} weight scales, expected ${layer.out}`,
    );
  init.push(int8Initializer(`${p}w`, [layer.in, layer.out], weights));
  const { nodes, scale } = quantizeNodes(mode, layer, index, input, init);
  nodes.push(node('MatMulInteger', [`${p}q`, `${p}w`, `${p}z`], `${p}acc`));
  nodes.push(node('Cast', [`${p}acc`], `${p}accf`, [{ name: 'to', type: ATTR_INT, i: FLOAT }]));
  if (layer.bias === null) {
    nodes.push(node('Mul', [`${p}accf`, scale], output));
    return nodes;
  }
  init.push(floatInitializer(`${p}b`, [layer.out], layer.bias));
  nodes.push(node('Mul', [`${p}accf`, scale], `${p}m`));
  nodes.push(node('Add', [`${p}m`, `${p}b`], output));
  return nodes;
}

/**
 * Builds an ONNX model (opset 13) of a quantized dense stack, input "x" [N, in] and output "y"
 * [N, out]: int8 layers as static (QuantizeLinear with the calibrated u8 parameters) or dynamic
 * (DynamicQuantizeLinear) MatMulInteger with s8 per-column weights; fp32 layers as Gemm.
 */
export function buildQuantizedOnnx(layers: QuantizedDenseSpec[], mode: 'static' | 'dynamic'): Uint8Array {
  if (layers.length === 0)
    throw new MaasError('MAAS_ERR_MODEL_EMPTY', 'buildQuantizedOnnx: at least one layer is required');
  const nodes: NodeObject[] = [];
  const init: TensorObject[] = [];
  let current = 'x';
  layers.forEach((layer, i) => {
    checkLayer(layer, i);
    const linear = `z${i}`;
    if (layer.int8) {
      nodes.push(...int8AffineNodes(mode, layer, i, current, linear, init));
    } else {
      init.push(floatInitializer(`W${i}`, [layer.in, layer.out], layer.weights));
      if (layer.bias !== null) init.push(floatInitializer(`B${i}`, [layer.out], layer.bias));
      nodes.push(...affineNodes('gemm', current, `W${i}`, layer.bias === null ? null : `B${i}`, linear));
    }
    const act = activationNodes(layer, linear, `h${i}`, init);
    nodes.push(...act);
    current = act.length > 0 ? `h${i}` : linear;
  });
  // The graph output must be named "y": rename whichever tensor ends the stack.
  for (const n of nodes) n.output = n.output.map((o) => (o === current ? 'y' : o));
  return encodeModel(
    nodes,
    init,
    floatValueInfo('x', layers[0]!.in),
    floatValueInfo('y', layers[layers.length - 1]!.out),
    'maas_dense_int8',
  );
}
