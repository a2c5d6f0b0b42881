/**
 * maas's quantization arithmetic in TypeScript, float32 operation by float32 operation, twin of
 * the native code (ActivationQuantParams, the kernels' quantizer and epilogue): activations are
 * u8 asymmetric (scale, zero point), weights s8 symmetric per output channel. Rounding is half to
 * even and saturating, as ONNX QuantizeLinear / DynamicQuantizeLinear define it.
 */

const f32 = Math.fround;

/** Rounds to the nearest integer, ties to even (nearbyint under the default rounding mode). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** An affine quantization: real = (q − zeroPoint) · scale. */
export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

/**
 * The u8 parameters of a real range [min, max] for levels 0..qmax: the range is widened to hold
 * 0 so zero is exact, scale = (max − min) / qmax, zeroPoint = round(−min / scale). An all-zero
 * range gets scale 1. Float32 throughout (as the addon computes it).
 */
export function activationParams(min: number, max: number, qmax = 255): QuantParams {
  const lo = f32(Math.min(min, 0)),
    hi = f32(Math.max(max, 0));
  const scale = f32(f32(hi - lo) / qmax);
  if (!(scale > 0) || !Number.isFinite(scale)) return { scale: 1, zeroPoint: 0 };
  const zero = roundHalfEven(-f32(lo / scale));
  return { scale, zeroPoint: Math.min(Math.max(zero, 0), qmax) };
}

/** ONNX QuantizeLinear: q = saturate(round(x / scale) + zeroPoint) into [qmin, qmax]. */
export function quantizeLinear(
  x: ArrayLike<number>,
  scale: number,
  zeroPoint: number,
  qmin = 0,
  qmax = 255,
): Int32Array {
  const out = new Int32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const t = roundHalfEven(f32(f32(x[i]!) / scale)) + zeroPoint;
    out[i] = t > qmin ? Math.min(t, qmax) : qmin; // NaN saturates to qmin, as the kernels do
  }
  return out;
}

/** ONNX DequantizeLinear: x = (q − zeroPoint) · scale in float32. */
export function dequantizeLinear(q: ArrayLike<number>, scale: number, zeroPoint: number): Float32Array {
  return Float32Array.from({ length: q.length }, (_, i) => f32((q[i]! - zeroPoint) * scale));
}

/** ONNX DynamicQuantizeLinear: the tensor's own range (widened to hold 0), then QuantizeLinear to u8. */
export function dynamicQuantizeLinear(x: ArrayLike<number>): { y: Int32Array } & QuantParams {
  let lo = 0,
    hi = 0;
  for (let i = 0; i < x.length; i++) {
    lo = Math.min(lo, x[i]!);
    hi = Math.max(hi, x[i]!);
  }
  const p = activationParams(lo, hi, 255);
  return { y: quantizeLinear(x, p.scale, p.zeroPoint), ...p };
}

/**
 * Symmetric s8 weights: for each output column j of a [rows × cols] kernel (or the whole tensor
 * when perChannel is false), scale = max|w| / 127 and q = clamp(round(w / scale), −127, 127).
 * An all-zero column gets scale 1.
 */
export function quantizeWeights(
  w: Float32Array,
  rows: number,
  cols: number,
  perChannel: boolean,
): { q: Int8Array; scales: Float32Array } {
  const absMax = new Float32Array(cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) absMax[c] = Math.max(absMax[c]!, Math.abs(w[r * cols + c]!));
  if (!perChannel) absMax.fill(absMax.reduce((a, b) => Math.max(a, b), 0));
  const scales = Float32Array.from(absMax, (m) => (m > 0 ? f32(m / 127) : 1));
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++)
      q[r * cols + c] = Math.max(-127, Math.min(127, roundHalfEven(f32(w[r * cols + c]! / scales[c]!))));
  }
  return { q, scales };
}

/** The fp32 weights an s8 tensor stands for: q · scale per column (what a saved model holds). */
export function dequantizeWeights(q: Int8Array, scales: Float32Array, cols: number): Float32Array {
  return Float32Array.from(q, (v, i) => f32(v * scales[i % cols]!));
}

/**
 * Recovers the s8 weights from their dequantized fp32 values. Exact: |fl(q·s)/s − q| <= 2·127·2^−24,
 * far below the 0.5 rounding needs. Returns null when a value is not on the grid.
 */
export function requantizeWeights(
  w: Float32Array,
  scales: Float32Array,
  cols: number,
  into?: Int8Array,
): Int8Array | null {
  const q = into?.length === w.length ? into : new Int8Array(w.length);
  // Row by row (no modulo per value), and Math.round for the tie rule: a value on the grid lies
  // within 2^-17 of its integer, where every rounding rule agrees, and a value at a tie is
  // refused by the check either way. A billion weights take seconds this way, not a minute.
  for (let i = 0; i < w.length;) {
    for (let c = 0; c < cols; c++, i++) {
      const s = scales[c]!;
      const v = w[i]!;
      const t = Math.round(v / s);
      if (!(t <= 127 && t >= -127) || f32(t * s) !== v) return null;
      q[i] = t;
    }
  }
  return q;
}

/**
 * The kernels' requantizing epilogue for one accumulator (already zero-point corrected):
 * y = fma(acc, combinedScale, 0), q = saturate(round(y / outScale) + outZero). Exact in double for
 * |acc| < 2^29 (acc · scale then needs at most 53 bits), which covers every ONNX fixture.
 */
export function requantize(
  acc: number,
  combinedScale: number,
  outScale: number,
  outZero: number,
  qmin: number,
  qmax: number,
): number {
  const y = f32(acc * combinedScale);
  const t = roundHalfEven(f32(y / outScale)) + outZero;
  return t > qmin ? Math.min(t, qmax) : qmin;
}
