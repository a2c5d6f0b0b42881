/**
 * Calibration: the range of each layer's input over representative data, by min/max, by
 * percentile, or by entropy (the clipping threshold whose 8-bit histogram loses the least
 * information, measured as KL divergence). Activations are computed in fp32, layer by layer.
 */

/** How activation ranges are chosen; 'dynamic' takes each batch's own range at predict time. */
export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy' | 'dynamic';
/** The ways quantize() can choose each layer's input range (dynamic: per batch, at run time). */
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'entropy', 'dynamic'];

/** A calibrated range. */
export interface Range {
  min: number;
  max: number;
}

function minMax(values: Float32Array): Range {
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** The [100 − p, p] percentiles of the values (nearest rank). */
function percentileRange(values: Float32Array, p: number): Range {
  const sorted = Float32Array.from(values).sort();
  const at = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.round((q / 100) * (sorted.length - 1))))]!;
  return { min: at(100 - p), max: at(p) };
}

const BINS = 2048;
const LEVELS = 256;

/** KL(p || q) of two unnormalized histograms over the same bins (zero q where p > 0 costs a lot). */
function kl(p: Float64Array, q: Float64Array): number {
  let sp = 0,
    sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i]!;
    sq += q[i]!;
  }
  let d = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! === 0) continue;
    const pi = p[i]! / sp,
      qi = q[i]! / sq;
    d += qi > 0 ? pi * Math.log(pi / qi) : pi * 30;
  }
  return d;
}

/**
 * The threshold t on |x| whose clipped distribution, re-expressed in LEVELS levels, stays closest
 * to the original (TensorRT's entropy calibration), then the range clipped to [−t, t].
 */
function entropyRange(values: Float32Array): Range {
  const full = minMax(values);
  const absMax = Math.max(Math.abs(full.min), Math.abs(full.max));
  if (!(absMax > 0)) return full;
  const hist = new Float64Array(BINS);
  const width = absMax / BINS;
  for (let i = 0; i < values.length; i++) hist[Math.min(BINS - 1, Math.floor(Math.abs(values[i]!) / width))]! += 1;
  let best = BINS,
    bestKl = Infinity;
  for (let t = LEVELS; t <= BINS; t += 16) {
    const p = hist.slice(0, t);
    for (let i = t; i < BINS; i++) p[t - 1]! += hist[i]!; // outliers fold into the last kept bin
    const q = new Float64Array(t);
    const per = t / LEVELS;
    for (let l = 0; l < LEVELS; l++) {
      const start = Math.floor(l * per),
        end = Math.floor((l + 1) * per);
      let sum = 0,
        nonzero = 0;
      for (let i = start; i < end; i++) {
        sum += hist[i]!;
        if (hist[i]! > 0) nonzero++;
      }
      for (let i = start; i < end; i++) if (hist[i]! > 0) q[i] = sum / nonzero;
    }
    const d = kl(p, q);
    if (d < bestKl) {
      bestKl = d;
      best = t;
    }
  }
  const threshold = (best + 0.5) * width;
  return { min: Math.max(full.min, -threshold), max: Math.min(full.max, threshold) };
}

/** The range of one layer's input under `method` ('dynamic' records min/max for information). */
export function calibrateRange(values: Float32Array, method: CalibrationMethod, percentile: number): Range {
  if (method === 'percentile') return percentileRange(values, percentile);
  if (method === 'entropy') return entropyRange(values);
  return minMax(values);
}
