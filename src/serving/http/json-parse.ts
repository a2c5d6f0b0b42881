/**
 * Parsing REST JSON bodies, the same on the event loop and in the thread that takes large ones:
 * the body must be a JSON object; in the parse thread an inference request's data arrays are also
 * counted against their shapes and packed into typed arrays there, so the event loop receives a few
 * buffers instead of rebuilding millions of array slots.
 */
import { MaasError } from '../../core/errors.js';
import { MAX_JSON_DEPTH } from '../../protocol/limits.js';
import { DATATYPE_BYTES } from '../../protocol/datatypes.js';
import { elementCountMismatch, elementNumber, flatValues, notAnElement } from '../../protocol/values.js';

/** What a body is, for its error messages. */
export type BodyKind = 'inference request' | 'request body';

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true }); // as Buffer.toString: a BOM stays and fails the parse

/**
 * Objects and arrays one body may open: a row each for the largest batch (max_batch_size is at
 * most 65 536) and the request around them. An empty object costs some 56 bytes of heap for its
 * 3 bytes of text, so a body of them would parse into twenty times its size, slowly.
 */
export const MAX_JSON_CONTAINERS = 100_000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const BRACE = 0x7b;
const BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Throws when the JSON text opens more than `limit` objects and arrays, or nests them deeper than
 * MAX_JSON_DEPTH (a scan of its bytes, before parsing: deep nesting parses, then overflows the
 * stack of whatever walks the value).
 */
export function checkContainerCount(bytes: Uint8Array, limit: number): void {
  let containers = 0;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === BRACE || b === BRACKET) {
      if (++containers > limit)
        throw new MaasError(
          'MAAS_ERR_TOO_MANY_ELEMENTS',
          `Expected at most ${limit} JSON objects and arrays in a body but it opens more`,
        );
      if (++depth > MAX_JSON_DEPTH)
        throw new MaasError(
          'MAAS_ERR_HTTP_BODY',
          `Expected a body nested at most ${MAX_JSON_DEPTH} arrays or objects deep but it nests deeper`,
        );
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
      depth--;
    }
  }
}

/** The body's bytes as a JSON object, or MAAS_ERR_HTTP_BODY naming what failed. */
export function parseJsonObject(bytes: Uint8Array, kind: BodyKind): Record<string, unknown> {
  checkContainerCount(bytes, MAX_JSON_CONTAINERS);
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch (error) {
    throw new MaasError(
      'MAAS_ERR_HTTP_BODY',
      `Expected a JSON ${kind === 'inference request' ? 'inference request' : 'object as the request body'} but parsing failed: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new MaasError('MAAS_ERR_HTTP_BODY', `Expected a JSON object as the ${kind}`);
  return parsed as Record<string, unknown>;
}

/**
 * JSON values a body parsed in the thread may hold besides packed input data: what comes back is
 * rebuilt value by value on the event loop, so a body of five million `outputs` would stall it.
 */
export const MAX_UNPACKED_VALUES = 10_000;

/** Throws when `value` holds more than `limit` JSON values (typed arrays count as one). */
export function checkValueCount(value: unknown, limit: number): void {
  let count = 1;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next !== 'object' || next === null || ArrayBuffer.isView(next)) continue;
    const children = Array.isArray(next) ? (next as unknown[]) : Object.values(next);
    count += children.length;
    if (count > limit) {
      throw new MaasError(
        'MAAS_ERR_TOO_MANY_ELEMENTS',
        `Expected at most ${limit} JSON values besides the inputs' numeric data but the body holds more`,
      );
    }
    for (const child of children) pending.push(child);
  }
}

/** The elements a shape declares, or undefined when it is not a list of non-negative integers. */
function declaredElements(shape: unknown): number | undefined {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) return undefined;
  return (shape as number[]).reduce((n, d) => n * d, 1);
}

/** Datatypes whose JSON values are numbers (FP16 and BF16 travel only as raw bytes). */
function isPackable(datatype: unknown): datatype is string {
  return typeof datatype === 'string' && DATATYPE_BYTES[datatype] !== undefined && !/^(FP16|BF16)$/.test(datatype);
}

/**
 * Replaces each input's `data` array by a typed array (Float32Array for FP32, Float64Array for the
 * other datatypes, which the DataPlane converts) after checking its element count against the
 * input's shape and the request's total against `maxElements`; returns the buffers to transfer.
 * Inputs it cannot judge (no data array, no numeric datatype) are left as they are, for the DataPlane.
 */
export function packInferData(header: Record<string, unknown>, maxElements: number): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  if (!Array.isArray(header.inputs)) return buffers;
  let total = 0;
  for (const input of header.inputs as Record<string, unknown>[]) {
    if (typeof input !== 'object' || input === null || !Array.isArray(input.data)) continue;
    const { name, datatype } = input;
    if (typeof name !== 'string' || !isPackable(datatype)) continue;
    const what = `input '${name}'`;
    const values = flatValues(input.data as unknown[]);
    const expected = declaredElements(input.shape);
    if (expected !== undefined && values.length !== expected) throw elementCountMismatch(values.length, what, expected);
    total += values.length;
    if (total > maxElements) {
      throw new MaasError(
        'MAAS_ERR_TOO_MANY_ELEMENTS',
        `Expected at most ${maxElements} data elements in one request (--max-message-bytes / 4) but received ${total} by ${what}`,
      );
    }
    const packed = datatype === 'FP32' ? new Float32Array(values.length) : new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const n = elementNumber(values[i], datatype);
      if (n === undefined) throw notAnElement(datatype, what, i, values[i]);
      packed[i] = n;
    }
    input.data = packed;
    buffers.push(packed.buffer);
  }
  return buffers;
}
