/**
 * Reads an ONNX model quantized by ONNX Runtime's tools (or written by QuantizedModel.toOnnx) into
 * maas's int8 representation: per dense layer, s8 symmetric weights with per-column scales, the
 * u8 parameters of its input (static) or none (dynamic), an fp32 bias and an activation.
 *
 * Forms read, walking the chain from the graph input:
 *  - QDQ (quantize_static, QuantFormat.QDQ): QuantizeLinear → DequantizeLinear around the data,
 *    DequantizeLinear of s8 weight initializers (per tensor or per output channel) into MatMul or
 *    Gemm, bias as a DequantizeLinear of int32 (Gemm's C) or a (possibly QDQ'd) Add, activations.
 *  - QOperator static: QuantizeLinear → QLinearMatMul (→ QLinearMatMul … → DequantizeLinear), or
 *    QuantizeLinear → MatMulInteger → Cast → Mul by the combined scale (maas's own export).
 *  - QOperator dynamic (quantize_dynamic): DynamicQuantizeLinear → MatMulInteger → Cast → Mul by
 *    Mul(x_scale, w_scale) → Add bias.
 *
 * Exactness. maas computes each int8 layer as round(x / s) + z on its input (u8; an s8 activation
 * with zero point z is the same u8 grid with z + 128), an exact int32 accumulation with s8
 * weights, then fma(acc, s·w_scale, bias) in float32: the graph's own arithmetic, up to float32
 * rounding order. What maas cannot hold is refused with a coded error naming why: u8 weights or
 * weights with a non-zero zero point (maas packs s8 symmetric weights; requantizing them would
 * move every weight by up to half a step), the weight −128 (the kernels' accumulator bound
 * assumes |w| ≤ 127), per-row or blocked parameters, and mixed static and dynamic layers. QDQ
 * pairs that are not at a layer's input (on a MatMul's output before its bias Add, on the model's
 * output) have no place in maas's int8 stack and are dropped: each changes a value by at most half
 * its scale inside its range, and maas's output is the unrounded value (the importer reports them
 * in `droppedRoundings`). A pair whose zero point is the type's minimum also clamps at zero, so a
 * linear layer before one becomes relu (what ORT does when it removes a Relu into the pair).
 */
import { MaasError, type ErrorCode } from '../core/errors.js';
import type { ActivationName } from '../layers/activations.js';
import { activationParams } from '../quant/arith.js';
import { ONNX_TYPES, decodeOnnxFile, defaultOpset, num, onnxTypeName, type OnnxNode } from './onnx.js';
import { OnnxGraph, initializerValues } from './onnx-graph.js';
import { attrOf, size, type Value } from './onnx-values.js';
import { asLoader } from './files.js';
import { checkFinite, int8ParamsProblem, type IntegrityOptions } from './integrity.js';
import type { DecryptionOptions } from './sealed.js';

const { FLOAT, UINT8, INT8, INT32 } = ONNX_TYPES;
const f32 = Math.fround;

/** An activation's u8 quantization (levels 0..255) and the calibrated range maas derives it from. */
export interface ImportedInputQuant {
  scale: number;
  zeroPoint: number;
  min: number;
  max: number;
}

/** One dense layer read from a quantized graph. */
export interface ImportedQuantLayer {
  name: string;
  in: number;
  out: number;
  /** s8 weights [in, out] row-major, or null for a layer the graph keeps in float. */
  int8: Int8Array | null;
  /** Per output column (a per-tensor scale repeated); null for float layers. */
  weightScales: Float32Array | null;
  /** Whether the graph gave one scale per output channel. */
  perChannel: boolean;
  /** fp32 weights [in, out] (dequantized for int8 layers). */
  kernel: Float32Array;
  bias: Float32Array | null;
  activation: ActivationName;
  alpha?: number;
  /** Static layers: the input's u8 parameters. */
  input?: ImportedInputQuant;
}

/** A quantized graph as maas's int8 layers. */
export interface ImportedQuantModel {
  mode: 'static' | 'dynamic';
  layers: ImportedQuantLayer[];
  /** QDQ pairs dropped (not at a layer input), with their scale: each moves a value by ≤ scale/2. */
  droppedRoundings: { tensor: string; scale: number }[];
  inputName: string;
  outputName: string;
}

