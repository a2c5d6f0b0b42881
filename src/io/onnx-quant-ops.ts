/**
 * The ONNX quantization operators for maas's evaluator: QuantizeLinear and DequantizeLinear
 * (per tensor, per axis from opset 13, blocked from opset 21; u8/s8/u16/s16), DynamicQuantizeLinear,
 * MatMulInteger and QLinearMatMul. Rounding is ONNX's: float32 division, half to even, saturation
 * into the output type; requantization is maas's own epilogue arithmetic (src/quant/arith.ts),
 * which reproduces the ONNX backend fixtures exactly.
 */
import { ONNX_TYPES, onnxTypeName, type OnnxNode } from './onnx.js';
import { dynamicQuantizeLinear, requantize, roundHalfEven } from '../quant/arith.js';
import {
  INT_RANGE,
  attrOf,
  axisOf,
  expectType,
  isFloatType,
  matmul,
  nodeError,
  roundTo,
  size,
  stored,
  type Value,
} from './onnx-values.js';

const { FLOAT, UINT8, INT8, UINT16, INT16, INT32, FLOAT16, BFLOAT16 } = ONNX_TYPES;
const f32 = Math.fround;

/** The integer types QuantizeLinear may produce and DequantizeLinear may read (besides int32). */
const QUANT_TYPES = [UINT8, INT8, UINT16, INT16] as const;
const SCALE_TYPES = [FLOAT, FLOAT16, BFLOAT16] as const;

/**
 * For every element of a tensor of `shape`, the index of its scale and zero point: 0 per tensor,
 * the coordinate along `axis` per axis, the block's index when blocked (opset 21).
 */
function paramIndex(node: OnnxNode, shape: number[], scale: Value, opset: number): (k: number) => number {
  if (size(scale.shape) === 1 && scale.shape.length <= 1) return () => 0;
  if (opset < 13) throw nodeError(node, `opset ${opset} takes a scalar scale; per-axis scales need opset 13 or later`);
  const axis = axisOf(node, attrOf(node, 'axis')?.i ?? 1, shape.length, false);
  const dim = shape[axis]!,
    inner = size(shape.slice(axis + 1));
  const block = attrOf(node, 'block_size')?.i ?? 0;
  if (block < 0) throw nodeError(node, `block_size ${block} must not be negative`);
  if (block === 0) {
    if (scale.shape.length !== 1 || scale.shape[0] !== dim)
      throw nodeError(
        node,
        `a per-axis scale must be 1-D of length ${dim} (axis ${axis} of [${shape}]), got [${scale.shape}]`,
      );
    return (k) => Math.floor(k / inner) % dim;
  }
  if (opset < 21) throw nodeError(node, `block_size needs opset 21 or later, the model imports ${opset}`);
  const blocks = Math.ceil(dim / block);
  const want = shape.map((d, i) => (i === axis ? blocks : d));
  if (scale.shape.join() !== want.join())
    throw nodeError(
      node,
      `a blocked scale for [${shape}] with block_size ${block} must be [${want}], got [${scale.shape}]`,
    );
  return (k) => {
    const o = Math.floor(k / (dim * inner)),
      c = Math.floor(k / inner) % dim,
      i = k % inner;
    return (o * blocks + Math.floor(c / block)) * inner + i;
  };
}

/** The zero point, checked against the scale's shape (absent: zeros of `elem`). */
function zeroPoint(node: OnnxNode, zero: Value | undefined, scale: Value, elem: number): Value {
  if (!zero) return { data: new Float64Array(size(scale.shape)), shape: scale.shape, elem };
  if (zero.shape.join() !== scale.shape.join() && !(size(zero.shape) === 1 && size(scale.shape) === 1))
    throw nodeError(node, `the zero point's shape [${zero.shape}] differs from the scale's [${scale.shape}]`);
  return zero;
}

