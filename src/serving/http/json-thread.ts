/**
 * The JSON parse thread: parses one large REST body off the event loop and, for an inference
 * request, packs its inputs' data into typed arrays that travel back without a copy. Its heap is
 * capped, so a body that parses into too much memory ends this thread, not the process.
 */
import { Piscina } from 'piscina';
import { MaasError } from '../../core/errors.js';
import { MAX_UNPACKED_VALUES, checkValueCount, packInferData, parseJsonObject, type BodyKind } from './json-parse.js';

/** One body to parse. */
export interface JsonTask {
  /** The body, in parts that were moved here (blocks of a large body, or one copy). */
  parts: Uint8Array[];
  kind: BodyKind;
  maxElements: number;
}

/** The parsed object, or the error's code and message (an Error's own fields do not cross threads). */
export type JsonReply = { ok: true; value: Record<string, unknown> } | { ok: false; code: string; message: string };

/** The reply with the packed arrays' buffers moved, not copied. */
function moved(reply: JsonReply, buffers: ArrayBuffer[]): JsonReply {
  if (buffers.length === 0) return reply;
  const transferable = { [Piscina.transferableSymbol]: buffers, [Piscina.valueSymbol]: reply };
  return Piscina.move(transferable as never) as unknown as JsonReply;
}

/** Parses one body (piscina runs this in the parse thread). */
export default function parseTask({ parts, kind, maxElements }: JsonTask): JsonReply {
  try {
    const value = parseJsonObject(parts.length === 1 ? parts[0]! : Buffer.concat(parts), kind);
    const buffers = kind === 'inference request' ? packInferData(value, maxElements) : [];
    checkValueCount(value, MAX_UNPACKED_VALUES);
    return moved({ ok: true, value }, buffers);
  } catch (error) {
    if (error instanceof MaasError) return { ok: false, code: error.code, message: error.message };
    throw error;
  }
}