/** An activation's quantization as a u8 grid (s8 shifts by 128). */
interface Grid {
  scale: number;
  zero: number;
  tensor: string;
}

/**
 * The range [min, max] from which maas's activationParams (the addon's ActivationQuantParams)
 * derives exactly (scale, zero), or null when no float32 pair within a few ulps does.
 */
export function rangeFor(scale: number, zero: number): { min: number; max: number } | null {
  const exact = (lo: number, hi: number) => {
    const p = activationParams(lo, hi, 255);
    return p.scale === scale && p.zeroPoint === zero;
  };
  const lo0 = f32(-zero * scale),
    hi0 = f32((255 - zero) * scale);
  const next = (x: number, k: number) => {
    const b = new DataView(new ArrayBuffer(4));
    b.setFloat32(0, x);
    const bits = b.getInt32(0);
    // Moving the bit pattern moves by ulps (for either sign while it stays away from zero).
    b.setInt32(0, bits + (x < 0 ? -k : k));
    return b.getFloat32(0);
  };
  for (let dl = 0; dl <= 8; dl++) {
    for (const sl of dl === 0 ? [0] : [dl, -dl]) {
      const lo = zero === 0 ? 0 : next(lo0, sl);
      for (let dh = -16; dh <= 16; dh++) {
        const hi = zero === 255 ? 0 : next(hi0, dh);
        if (lo <= 0 && hi >= 0 && exact(lo, hi)) return { min: lo, max: hi };
      }
      if (zero === 0) break;
    }
  }
  return null;
}

/** The constant nodes the importer evaluates. */
const FOLDED_OPS = new Set(['DequantizeLinear', 'Identity', 'Cast']);

/** Walks a quantized graph's chain into layers. */
class Importer {
  private readonly producer = new Map<string, OnnxNode>();
  private readonly consumers = new Map<string, OnnxNode[]>();
  private readonly constants: Map<string, Value>;
  readonly layers: ImportedQuantLayer[] = [];
  readonly dropped: { tensor: string; scale: number }[] = [];
  private modes = new Set<'static' | 'dynamic'>();

  constructor(
    private readonly path: string,
    private readonly nodes: OnnxNode[],
    initializers: Map<string, Value>,
    private readonly opset: number,
  ) {
    this.constants = initializers;
    for (const n of nodes) {
      for (const o of n.output) this.producer.set(o, n);
      for (const i of new Set(n.input)) if (i !== '') this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
    }
    this.foldConstants();
  }

  private refuse(n: OnnxNode | null, why: string, code: ErrorCode = 'MAAS_ERR_MODEL_FORMAT'): never {
    const where = n ? `ONNX node '${n.name || n.output[0]}' (${n.op_type}) of ${this.path}` : this.path;
    throw new MaasError(code, `${where} cannot be imported as a maas int8 model: ${why}`);
  }

  /** Refuses a valid quantization scheme that maas's int8 path cannot hold exactly. */
  private unrepresentable(n: OnnxNode | null, why: string): never {
    return this.refuse(n, why, 'MAAS_ERR_QUANT_UNREPRESENTABLE');
  }

  /**
   * Evaluates the constant nodes an importer needs (DequantizeLinear of weights and biases, and
   * Identity or Cast of a constant); only these, as their outputs are no larger than their inputs.
   */
  private foldConstants(): void {
    for (const n of this.nodes) {
      if (n.input.length === 0 || !n.input.every((i) => i === '' || this.constants.has(i))) continue;
      if ((n as { domain?: string }).domain || !FOLDED_OPS.has(n.op_type)) continue;
      const graph = new OnnxGraph(
        [n],
        this.constants,
        [],
        n.output.map((name) => ({ name })),
        this.opset,
      );
      const out = graph.run({});
      n.output.forEach((name) => {
        const t = out[name];
        if (t) this.constants.set(name, { data: Float64Array.from(t.data), shape: t.shape, elem: this.elemOf(t.data) });
      });
    }
  }

  private elemOf(data: ArrayLike<number>): number {
    if (data instanceof Uint8Array) return UINT8;
    if (data instanceof Int8Array) return INT8;
    if (data instanceof Uint16Array) return ONNX_TYPES.UINT16;
    if (data instanceof Int16Array) return ONNX_TYPES.INT16;
    if (data instanceof Int32Array) return INT32;
    if (data instanceof Float64Array) return ONNX_TYPES.DOUBLE;
    return FLOAT;
  }

