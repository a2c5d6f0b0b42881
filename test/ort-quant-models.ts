/**
 * Test models in the shapes ONNX Runtime's quantization tools emit (read from their documented
 * layouts, written here from scratch): quantize_static QDQ (Q→DQ around the data, DQ of s8
 * weights per tensor or per channel, int32 bias DQ for Gemm, Relu folded into a zero-point-0
 * pair, a final pair on the output), QOperator (QuantizeLinear → QLinearMatMul → DequantizeLinear
 * → Add), and quantize_dynamic (DynamicQuantizeLinear → MatMulInteger → Cast → Mul by
 * Mul(x_scale, W_scale) → Add). Parameters follow the tools' arithmetic: activations asymmetric
 * over the calibrated range widened to hold 0, weights symmetric in [−127, 127].
 */
import { T, info, writeModel, type WNode, type WTensor } from './onnx-writer.js';

const f32 = Math.fround;
const rne = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** A float dense layer: kernel [in, out] row-major. */
export interface FloatLayer {
  in: number;
  out: number;
  kernel: Float32Array;
  bias: Float32Array;
  relu: boolean;
}

/** Seeded float layers in → hidden… → out (relu between, linear last). */
export function floatLayers(sizes: number[], seed: number): FloatLayer[] {
  return sizes.slice(1).map((out, i) => {
    const n = sizes[i]!;
    const lim = Math.sqrt(6 / (n + out));
    return {
      in: n,
      out,
      kernel: Float32Array.from({ length: n * out }, (_, k) => lim * Math.sin(seed * 12.9 + i * 7.7 + k * 2.3)),
      bias: Float32Array.from({ length: out }, (_, k) => 0.2 * Math.cos(seed + i * 3.1 + k * 1.9)),
      relu: i < sizes.length - 2,
    };
  });
}

/** Seeded rows in (−2, 2). */
export const rows = (n: number, width: number, seed: number) =>
  Float32Array.from({ length: n * width }, (_, i) => 2 * Math.sin(seed * 3.7 + i * 0.91));

/** The float forward pass, keeping every layer's pre-activation and output. */
export function forward(layers: FloatLayer[], x: Float32Array, batch: number) {
  const pre: Float32Array[] = [],
    post: Float32Array[] = [x];
  let h = x;
  for (const l of layers) {
    const z = new Float32Array(batch * l.out);
    for (let b = 0; b < batch; b++)
      for (let j = 0; j < l.out; j++) {
        let acc = l.bias[j]!;
        for (let p = 0; p < l.in; p++) acc += h[b * l.in + p]! * l.kernel[p * l.out + j]!;
        z[b * l.out + j] = acc;
      }
    pre.push(z);
    h = l.relu ? z.map((v) => Math.max(v, 0)) : z;
    post.push(h);
  }
  return { pre, post };
}

/** ONNX Runtime's activation parameters: asymmetric over [min(rmin,0), max(rmax,0)]. */
export function activationQuant(values: Float32Array, signed: boolean): { scale: number; zero: number } {
  let lo = 0,
    hi = 0;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const [qmin, qmax] = signed ? [-128, 127] : [0, 255];
  const scale = f32((hi - lo) / (qmax - qmin));
  const zero = Math.max(qmin, Math.min(qmax, rne(qmin - lo / scale)));
  return { scale, zero };
}

/** Symmetric s8 weights in [−127, 127]: per output column, or one scale for the tensor. */
export function weightQuant(l: FloatLayer, perChannel: boolean): { q: Int8Array; scales: Float32Array } {
  const absMax = new Float32Array(l.out);
  for (let p = 0; p < l.in; p++)
    for (let j = 0; j < l.out; j++) absMax[j] = Math.max(absMax[j]!, Math.abs(l.kernel[p * l.out + j]!));
  if (!perChannel) absMax.fill(Math.max(...absMax));
  const scales = Float32Array.from(absMax, (m) => f32((2 * m) / 254));
  const q = Int8Array.from(l.kernel, (w, k) => Math.max(-127, Math.min(127, rne(w / scales[k % l.out]!))));
  return { q, scales };
}