/** QuantizeLinear: y = saturate(round(x / scale) + zero_point), output typed as the zero point. */
export function quantizeLinearOp(
  node: OnnxNode,
  x: Value,
  scale: Value,
  zero: Value | undefined,
  opset: number,
): Value {
  expectType(node, x, 'x', [FLOAT, FLOAT16, BFLOAT16, INT32]);
  expectType(node, scale, 'y_scale', SCALE_TYPES);
  const outputDtype = attrOf(node, 'output_dtype')?.i ?? 0;
  const elem = zero?.elem ?? (outputDtype || UINT8);
  if (zero && outputDtype && outputDtype !== zero.elem)
    throw nodeError(
      node,
      `output_dtype ${onnxTypeName(outputDtype)} differs from the zero point's ${onnxTypeName(zero.elem)}`,
    );
  if (!(QUANT_TYPES as readonly number[]).includes(elem))
    throw nodeError(node, `maas quantizes to ${QUANT_TYPES.map(onnxTypeName).join(', ')}, not ${onnxTypeName(elem)}`);
  const z = zeroPoint(node, zero, scale, elem);
  const at = paramIndex(node, x.shape, scale, opset);
  const [qmin, qmax] = INT_RANGE[elem]!;
  const out = new Float64Array(x.data.length);
  for (let k = 0; k < out.length; k++) {
    const p = at(k);
    const t = roundHalfEven(f32(f32(x.data[k]!) / f32(scale.data[p]!))) + z.data[p]!;
    out[k] = t > qmin ? Math.min(t, qmax) : qmin; // NaN saturates to qmin, as maas's quantizer does
  }
  return { data: out, shape: x.shape.slice(), elem };
}

/** DequantizeLinear: y = (x − zero_point) · scale, typed as the scale (float32 before opset 19). */
export function dequantizeLinearOp(
  node: OnnxNode,
  x: Value,
  scale: Value,
  zero: Value | undefined,
  opset: number,
): Value {
  expectType(node, x, 'x', [...QUANT_TYPES, INT32]);
  expectType(node, scale, 'x_scale', opset >= 19 ? SCALE_TYPES : [FLOAT]);
  if (zero && zero.elem !== x.elem)
    throw nodeError(node, `the zero point is ${onnxTypeName(zero.elem)} but x is ${onnxTypeName(x.elem)}`);
  const z = zeroPoint(node, zero, scale, x.elem);
  if (x.elem === INT32 && z.data.some((v) => v !== 0)) throw nodeError(node, 'an int32 input takes a zero point of 0');
  const at = paramIndex(node, x.shape, scale, opset);
  const out = new Float64Array(x.data.length);
  // As ONNX Runtime computes it: the difference as float32, one float32 product, then the output type.
  for (let k = 0; k < out.length; k++) {
    const p = at(k);
    out[k] = f32(f32(x.data[k]! - z.data[p]!) * scale.data[p]!);
  }
  return stored(out, x.shape.slice(), scale.elem);
}

/** DynamicQuantizeLinear: the tensor's own range (holding 0) as u8 scale and zero point. */
export function dynamicQuantizeLinearOp(node: OnnxNode, x: Value): Value[] {
  expectType(node, x, 'x', [FLOAT]);
  const r = dynamicQuantizeLinear(x.data);
  return [
    { data: Float64Array.from(r.y), shape: x.shape.slice(), elem: UINT8 },
    { data: Float64Array.of(r.scale), shape: [], elem: FLOAT },
    { data: Float64Array.of(r.zeroPoint), shape: [], elem: UINT8 },
  ];
}

/**
 * x − zero_point as int32-tagged values. A 1-D zero point of an operand's row count (A, per row)
 * applies along its second-to-last axis; anything else broadcasts numpy-style.
 */