  private constant(n: OnnxNode, name: string | undefined, what: string): Value {
    const v = name ? this.constants.get(name) : undefined;
    if (!v) this.refuse(n, `its ${what} '${name ?? ''}' must be a constant (an initializer)`);
    return v;
  }

  /** A per-tensor activation quantization read from scale and zero point constants, as a u8 grid. */
  private grid(n: OnnxNode, scaleName: string | undefined, zeroName: string | undefined, tensor: string): Grid {
    const s = this.constant(n, scaleName, 'scale');
    const z = zeroName ? this.constant(n, zeroName, 'zero point') : undefined;
    if (size(s.shape) !== 1 || (z && size(z.shape) !== 1))
      this.unrepresentable(n, `maas quantizes activations per tensor; the scale has shape [${s.shape}]`);
    const scale = s.data[0]!;
    if (!(scale > 0) || !Number.isFinite(scale) || f32(scale) !== scale)
      this.refuse(n, `an activation scale must be a positive finite float32, got ${scale}`);
    const type = z?.elem ?? UINT8;
    if (type !== UINT8 && type !== INT8)
      this.unrepresentable(n, `maas quantizes activations to uint8 or int8, not ${onnxTypeName(type)}`);
    return { scale, zero: (z?.data[0] ?? 0) + (type === INT8 ? 128 : 0), tensor };
  }

  /** The only node consuming `name` (the chain must not branch). */
  private next(name: string): OnnxNode | null {
    const users = this.consumers.get(name) ?? [];
    if (users.length > 1)
      this.refuse(users[1]!, `tensor '${name}' feeds ${users.length} nodes; maas imports a chain of dense layers`);
    return users[0] ?? null;
  }

  /** s8 weights [in, out] with per-column scales from a weight DequantizeLinear (or QOperator constants). */
  private int8Weights(
    n: OnnxNode,
    q: Value,
    scale: Value,
    zero: Value | undefined,
    axis: number | null,
    transposed: boolean,
  ): { w: Int8Array; scales: Float32Array; perChannel: boolean; k: number; out: number } {
    if (q.shape.length !== 2) this.refuse(n, `the weight must be a matrix, got [${q.shape}]`);
    if (q.elem !== INT8)
      this.unrepresentable(
        n,
        `its weight is ${onnxTypeName(q.elem)}; maas packs int8 weights symmetric around 0 (quantize with weight_type=QInt8)`,
      );
    if (zero && zero.data.some((v) => v !== 0))
      this.unrepresentable(
        n,
        'its weight has a non-zero zero point; maas packs symmetric int8 weights (zero point 0), and requantizing would move weights by up to half a step',
      );
    if (q.data.some((v) => v === -128))
      this.unrepresentable(n, 'its weight holds -128; maas packs int8 weights in [-127, 127] (symmetric quantization)');
    const [rows, cols] = q.shape as [number, number];
    const [k, out] = transposed ? [cols, rows] : [rows, cols];
    const outAxis = transposed ? 0 : 1;
    let scales: Float32Array;
    const perChannel = size(scale.shape) !== 1;
    if (!perChannel) scales = new Float32Array(out).fill(scale.data[0]!);
    else {
      const a = axis === null ? 1 : axis < 0 ? axis + 2 : axis;
      if (a !== outAxis || scale.shape.length !== 1 || scale.shape[0] !== out)
        this.unrepresentable(
          n,
          `per-channel weight scales must run along the output axis (${outAxis}), ${out} of them`,
        );
      scales = Float32Array.from(scale.data);
    }
    if (!scales.every((v) => v > 0 && Number.isFinite(v))) this.refuse(n, 'weight scales must be positive and finite');
    const w = new Int8Array(k * out);
    for (let r = 0; r < k; r++)
      for (let c = 0; c < out; c++) w[r * out + c] = q.data[transposed ? c * k + r : r * out + c]!;
    return { w, scales, perChannel, k, out };
  }