function transpose(q: Int8Array, rows: number, cols: number): Int8Array {
  const out = new Int8Array(q.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = q[r * cols + c]!;
  return out;
}

interface Built {
  bytes: Uint8Array;
  /** Each layer's input scale (for bounds). */
  inputScales: number[];
  /** The scale of the final output pair (0 when there is none). */
  outputScale: number;
  /** Dequantized weights per layer [in, out]. */
  weights: Float32Array[];
}

/** Options of the QDQ writer. */
export interface QdqOptions {
  /** Gemm(transB=1) with an int32 bias (PyTorch Linear), or MatMul + Add (Keras Dense). */
  op: 'gemm' | 'matmul';
  perChannel: boolean;
  /** QInt8 (s8 asymmetric) activations instead of QUInt8. */
  signedActivations: boolean;
  /** u8 weights with a zero point (weight_type=QUInt8): maas must refuse these. */
  uint8Weights?: boolean;
}

/**
 * quantize_static(QuantFormat.QDQ): every activation tensor gets a QuantizeLinear/DequantizeLinear
 * pair named <tensor>_QuantizeLinear(_Output) and <tensor>_DequantizeLinear(_Output); weights are
 * <W>_quantized with <W>_scale and <W>_zero_point; a Relu is removed and its range moved onto the
 * pair after the Gemm (zero point at the type's minimum).
 */
export function qdqModel(layers: FloatLayer[], calib: Float32Array, batch: number, o: QdqOptions): Built {
  const { pre, post } = forward(layers, calib, batch);
  const nodes: WNode[] = [];
  const init: WTensor[] = [];
  const act = o.signedActivations ? T.INT8 : T.UINT8;
  const qdq = (tensor: string, values: Float32Array): { out: string; scale: number } => {
    const p = activationQuant(values, o.signedActivations);
    init.push({ name: `${tensor}_scale`, type: T.FLOAT, dims: [], values: [p.scale] });
    init.push({ name: `${tensor}_zero_point`, type: act, dims: [], values: [p.zero] });
    const q = `${tensor}_QuantizeLinear_Output`,
      d = `${tensor}_DequantizeLinear_Output`;
    nodes.push({
      op: 'QuantizeLinear',
      name: `${tensor}_QuantizeLinear`,
      input: [tensor, `${tensor}_scale`, `${tensor}_zero_point`],
      output: q,
    });
    nodes.push({
      op: 'DequantizeLinear',
      name: `${tensor}_DequantizeLinear`,
      input: [q, `${tensor}_scale`, `${tensor}_zero_point`],
      output: d,
    });
    return { out: d, scale: p.scale };
  };
  let cur = 'input';
  const inputScales: number[] = [],
    weights: Float32Array[] = [];
  let outputScale = 0;
  layers.forEach((l, i) => {
    const a = qdq(cur, post[i]!);
    inputScales.push(a.scale);
    const w = weightQuant(l, o.perChannel);
    weights.push(Float32Array.from(w.q, (v, k) => f32(v * w.scales[k % l.out]!)));
    const W = o.op === 'gemm' ? `fc${i}.weight` : `dense_${i}/kernel`;
    const wq = o.op === 'gemm' ? transpose(w.q, l.in, l.out) : w.q;
    const dims = o.op === 'gemm' ? [l.out, l.in] : [l.in, l.out];
    const wscaleDims = o.perChannel ? [l.out] : [];
    if (o.uint8Weights) {
      init.push({ name: `${W}_quantized`, type: T.UINT8, dims, values: Array.from(wq, (v) => v + 128) });
      init.push({
        name: `${W}_zero_point`,
        type: T.UINT8,
        dims: wscaleDims,
        values: wscaleDims.length ? Array(l.out).fill(128) : [128],
      });
    } else {
      init.push({ name: `${W}_quantized`, type: T.INT8, dims, values: wq });
      init.push({
        name: `${W}_zero_point`,
        type: T.INT8,
        dims: wscaleDims,
        values: wscaleDims.length ? Array(l.out).fill(0) : [0],
      });
    }
    init.push({
      name: `${W}_scale`,
      type: T.FLOAT,
      dims: wscaleDims,
      values: o.perChannel ? w.scales : [w.scales[0]!],
    });
    nodes.push({
      op: 'DequantizeLinear',
      name: `${W}_DequantizeLinear`,
      input: [`${W}_quantized`, `${W}_scale`, `${W}_zero_point`],
      output: `${W}_DequantizeLinear_Output`,
      ...(o.perChannel ? { attrs: { axis: o.op === 'gemm' ? 0 : 1 } } : {}),
    });
    const z = `layer${i}_out`;
    if (o.op === 'gemm') {
      // The bias quantized to int32 with scale input_scale · weight_scale (per channel), zero point 0.
      const B = `fc${i}.bias`;
      const bscale = Float32Array.from(w.scales, (s) => f32(a.scale * s));
      init.push({
        name: `${B}_quantized`,
        type: T.INT32,
        dims: [l.out],
        values: Array.from(l.bias, (b, j) => rne(b / bscale[j]!)),
      });
      init.push({
        name: `${B}_quantized_scale`,
        type: T.FLOAT,
        dims: o.perChannel ? [l.out] : [],
        values: o.perChannel ? bscale : [bscale[0]!],
      });
      init.push({
        name: `${B}_quantized_zero_point`,
        type: T.INT32,
        dims: o.perChannel ? [l.out] : [],
        values: o.perChannel ? Array(l.out).fill(0) : [0],
      });
      nodes.push({
        op: 'DequantizeLinear',
        name: `${B}_quantized_DequantizeLinear`,
        input: [`${B}_quantized`, `${B}_quantized_scale`, `${B}_quantized_zero_point`],
        output: `${B}_quantized_DequantizeLinear_Output`,
        ...(o.perChannel ? { attrs: { axis: 0 } } : {}),
      });
      nodes.push({
        op: 'Gemm',
        name: `/fc${i}/Gemm`,
        input: [a.out, `${W}_DequantizeLinear_Output`, `${B}_quantized_DequantizeLinear_Output`],
        output: z,
        attrs: { transB: 1 },
      });
      // The Relu is removed: its range (≥ 0) goes onto the pair after the Gemm, or the next layer's input pair.
      cur = z;
      if (i === layers.length - 1) {
        const out = qdq(z, pre[i]!);
        outputScale = out.scale;
        cur = out.out;
      }
    } else {
      const mm = `dense_${i}/MatMul:0`;
      nodes.push({
        op: 'MatMul',
        name: `dense_${i}/MatMul`,
        input: [a.out, `${W}_DequantizeLinear_Output`],
        output: mm,
      });
      const mmq = qdq(
        mm,
        pre[i]!.map((v, k) => v - l.bias[k % l.out]!),
      );
      // The bias is an Add initializer, quantized like a weight (s8 symmetric, per tensor).
      const B = `dense_${i}/bias`;
      const bmax = Math.max(...l.bias.map(Math.abs));
      const bs = f32((2 * bmax) / 254);
      init.push({
        name: `${B}_quantized`,
        type: T.INT8,
        dims: [l.out],
        values: Array.from(l.bias, (b) => rne(b / bs)),
      });
      init.push({ name: `${B}_scale`, type: T.FLOAT, dims: [], values: [bs] });
      init.push({ name: `${B}_zero_point`, type: T.INT8, dims: [], values: [0] });
      nodes.push({
        op: 'DequantizeLinear',
        name: `${B}_DequantizeLinear`,
        input: [`${B}_quantized`, `${B}_scale`, `${B}_zero_point`],
        output: `${B}_DequantizeLinear_Output`,
      });
      nodes.push({
        op: 'Add',
        name: `dense_${i}/BiasAdd`,
        input: [mmq.out, `${B}_DequantizeLinear_Output`],
        output: z,
      });
      cur = z;
      if (l.relu) {
        const r = qdq(z, pre[i]!);
        nodes.push({ op: 'Relu', name: `dense_${i}/Relu`, input: [r.out], output: `dense_${i}/Relu:0` });
        cur = `dense_${i}/Relu:0`;
      } else {
        const out = qdq(z, pre[i]!);
        outputScale = out.scale;
        cur = out.out;
      }
    }
  });
  nodes.push({ op: 'Identity', name: 'output_identity', input: [cur], output: 'output' });
  const bytes = writeModel({
    opset: 13,
    nodes,
    initializers: init,
    inputs: [info('input', T.FLOAT, ['N', layers[0]!.in])],
    outputs: [info('output', T.FLOAT, ['N', layers[layers.length - 1]!.out])],
  });
  return { bytes, inputScales, outputScale, weights };
}

/**
 * QOperator static: QuantizeLinear → QLinearMatMul (u8 × s8, per-channel or per-tensor weights,
 * u8 output) → DequantizeLinear → Add bias → (Relu) → next layer's QuantizeLinear …
 */
export function qoperatorModel(layers: FloatLayer[], calib: Float32Array, batch: number, perChannel: boolean): Built {
  const { pre, post } = forward(layers, calib, batch);
  const nodes: WNode[] = [];
  const init: WTensor[] = [];
  const inputScales: number[] = [],
    weights: Float32Array[] = [];
  let cur = 'input';
  let outputScale = 0;
  layers.forEach((l, i) => {
    const a = activationQuant(post[i]!, false);
    inputScales.push(a.scale);
    const y = activationQuant(
      pre[i]!.map((v, k) => v - l.bias[k % l.out]!),
      false,
    );
    const w = weightQuant(l, perChannel);
    weights.push(Float32Array.from(w.q, (v, k) => f32(v * w.scales[k % l.out]!)));
    const p = `l${i}`;
    init.push(
      { name: `${p}_x_scale`, type: T.FLOAT, dims: [], values: [a.scale] },
      { name: `${p}_x_zero_point`, type: T.UINT8, dims: [], values: [a.zero] },
      { name: `${p}_W_quantized`, type: T.INT8, dims: [l.in, l.out], values: w.q },
      {
        name: `${p}_W_scale`,
        type: T.FLOAT,
        dims: perChannel ? [l.out] : [],
        values: perChannel ? w.scales : [w.scales[0]!],
      },
      {
        name: `${p}_W_zero_point`,
        type: T.INT8,
        dims: perChannel ? [l.out] : [],
        values: perChannel ? Array(l.out).fill(0) : [0],
      },
      { name: `${p}_y_scale`, type: T.FLOAT, dims: [], values: [y.scale] },
      { name: `${p}_y_zero_point`, type: T.UINT8, dims: [], values: [y.zero] },
      { name: `${p}_bias`, type: T.FLOAT, dims: [l.out], values: l.bias },
    );
    nodes.push(
      {
        op: 'QuantizeLinear',
        name: `${p}_QuantizeLinear`,
        input: [cur, `${p}_x_scale`, `${p}_x_zero_point`],
        output: `${p}_x_quantized`,
      },
      {
        op: 'QLinearMatMul',
        name: `${p}_MatMul_quant`,
        input: [
          `${p}_x_quantized`,
          `${p}_x_scale`,
          `${p}_x_zero_point`,
          `${p}_W_quantized`,
          `${p}_W_scale`,
          `${p}_W_zero_point`,
          `${p}_y_scale`,
          `${p}_y_zero_point`,
        ],
        output: `${p}_mm_quantized`,
      },
      {
        op: 'DequantizeLinear',
        name: `${p}_mm_DequantizeLinear`,
        input: [`${p}_mm_quantized`, `${p}_y_scale`, `${p}_y_zero_point`],
        output: `${p}_mm`,
      },
      { op: 'Add', name: `${p}_Add`, input: [`${p}_mm`, `${p}_bias`], output: `${p}_z` },
    );
    cur = `${p}_z`;
    if (l.relu) {
      nodes.push({ op: 'Relu', name: `${p}_Relu`, input: [cur], output: `${p}_h` });
      cur = `${p}_h`;
    }
    // The last QLinearMatMul's output rounding lands before the bias: that is the output step.
    if (i === layers.length - 1) outputScale = y.scale;
  });
  nodes.push({ op: 'Identity', name: 'out', input: [cur], output: 'output' });
  return {
    bytes: writeModel({
      opset: 13,
      nodes,
      initializers: init,
      inputs: [info('input', T.FLOAT, ['N', layers[0]!.in])],
      outputs: [info('output', T.FLOAT, ['N', layers[layers.length - 1]!.out])],
    }),
    inputScales,
    outputScale,
    weights,
  };
}

/** quantize_dynamic: DynamicQuantizeLinear → MatMulInteger → Cast → Mul(Mul(x_scale, W_scale)) → Add → Relu. */
export function dynamicModel(layers: FloatLayer[], perChannel: boolean): Built {
  const nodes: WNode[] = [];
  const init: WTensor[] = [];
  const weights: Float32Array[] = [];
  let cur = 'input';
  layers.forEach((l, i) => {
    const w = weightQuant(l, perChannel);
    weights.push(Float32Array.from(w.q, (v, k) => f32(v * w.scales[k % l.out]!)));
    const W = `dense_${i}/kernel`;
    init.push(
      { name: `${W}_quantized`, type: T.INT8, dims: [l.in, l.out], values: w.q },
      {
        name: `${W}_scale`,
        type: T.FLOAT,
        dims: perChannel ? [l.out] : [],
        values: perChannel ? w.scales : [w.scales[0]!],
      },
      {
        name: `${W}_zero_point`,
        type: T.INT8,
        dims: perChannel ? [l.out] : [],
        values: perChannel ? Array(l.out).fill(0) : [0],
      },
      { name: `dense_${i}/bias`, type: T.FLOAT, dims: [l.out], values: l.bias },
    );
    const x = cur.replace(/[/:]/g, '_');
    const mm = `dense_${i}/MatMul:0`;
    nodes.push(
      {
        op: 'DynamicQuantizeLinear',
        name: `${x}_QuantizeLinear`,
        input: [cur],
        output: [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`],
      },
      { op: 'Mul', name: `${mm}_scales_mul`, input: [`${x}_scale`, `${W}_scale`], output: `${mm}_scales_mul:0` },
      {
        op: 'MatMulInteger',
        name: `dense_${i}/MatMul_quant`,
        input: [`${x}_quantized`, `${W}_quantized`, `${x}_zero_point`, `${W}_zero_point`],
        output: `${mm}_output_quantized`,
      },
      {
        op: 'Cast',
        name: `${mm}_output_quantized_cast`,
        input: [`${mm}_output_quantized`],
        output: `${mm}_output_quantized_cast_output`,
        attrs: { to: T.FLOAT },
      },
      {
        op: 'Mul',
        name: `${mm}_scales_mul_quant`,
        input: [`${mm}_output_quantized_cast_output`, `${mm}_scales_mul:0`],
        output: mm,
      },
      { op: 'Add', name: `dense_${i}/BiasAdd`, input: [mm, `dense_${i}/bias`], output: `dense_${i}/BiasAdd:0` },
    );
    cur = `dense_${i}/BiasAdd:0`;
    if (l.relu) {
      nodes.push({ op: 'Relu', name: `dense_${i}/Relu`, input: [cur], output: `dense_${i}/Relu:0` });
      cur = `dense_${i}/Relu:0`;
    }
  });
  nodes.push({ op: 'Identity', name: 'out', input: [cur], output: 'output' });
  return {
    bytes: writeModel({
      opset: 13,
      nodes,
      initializers: init,
      inputs: [info('input', T.FLOAT, ['N', layers[0]!.in])],
      outputs: [info('output', T.FLOAT, ['N', layers[layers.length - 1]!.out])],
    }),
    inputScales: [],
    outputScale: 0,
    weights,
  };
}
