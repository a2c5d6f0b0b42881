/**
 * BYTES tensors as raw bytes, the way Triton serializes them (raw_input_contents and
 * raw_output_contents over gRPC, binary data over REST): each element a 4-byte little-endian
 * length, then that many bytes. Strings are UTF-8.
 */
import { MaasError } from '../core/errors.js';

/** Elements (strings as UTF-8) serialized into one buffer. */
export function serializeBytesTensor(elements: readonly (string | Uint8Array)[]): Buffer {
  const encoded = elements.map((e) => (typeof e === 'string' ? Buffer.from(e, 'utf8') : e));
  const out = Buffer.alloc(encoded.reduce((n, e) => n + 4 + e.byteLength, 0));
  let at = 0;
  for (const e of encoded) {
    out.writeUInt32LE(e.byteLength, at);
    out.set(e, at + 4);
    at += 4 + e.byteLength;
  }
  return out;
}

/**
 * A serialized BYTES tensor read back into its elements (views into `raw`); every length is
 * checked against what is left, and `expected`, when given, against the element count.
 */
export function deserializeBytesTensor(raw: Uint8Array, expected: number | undefined, what: string): Uint8Array[] {
  const elements: Uint8Array[] = [];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let at = 0;
  while (at < raw.byteLength) {
    if (at + 4 > raw.byteLength || (expected !== undefined && elements.length >= expected))
      throw badBytes(what, `${raw.byteLength - at} bytes are left after ${elements.length} elements`);
    const length = view.getUint32(at, true);
    if (at + 4 + length > raw.byteLength)
      throw badBytes(what, `element ${elements.length} claims ${length} bytes but ${raw.byteLength - at - 4} are left`);
    elements.push(raw.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (expected !== undefined && elements.length !== expected)
    throw badBytes(what, `it holds ${elements.length} elements, expecting ${expected}`);
  return elements;
}

function badBytes(what: string, why: string): MaasError {
  return new MaasError(
    'MAAS_ERR_INFER_INPUT',
    `Expected ${what} as BYTES elements (a 4-byte little-endian length before each) but ${why}`,
  );
}