  /** The weight feeding a MatMul/Gemm: a DequantizeLinear of s8 constants, or a float constant. */
  private weightOf(n: OnnxNode, name: string | undefined, transposed: boolean) {
    const dq = name ? this.producer.get(name) : undefined;
    if (dq?.op_type === 'DequantizeLinear' && this.constants.has(dq.input[0]!)) {
      const q = this.constant(dq, dq.input[0], 'weight');
      const scale = this.constant(dq, dq.input[1], 'weight scale');
      const zero = dq.input[2] ? this.constant(dq, dq.input[2], 'weight zero point') : undefined;
      if ((attrOf(dq, 'block_size')?.i ?? 0) !== 0)
        this.unrepresentable(dq, 'maas does not import blocked weight scales');
      return { int8: this.int8Weights(dq, q, scale, zero, attrOf(dq, 'axis')?.i ?? null, transposed) };
    }
    const w = this.constant(n, name, 'weight');
    if (w.shape.length !== 2) this.refuse(n, `the weight must be a matrix, got [${w.shape}]`);
    const [rows, cols] = w.shape as [number, number];
    const [k, out] = transposed ? [cols, rows] : [rows, cols];
    const kernel = new Float32Array(k * out);
    for (let r = 0; r < k; r++)
      for (let c = 0; c < out; c++) kernel[r * out + c] = w.data[transposed ? c * k + r : r * out + c]!;
    return { float: { kernel, k, out } };
  }

  private addLayer(
    n: OnnxNode,
    weights: { w: Int8Array; scales: Float32Array; perChannel: boolean; k: number; out: number },
    mode: 'static' | 'dynamic',
    input: Grid | null,
  ): ImportedQuantLayer {
    this.modes.add(mode);
    if (input) this.clampAsRelu(input);
    let inputQuant: ImportedInputQuant | undefined;
    if (mode === 'static') {
      const range = rangeFor(input!.scale, input!.zero);
      if (!range)
        this.unrepresentable(
          n,
          `no float32 range reproduces the input scale ${input!.scale} and zero point ${input!.zero}`,
        );
      inputQuant = { scale: input!.scale, zeroPoint: input!.zero, ...range };
    }
    const layer: ImportedQuantLayer = {
      name: n.name || n.output[0]!,
      in: weights.k,
      out: weights.out,
      int8: weights.w,
      weightScales: weights.scales,
      perChannel: weights.perChannel,
      kernel: Float32Array.from(weights.w, (v, i) => f32(v * weights.scales[i % weights.out]!)),
      bias: null,
      activation: 'linear',
      ...(inputQuant ? { input: inputQuant } : {}),
    };
    this.push(n, layer);
    return layer;
  }

  private push(n: OnnxNode, layer: ImportedQuantLayer): void {
    const last = this.layers[this.layers.length - 1];
    if (last && last.out !== layer.in)
      this.refuse(n, `it takes ${layer.in} features but the layer before gives ${last.out}`);
    this.layers.push(layer);
  }

  /**
   * Records a QDQ pair that maas does not apply. `afterLayer`: the pair sits on a whole layer's
   * output, where zero point 0 (u8) clamps at zero as a relu would.
   */
  private drop(fq: Grid, afterLayer: boolean): void {
    this.dropped.push({ tensor: fq.tensor, scale: fq.scale });
    if (afterLayer) this.clampAsRelu(fq);
  }

  /** A grid with zero point 0 on a linear layer's output clamps at zero: that layer is a relu. */
  private clampAsRelu(g: Grid): void {
    const last = this.layers[this.layers.length - 1];
    if (last && g.zero === 0 && last.activation === 'linear') last.activation = 'relu';
  }

  /** A per-column combined scale s·w[j] as the weight scales w with f32(s·w[j]) equal to it. */
  private splitScale(n: OnnxNode, combined: Value, s: number, out: number): Float32Array {
    const c = size(combined.shape) === 1 ? new Float64Array(out).fill(combined.data[0]!) : combined.data;
    if (c.length !== out) this.refuse(n, `the scale has ${c.length} values for ${out} columns`);
    return Float32Array.from(c, (v) => {
      let w = f32(v / s);
      for (let k = 0; k < 8 && f32(s * w) !== v; k++)
        w = f32(s * w) < v ? f32(w * (1 + 2 ** -23)) : f32(w * (1 - 2 ** -24));
      if (f32(s * w) !== v || !(w > 0))
        this.refuse(n, `its scale ${v} is not the input scale ${s} times a float32 weight scale`);
      return w;
    });
  }