function shifted(node: OnnxNode, x: Value, zero: Value | undefined, what: string, perRow: boolean): Value {
  expectType(node, x, what, [UINT8, INT8]);
  if (!zero) return { ...x, elem: INT32 };
  if (zero.elem !== x.elem)
    throw nodeError(node, `${what}'s zero point is ${onnxTypeName(zero.elem)} but ${what} is ${onnxTypeName(x.elem)}`);
  let zshape = zero.shape;
  if (
    perRow &&
    zshape.length === 1 &&
    x.shape.length >= 2 &&
    zshape[0] === x.shape[x.shape.length - 2] &&
    zshape[0] !== 1
  )
    zshape = [zshape[0]!, 1];
  const shape = zshape.length > x.shape.length ? null : x.shape;
  const out = new Float64Array(x.data.length);
  // The zero point must broadcast into x's shape (it may not grow x).
  const rank = x.shape.length;
  const step = x.shape.map((_, i) => {
    const j = i - (rank - zshape.length);
    return j < 0 || zshape[j] === 1 ? 0 : 1;
  });
  if (!shape || zshape.some((d, j) => d !== 1 && d !== x.shape[rank - zshape.length + j]))
    throw nodeError(node, `${what}'s zero point [${zero.shape}] does not broadcast to [${x.shape}]`);
  const zstrides = zshape.map((_, j) => size(zshape.slice(j + 1)));
  for (let k = 0; k < out.length; k++) {
    let rest = k,
      zi = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rest % x.shape[d]!;
      rest = Math.floor(rest / x.shape[d]!);
      const j = d - (rank - zshape.length);
      if (step[d]!) zi += c * zstrides[j]!;
    }
    out[k] = x.data[k]! - zero.data[zi]!;
  }
  return { data: out, shape: x.shape.slice(), elem: INT32 };
}

/** MatMulInteger: int32 products of zero-point-shifted u8/s8 operands. */
export function matMulIntegerOp(node: OnnxNode, a: Value, b: Value, aZero?: Value, bZero?: Value): Value {
  return matmul(node, shifted(node, a, aZero, 'A', true), shifted(node, b, bZero, 'B', false));
}

/**
 * QLinearMatMul: the int32 product of the shifted operands, requantized into y's type with the
 * combined scale a_scale·b_scale (per column when b's scale is) as maas's int8 epilogue does.
 */
export function qlinearMatMulOp(node: OnnxNode, args: Value[]): Value {
  const [a, aScale, aZero, b, bScale, bZero, yScale, yZero] = args as [
    Value,
    Value,
    Value,
    Value,
    Value,
    Value,
    Value,
    Value,
  ];
  for (const [v, what] of [
    [aScale, 'a_scale'],
    [yScale, 'y_scale'],
    [aZero, 'a_zero_point'],
    [yZero, 'y_zero_point'],
  ] as const) {
    if (size(v.shape) !== 1) throw nodeError(node, `maas takes a per-tensor ${what}, got shape [${v.shape}]`);
  }
  for (const s of [aScale, bScale, yScale]) expectType(node, s, 'each scale', SCALE_TYPES);
  expectType(node, yZero, 'y_zero_point', [UINT8, INT8]);
  const n = b.shape[b.shape.length - 1];
  const perColumn = size(bScale.shape) !== 1;
  if (perColumn && (bScale.shape.length !== 1 || bScale.shape[0] !== n))
    throw nodeError(node, `b_scale must be a scalar or 1-D of length ${n}, got [${bScale.shape}]`);
  if (size(bZero.shape) !== size(bScale.shape))
    throw nodeError(node, `b_zero_point [${bZero.shape}] must match b_scale [${bScale.shape}]`);
  const acc = matMulIntegerOp(node, a, b, aZero, bZero);
  const [qmin, qmax] = INT_RANGE[yZero.elem]!;
  const combined = Float64Array.from(bScale.data, (s) => f32(aScale.data[0]! * s));
  const out = new Float64Array(acc.data.length);
  const cols = acc.shape[acc.shape.length - 1] ?? 1;
  for (let k = 0; k < out.length; k++)
    out[k] = requantize(acc.data[k]!, combined[perColumn ? k % cols : 0]!, yScale.data[0]!, yZero.data[0]!, qmin, qmax);
  return { data: out, shape: acc.shape, elem: yZero.elem };
}

/** Cast between the numeric types maas stores: floats round, floats into integers truncate and saturate. */
export function castOp(node: OnnxNode, x: Value): Value {
  const to = attrOf(node, 'to')?.i ?? 0;
  const range = INT_RANGE[to];
  if (!isFloatType(to) && !range) throw nodeError(node, `maas does not cast to ${onnxTypeName(to)}`);
  if (range) {
    const [lo, hi] = range;
    const data = Float64Array.from(x.data, (v) => (Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, Math.trunc(v)))));
    return { data, shape: x.shape.slice(), elem: to };
  }
  const r = roundTo(to);
  return { data: Float64Array.from(x.data, r), shape: x.shape.slice(), elem: to };
}
