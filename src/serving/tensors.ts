/**
 * Tensor data types of the protocol and their conversion into the float32 rows a model takes:
 * from little-endian raw bytes (gRPC raw_input_contents, REST binary data) or from typed values
 * (gRPC contents, REST JSON). Each conversion writes a fresh Float32Array the batcher may transfer.
 */
import { MaasError } from '../core/errors.js';
import { DATATYPE_BYTES } from '../protocol/datatypes.js';
import { elementCountMismatch, elementNumber, flatValues, notAnElement } from '../protocol/values.js';
import { serializeBytesTensor } from '../protocol/bytes-tensor.js';

/** A float16 bit pattern as a number. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const bf16View = new Float32Array(1);
const bf16Bits = new Uint32Array(bf16View.buffer);
function bf16ToFloat(bits: number): number {
  bf16Bits[0] = bits << 16;
  return bf16View[0]!;
}

function checkByteSize(raw: Uint8Array, datatype: string, size: number, elements: number, what: string): void {
  if (raw.byteLength !== elements * size) {
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `unexpected total byte size ${raw.byteLength} for ${what}, expecting ${elements * size} (${elements} ${datatype} elements)`,
    );
  }
}

/** Raw FP32 bytes checked for their size and passed on as they are (no copy). */
export function checkedRawFloats(raw: Uint8Array, elements: number, what: string): Uint8Array {
  checkByteSize(raw, 'FP32', 4, elements, what);
  return raw;
}

/** Converts `elements` little-endian values of `datatype` into float32 (raw FP32 goes through checkedRawFloats). */
export function floatsFromRaw(raw: Uint8Array, datatype: string, elements: number, what: string): Float32Array {
  const size = DATATYPE_BYTES[datatype];
  if (size === undefined)
    throw new MaasError(
      'MAAS_ERR_DATATYPE_UNSUPPORTED',
      `Expected a numeric datatype for ${what} but received ${datatype}`,
    );
  checkByteSize(raw, datatype, size, elements, what);
  const out = new Float32Array(elements);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read: (i: number) => number = {
    BOOL: (i: number) => (view.getUint8(i) ? 1 : 0),
    UINT8: (i: number) => view.getUint8(i),
    UINT16: (i: number) => view.getUint16(i * 2, true),
    UINT32: (i: number) => view.getUint32(i * 4, true),
    UINT64: (i: number) => Number(view.getBigUint64(i * 8, true)),
    INT8: (i: number) => view.getInt8(i),
    INT16: (i: number) => view.getInt16(i * 2, true),
    INT32: (i: number) => view.getInt32(i * 4, true),
    INT64: (i: number) => Number(view.getBigInt64(i * 8, true)),
    FP16: (i: number) => halfToFloat(view.getUint16(i * 2, true)),
    BF16: (i: number) => bf16ToFloat(view.getUint16(i * 2, true)),
    FP32: (i: number) => view.getFloat32(i * 4, true),
    FP64: (i: number) => view.getFloat64(i * 8, true),
  }[datatype]!;
  for (let i = 0; i < elements; i++) out[i] = read(i);
  return out;
}

/** Converts typed values (numbers, bigints or booleans, possibly nested arrays in JSON) into float32. */
export function floatsFromValues(
  values: ArrayLike<unknown>,
  datatype: string,
  elements: number,
  what: string,
): Float32Array {
  if (DATATYPE_BYTES[datatype] === undefined)
    throw new MaasError(
      'MAAS_ERR_DATATYPE_UNSUPPORTED',
      `Expected a numeric datatype for ${what} but received ${datatype}`,
    );
  if (datatype === 'FP16' || datatype === 'BF16') {
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `${datatype} data must be sent as raw bytes (raw_input_contents or binary data) for ${what}`,
    );
  }
  const flat = flatValues(values);
  if (flat.length !== elements) throw elementCountMismatch(flat.length, what, elements);
  if (flat instanceof Float32Array) return flat.slice();
  const out = new Float32Array(elements);
  for (let i = 0; i < elements; i++) {
    const n = elementNumber(flat[i], datatype);
    if (n === undefined) throw notAnElement(datatype, what, i, flat[i]);
    out[i] = n;
  }
  return out;
}

/** An output's data as raw bytes: FP32 little-endian values as they are, BYTES serialized as Triton does. */
export function outputBytes(
  output: { datatype: 'FP32'; data: Float32Array } | { datatype: 'BYTES'; data: string[] },
): Uint8Array {
  if (output.datatype === 'BYTES') return serializeBytesTensor(output.data);
  return new Uint8Array(output.data.buffer, output.data.byteOffset, output.data.byteLength);
}

/**
 * FP32 little-endian bytes from the wire (an update's rows, a round's delta) as floats, copied:
 * the message's buffer may be unaligned, and the floats must own their memory. A length that is
 * not a multiple of 4 is `code`'s error, naming `what`.
 */
export function fp32Copy(
  bytes: Uint8Array | undefined,
  what: string,
  code: 'MAAS_ERR_UPDATE_DATA' | 'MAAS_ERR_FEDERATED_UPDATE',
): Float32Array {
  const b = bytes ?? new Uint8Array(0);
  if (b.length % 4 !== 0)
    throw new MaasError(
      code,
      `Expected ${what} to hold FP32 values (a multiple of 4 bytes) but received ${b.length} bytes`,
    );
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