  /** MatMulInteger(q, W, z[, wz]) → Cast → Mul(scale): the layer and the Mul's output. */
  private matMulInteger(
    n: OnnxNode,
    input: Grid | null,
    dynScale: string | null,
  ): { layer: ImportedQuantLayer; out: string } {
    const q = this.constant(n, n.input[1], 'weight');
    const wz = n.input[3] ? this.constant(n, n.input[3], 'weight zero point') : undefined;
    const cast = this.next(n.output[0]!);
    if (cast?.op_type !== 'Cast' || (attrOf(cast, 'to')?.i ?? 0) !== FLOAT)
      this.refuse(cast ?? n, 'MatMulInteger must be followed by a Cast to float');
    const mul = this.next(cast.output[0]!);
    if (mul?.op_type !== 'Mul') this.refuse(mul ?? cast, 'the Cast must be followed by a Mul by the scales');
    const other = mul.input.find((i) => i !== cast.output[0]);
    const out = q.shape[1] ?? 0;
    let scales: Float32Array;
    if (dynScale) {
      // The dynamic form multiplies by Mul(x_scale, w_scale).
      const sm = other ? this.producer.get(other) : undefined;
      const ws = sm?.op_type === 'Mul' ? sm.input.find((i) => i !== dynScale) : undefined;
      if (!sm || !sm.input.includes(dynScale) || !ws || !this.constants.has(ws))
        this.refuse(mul, 'the dynamic scale must be Mul(x_scale, weight_scale) with a constant weight scale');
      const w = this.constant(sm, ws, 'weight scale');
      scales = size(w.shape) === 1 ? new Float32Array(out).fill(w.data[0]!) : Float32Array.from(w.data);
    } else {
      scales = this.splitScale(mul, this.constant(mul, other, 'scale'), input!.scale, out);
    }
    const weights = this.int8Weights(
      n,
      q,
      { data: Float64Array.from(scales), shape: [out], elem: FLOAT },
      wz,
      1,
      false,
    );
    weights.perChannel = new Set(scales).size > 1;
    const layer = this.addLayer(n, weights, dynScale ? 'dynamic' : 'static', input);
    return { layer, out: mul.output[0]! };
  }

