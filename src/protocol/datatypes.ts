/**
 * The protocol's fixed-size tensor datatypes, one table for the server and the clients: the
 * typed array that holds each, and so its size in bytes. BYTES (variable-sized) is not listed.
 */

/** Every typed array a tensor's data may be held in. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

type TypedArrayClass = {
  new (buffer: ArrayBufferLike, offset?: number, length?: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

/**
 * A lookup table keyed by strings from the network: no prototype, so a datatype named
 * 'constructor' or 'toString' finds nothing instead of an inherited member.
 */
export function wireTable<T>(entries: Record<string, T>): Readonly<Record<string, T>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries));
}

/** The typed array for each fixed-size datatype (FP16 and BF16 travel as their 16-bit patterns). */
export const DATATYPE_ARRAYS: Readonly<Record<string, TypedArrayClass>> = wireTable({
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  BF16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
});

/** Bytes per element of each fixed-size datatype. */
export const DATATYPE_BYTES: Readonly<Record<string, number>> = wireTable(
  Object.fromEntries(Object.entries(DATATYPE_ARRAYS).map(([name, array]) => [name, array.BYTES_PER_ELEMENT])),
);
