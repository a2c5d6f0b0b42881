/**
 * Tensor elements sent as values (gRPC typed contents, REST JSON data): flattened, read as numbers,
 * and the errors for elements that are not values of their datatype. One reading for the event
 * loop and for the thread that parses large JSON bodies.
 */
import { MaasError } from '../core/errors.js';

/** Nested JSON arrays flattened row-major; anything else as it is. */
export function flatValues(values: ArrayLike<unknown>): ArrayLike<unknown> {
  return Array.isArray(values) && values.some(Array.isArray) ? (values as unknown[]).flat(Infinity) : values;
}

/**
 * An element as a number: a number, a bigint, a boolean (0 or 1), or a decimal string for the
 * 64-bit integer datatypes (JSON cannot hold them exactly); undefined for anything else.
 */
export function elementNumber(value: unknown, datatype: string): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint' || typeof value === 'boolean') return Number(value);
  if (typeof value === 'string' && datatype.includes('INT64') && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

/** The error for element `index` of `what`, which is not a `datatype` value. */
export function notAnElement(datatype: string, what: string, index: number, value: unknown): MaasError {
  const shown = JSON.stringify(value) ?? String(value);
  return new MaasError(
    'MAAS_ERR_INFER_INPUT',
    `Expected ${datatype} values for ${what} but element ${index} is ${shown.length > 40 ? `${shown.slice(0, 40)}…` : shown}`,
  );
}

/** The error for `what` holding `count` elements where its shape (or the model) says `expected`. */
export function elementCountMismatch(count: number, what: string, expected: number): MaasError {
  return new MaasError(
    'MAAS_ERR_INFER_INPUT',
    `unexpected number of elements ${count} for ${what}, expecting ${expected}`,
  );
}
