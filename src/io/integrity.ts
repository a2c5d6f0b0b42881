/**
 * Integrity of model files: the SHA-256 digests maas records when it saves a model and checks
 * when it loads one, the strict policy that refuses a file without a digest, and the
 * plausibility checks every format's values pass whether or not a digest was recorded (finite
 * weights; int8 scales and zero points inside the range the kernels' arithmetic stays exact in).
 *
 * What each format's digest covers is defined next to its reader and writer: artifacts.ts
 * (tfjs model.json), onnx-digest.ts (ONNX metadata_props), keras-h5.ts (a root attribute).
 */
import { createHash } from 'node:crypto';
import { MaasError, describeValue } from '../core/errors.js';

/** How strictly a loader treats a file's recorded digests. */
export interface IntegrityOptions {
  /**
   * Refuse a model file that records no digest of its contents (MAAS_ERR_MODEL_DIGEST_MISSING)
   * instead of loading it unverified. A digest that is recorded is always verified.
   */
  strictIntegrity?: boolean;
}

/** The lowercase hex SHA-256 of bytes given in parts. */
export function sha256Hex(...parts: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return hash.digest('hex');
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What a recorded digest is checked against: the file, what covers it, and how to compute it. */
export interface DigestCheck {
  /** The model file, for messages. */
  path: string;
  /** Where the digest is recorded, for messages ("maas.weightsSha256 in model.json"). */
  field: string;
  /** What the digest covers, for messages ("the weights files"). */
  covers: string;
}

/**
 * Verifies a recorded digest: it must be a lowercase hex SHA-256 and equal the one computed.
 * `compute` runs only for a well-formed record.
 */
export function verifyDigest(recorded: unknown, compute: () => string, check: DigestCheck): void {
  if (typeof recorded !== 'string' || !SHA256_HEX.test(recorded))
    throw new MaasError(
      'MAAS_ERR_MODEL_INTEGRITY',
      `${check.path} records ${check.field} but it is not a SHA-256 (64 lowercase hex digits): the file is damaged or was edited`,
    );
  if (compute() !== recorded)
    throw new MaasError(
      'MAAS_ERR_MODEL_INTEGRITY',
      `${check.covers} of ${check.path} do not match the SHA-256 recorded in ${check.field}: damaged, edited or mixed files`,
    );
}

/** Under strictIntegrity, refuses a file whose format records no digest; `remedy` says how to get one. */
export function requireDigest(options: IntegrityOptions, recorded: boolean, path: string, remedy: string): void {
  if (options.strictIntegrity && !recorded)
    throw new MaasError(
      'MAAS_ERR_MODEL_DIGEST_MISSING',
      `strictIntegrity refuses ${path}: it records no digest of its contents to verify (${remedy})`,
    );
}

/**
 * A JSON value's canonical text: object keys in sorted order, no whitespace, every other value as
 * JSON.stringify writes it. A value parsed from JSON gives the same text as the value that was
 * written, whatever the key order or spacing of the file in between.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    );
  });
}

/**
 * Bounds of an int8 scale (a weight column's, or an activation's). Within them the product of an
 * input scale and a weight scale (the kernels' combined per-column factor) stays a normal float32
 * (1e-36 > 2^-126 ≈ 1.2e-38; 1e36 < 3.4e38), so it never flushes to zero or overflows, and a level
 * times a scale (255 · 1e18) is finite. Real models' scales lie between about 1e-8 and 1e4.
 */
export const INT8_SCALE_BOUNDS = { min: 1e-18, max: 1e18 } as const;

/** Whether a scale is one the int8 arithmetic takes: finite, positive, within INT8_SCALE_BOUNDS. */
export function isPlausibleScale(scale: number): boolean {
  return scale >= INT8_SCALE_BOUNDS.min && scale <= INT8_SCALE_BOUNDS.max;
}

/** The index of the first NaN or infinity in `values`, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/** Refuses a tensor holding NaN or an infinity, naming it and the first bad index. */
export function checkFinite(values: ArrayLike<number>, what: string, path: string): void {
  const at = firstNonFinite(values);
  if (at >= 0)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `${what} in ${path} holds ${String(values[at])} at index ${at}; a model's weights must be finite (damaged file?)`,
    );
}

/** An int8 layer's stored quantization parameters, as a file gives them. */
export interface Int8Params {
  /** One scale per output column. */
  weightScales?: ArrayLike<number> | null;
  /** The u8 parameters of the layer's input (static models). */
  input?: { scale?: unknown; zeroPoint?: unknown } | null;
}

/**
 * Why an int8 layer's parameters cannot be run, or null when they can: every weight scale and
 * the input scale within INT8_SCALE_BOUNDS, the input zero point an integer level in [0, 255].
 */
export function int8ParamsProblem(params: Int8Params): string | null {
  const scales = params.weightScales ?? [];
  for (let i = 0; i < scales.length; i++) {
    if (!isPlausibleScale(scales[i]!))
      return `weight scale ${i} is ${scales[i]}; a scale must lie in [${INT8_SCALE_BOUNDS.min}, ${INT8_SCALE_BOUNDS.max}]`;
  }
  const input = params.input;
  if (input?.scale !== undefined && !(typeof input.scale === 'number' && isPlausibleScale(input.scale)))
    return `the input scale is ${typeof input.scale === 'number' ? input.scale : describeValue(input.scale)}; a scale must lie in [${INT8_SCALE_BOUNDS.min}, ${INT8_SCALE_BOUNDS.max}]`;
  const zero = input?.zeroPoint;
  if (zero !== undefined && !(typeof zero === 'number' && Number.isInteger(zero) && zero >= 0 && zero <= 255))
    return `the input zero point is ${typeof zero === 'number' ? zero : describeValue(zero)}; it must be an integer level in [0, 255]`;
  return null;
}