  /** Walks from the graph input to its output. */
  run(inputName: string, outputName: string): void {
    let cur = inputName;
    let quantized: Grid | null = null; // the current tensor holds quantized levels
    let fq: Grid | null = null; // the current float tensor sits on this grid (a QDQ pair)
    const last = () => this.layers[this.layers.length - 1];
    const seen = new Set<OnnxNode>();
    for (let n = this.next(cur); n; n = this.next(cur)) {
      if (seen.has(n)) this.refuse(n, 'the graph has a cycle');
      seen.add(n);
      if ((n as { domain?: string }).domain)
        this.refuse(
          n,
          `operators of domain '${(n as { domain?: string }).domain}' are not imported (quantize with the default-domain QDQ or QOperator ops)`,
        );
      const op = n.op_type;
      if (quantized && !['DequantizeLinear', 'QLinearMatMul', 'MatMulInteger'].includes(op))
        this.refuse(n, 'a quantized tensor must feed DequantizeLinear, QLinearMatMul or MatMulInteger');
      switch (op) {
        case 'QuantizeLinear': {
          if (n.input[0] !== cur) this.refuse(n, 'the data must be its first input');
          quantized = this.grid(n, n.input[1], n.input[2], cur);
          if (fq && (fq.scale !== quantized.scale || fq.zero !== quantized.zero)) this.drop(fq, true);
          fq = null;
          break;
        }
        case 'DequantizeLinear': {
          if (!quantized) this.refuse(n, 'it must dequantize the tensor a QuantizeLinear or QLinearMatMul made');
          const g = this.grid(n, n.input[1], n.input[2], cur);
          if (g.scale !== quantized.scale || g.zero !== quantized.zero)
            this.refuse(
              n,
              `it dequantizes with scale ${g.scale}, zero point ${g.zero} what was quantized with ${quantized.scale}, ${quantized.zero}`,
            );
          fq = quantized;
          quantized = null;
          break;
        }
        case 'DynamicQuantizeLinear': {
          if (fq) this.drop(fq, true);
          fq = null;
          const [q, s] = n.output as [string, string, string];
          const mmi = this.next(q);
          if (mmi?.op_type !== 'MatMulInteger' || mmi.input[0] !== q || mmi.input[2] !== n.output[2])
            this.refuse(mmi ?? n, 'DynamicQuantizeLinear must feed MatMulInteger with its zero point');
          const r = this.matMulInteger(mmi, null, s);
          cur = r.out;
          continue;
        }
        case 'MatMulInteger': {
          if (!quantized || n.input[0] !== cur) this.refuse(n, 'its first input must be the quantized data');
          const z = n.input[2] ? this.constant(n, n.input[2], 'zero point') : undefined;
          if ((z?.data[0] ?? 0) + (z?.elem === INT8 ? 128 : 0) !== quantized.zero)
            this.refuse(n, 'its zero point must be the one the data was quantized with');
          const r = this.matMulInteger(n, quantized, null);
          quantized = null;
          cur = r.out;
          continue;
        }
        case 'QLinearMatMul': {
          if (!quantized || n.input[0] !== cur) this.refuse(n, 'its first input must be the quantized data');
          const a = this.grid(n, n.input[1], n.input[2], cur);
          if (a.scale !== quantized.scale || a.zero !== quantized.zero)
            this.refuse(n, 'its a_scale and a_zero_point must be the ones the data was quantized with');
          const q = this.constant(n, n.input[3], 'weight');
          const weights = this.int8Weights(
            n,
            q,
            this.constant(n, n.input[4], 'weight scale'),
            this.constant(n, n.input[5], 'weight zero point'),
            1,
            false,
          );
          this.addLayer(n, weights, 'static', quantized);
          // The output is requantized onto y's grid: the next layer's input (or dropped after a DequantizeLinear).
          quantized = this.grid(n, n.input[6], n.input[7], n.output[0]!);
          break;
        }
        case 'MatMul':
        case 'Gemm': {
          if (n.input[0] !== cur) this.refuse(n, 'the data must be its first input');
          const gemm = op === 'Gemm';
          if (
            gemm &&
            ((attrOf(n, 'transA')?.i ?? 0) !== 0 ||
              (attrOf(n, 'alpha')?.f ?? 1) !== 1 ||
              (attrOf(n, 'beta')?.f ?? 1) !== 1)
          )
            this.refuse(n, 'maas imports Gemm with transA 0, alpha 1 and beta 1');
          const w = this.weightOf(n, n.input[1], gemm && (attrOf(n, 'transB')?.i ?? 0) !== 0);
          let layer: ImportedQuantLayer;
          if (w.int8 && fq) layer = this.addLayer(n, w.int8, 'static', fq);
          else if (w.int8)
            this.refuse(
              n,
              'its s8 weight multiplies an input that is not quantized (no QuantizeLinear → DequantizeLinear before it)',
            );
          else {
            if (fq) this.drop(fq, true);
            const { kernel, k, out } = w.float;
            layer = {
              name: n.name || n.output[0]!,
              in: k,
              out,
              int8: null,
              weightScales: null,
              perChannel: false,
              kernel,
              bias: null,
              activation: 'linear',
            };
            this.push(n, layer);
          }
          if (gemm && n.input[2]) {
            const c = this.constant(n, n.input[2], 'bias');
            if (size(c.shape) !== layer.out) this.refuse(n, `C must be a row of ${layer.out}`);
            layer.bias = Float32Array.from(c.data);
          }
          fq = null;
          break;
        }
        case 'Add': {
          const other = n.input.find((i) => i !== cur);
          const l = last();
          if (!l || l.bias || l.activation !== 'linear' || !other)
            this.refuse(n, 'only a bias added right after MatMul is imported');
          const b = this.constant(n, other, 'bias');
          if (size(b.shape) !== l.out) this.refuse(n, `the bias must be a row of ${l.out}`);
          if (fq) this.drop(fq, false);
          fq = null;
          l.bias = Float32Array.from(b.data);
          break;
        }
        case 'Relu':
        case 'Sigmoid':
        case 'Tanh':
        case 'LeakyRelu':
        case 'Elu':
        case 'Softmax': {
          const l = last();
          if (!l || (l.activation !== 'linear' && !(op === 'Relu' && l.activation === 'relu')))
            this.refuse(n, 'an activation must follow a MatMul or Gemm without one');
          if (fq) this.drop(fq, false);
          fq = null;
          if (op === 'Softmax') {
            const axis = attrOf(n, 'axis')?.i ?? (this.opset >= 13 ? -1 : 1);
            if (axis !== -1 && axis !== 1) this.refuse(n, `softmax over axis ${axis} of a [batch, features] tensor`);
          }
          l.activation = (
            {
              Relu: 'relu',
              Sigmoid: 'sigmoid',
              Tanh: 'tanh',
              LeakyRelu: 'leakyRelu',
              Elu: 'elu',
              Softmax: 'softmax',
            } as const
          )[op];
          if (op === 'LeakyRelu') l.alpha = attrOf(n, 'alpha')?.f ?? 0.01;
          if (op === 'Elu') l.alpha = attrOf(n, 'alpha')?.f ?? 1;
          break;
        }
        case 'Identity':
        case 'Dropout':
          break;
        default:
          this.refuse(
            n,
            'maas imports QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, MatMul, Gemm, Add, activations, Identity and Dropout',
          );
      }
      cur = n.output[0]!;
    }
    if (cur !== outputName) this.refuse(null, `the chain ends at '${cur}' but the graph output is '${outputName}'`);
    if (quantized)
      this.refuse(null, 'the graph outputs quantized integers; maas models output float32 (end with DequantizeLinear)');
    if (fq) this.drop(fq, true);
    if (!this.layers.some((l) => l.int8))
      this.refuse(null, 'it has no quantized layer; load float models with loadModel');
    if (this.modes.size > 1)
      this.unrepresentable(null, 'it mixes static and dynamic quantization; a maas int8 model is one or the other');
  }

  get mode(): 'static' | 'dynamic' {
    return this.modes.has('dynamic') ? 'dynamic' : 'static';
  }
}

/** Refuses layers the int8 path cannot run: a non-finite weight or bias, a scale or zero point out of range. */
function checkPlausible(layers: readonly ImportedQuantLayer[], path: string): void {
  for (const l of layers) {
    checkFinite(l.kernel, `Layer ${l.name}'s kernel`, path);
    if (l.bias) checkFinite(l.bias, `Layer ${l.name}'s bias`, path);
    const problem = int8ParamsProblem(l);
    if (problem)
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Layer ${l.name} of ${path} cannot run in int8: ${problem}`);
  }
}

/**
 * Reads an ONNX Runtime–quantized (or maas-exported) .onnx file into maas's int8 layers,
 * verifying the digest it records (required under strictIntegrity).
 */
export function readQuantizedOnnx(
  path: string,
  options: IntegrityOptions & DecryptionOptions = {},
): Promise<ImportedQuantModel> {
  return asLoader(path, () => readQuantized(path, options));
}

async function readQuantized(path: string, options: IntegrityOptions & DecryptionOptions): Promise<ImportedQuantModel> {
  const model = await decodeOnnxFile(path, options);
  const graph = model.graph;
  if (!graph?.node?.length) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} has no graph nodes`);
  const init = initializerValues(model);
  const inputs = (graph.input ?? []).filter((i) => !init.has(i.name));
  const outputs = graph.output ?? [];
  if (inputs.length !== 1 || outputs.length !== 1)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected one graph input and one output in ${path} but received ${inputs.length} inputs and ${outputs.length} outputs`,
    );
  const dims = inputs[0]!.type?.tensor_type?.shape?.dim ?? [];
  const width = dims.length === 2 && dims[1]?.dim_value !== undefined ? num(dims[1].dim_value) : undefined;
  const importer = new Importer(path, graph.node, init, defaultOpset(model));
  importer.run(inputs[0]!.name, outputs[0]!.name);
  if (width !== undefined && importer.layers[0]!.in !== width)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The graph input of ${path} has ${width} features but its first layer takes ${importer.layers[0]!.in}`,
    );
  checkPlausible(importer.layers, path);
  return {
    mode: importer.mode,
    layers: importer.layers,
    droppedRoundings: importer.dropped,
    inputName: inputs[0]!.name,
    outputName: outputs[0]!.name,
  };
}
