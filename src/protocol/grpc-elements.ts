/**
 * A ModelInferRequest's typed contents counted on the wire, before protobufjs decodes them. A
 * packed bool or small integer is one byte on the wire but an eight-byte slot of a JS array once
 * decoded, so the counts are checked against each input's declared shape, and the request's total
 * against a cap, while they are still bytes.
 */
import { MaasError } from '../core/errors.js';
import { elementCountMismatch } from './values.js';

/** One input tensor as the count saw it. */
export interface InputOutline {
  /** The name's bytes (decoded only when a refusal names it). */
  name: Uint8Array;
  /** The declared shape, or null when a dimension is negative or beyond 2^53. */
  shape: number[] | null;
  /** Elements in its typed contents, all fields together. */
  elements: number;
}

/** What the count found in a ModelInferRequest. */
export interface InferRequestOutline {
  modelName: Uint8Array;
  id: Uint8Array;
  inputs: InputOutline[];
}

// Protobuf wire types.
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** A truncated or malformed message: protobufjs decides what to answer. */
class Malformed extends Error {}

/** A cursor over one message's bytes (or a nested message's range of them). */
class WireReader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}

  get done(): boolean {
    return this.at >= this.end;
  }

  /** A varint as a Number (exact below 2^53; a negative int64 reads as ≥ 2^63). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw new Malformed();
      const byte = this.bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new Malformed();
  }

  /** The next length-delimited field's bytes, as a reader over them. */
  nested(): WireReader {
    const length = this.varint();
    const start = this.at;
    if (length > this.end - start) throw new Malformed();
    this.at = start + length;
    return new WireReader(this.bytes, start, start + length);
  }

  skip(wireType: number): void {
    if (wireType === VARINT) this.varint();
    else if (wireType === FIXED64) this.advance(8);
    else if (wireType === LENGTH_DELIMITED) this.nested();
    else if (wireType === FIXED32) this.advance(4);
    else throw new Malformed(); // groups: not in this proto
  }

  /** Values in a packed run of varints: one per byte without the continuation bit. */
  countVarints(): number {
    let count = 0;
    for (let i = this.at; i < this.end; i++) if (this.bytes[i]! < 0x80) count++;
    if (this.end > this.at && this.bytes[this.end - 1]! >= 0x80) throw new Malformed();
    return count;
  }

  private advance(n: number): void {
    if (n > this.end - this.at) throw new Malformed();
    this.at += n;
  }
}

/** Bytes per element of the fixed-width contents fields, by field number (fp32 6, fp64 7). */
const FIXED_WIDTH: Record<number, number> = { 6: 4, 7: 8 };

/** Elements in an InferTensorContents message: every field, packed or not. */
function contentsElements(reader: WireReader): number {
  let elements = 0;
  while (!reader.done) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field < 1 || field > 8) {
      reader.skip(wireType);
    } else if (field === 8 || wireType !== LENGTH_DELIMITED) {
      // bytes_contents entries, or one unpacked scalar
      reader.skip(wireType);
      elements++;
    } else {
      const packed = reader.nested();
      const width = FIXED_WIDTH[field];
      if (width === undefined) elements += packed.countVarints();
      else if ((packed.end - packed.at) % width !== 0) throw new Malformed();
      else elements += (packed.end - packed.at) / width;
    }
  }
  return elements;
}

function readShape(reader: WireReader, wireType: number, into: number[]): void {
  if (wireType === LENGTH_DELIMITED) {
    const packed = reader.nested();
    while (!packed.done) into.push(packed.varint());
  } else if (wireType === VARINT) {
    into.push(reader.varint());
  } else {
    reader.skip(wireType);
  }
}

function inputOutline(reader: WireReader): InputOutline {
  const outline: InputOutline = { name: new Uint8Array(0), shape: null, elements: 0 };
  const shape: number[] = [];
  while (!reader.done) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 1 && wireType === LENGTH_DELIMITED) {
      const name = reader.nested();
      outline.name = reader.bytes.subarray(name.at, name.end);
    } else if (field === 3) {
      readShape(reader, wireType, shape);
    } else if (field === 5 && wireType === LENGTH_DELIMITED) {
      outline.elements += contentsElements(reader.nested());
    } else {
      reader.skip(wireType);
    }
  }
  outline.shape = shape.every((d) => d <= Number.MAX_SAFE_INTEGER) ? shape : null;
  return outline;
}

/**
 * The names, shapes and typed element counts of a serialized ModelInferRequest, without decoding
 * its values (raw_input_contents are skipped by their length); null when the bytes are malformed.
 */
export function outlineInferRequest(bytes: Uint8Array): InferRequestOutline | null {
  const outline: InferRequestOutline = { modelName: new Uint8Array(0), id: new Uint8Array(0), inputs: [] };
  const reader = new WireReader(bytes, 0, bytes.length);
  try {
    while (!reader.done) {
      const tag = reader.varint();
      const field = Math.floor(tag / 8);
      const wireType = tag & 7;
      if ((field === 1 || field === 3) && wireType === LENGTH_DELIMITED) {
        const text = reader.nested();
        const value = bytes.subarray(text.at, text.end);
        if (field === 1) outline.modelName = value;
        else outline.id = value;
      } else if (field === 5 && wireType === LENGTH_DELIMITED) {
        outline.inputs.push(inputOutline(reader.nested()));
      } else {
        reader.skip(wireType);
      }
    }
  } catch (error) {
    if (error instanceof Malformed) return null;
    throw error;
  }
  return outline;
}

const utf8 = new TextDecoder();

/** A field's bytes as text (invalid UTF-8 replaced, as protobufjs does). */
export function wireText(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

/**
 * Why a request's typed contents must not be decoded, or null: an input whose element count is not
 * its declared shape's, or more elements in all than `maxElements`.
 */
export function typedElementsRefusal(outline: InferRequestOutline, maxElements: number): MaasError | null {
  let total = 0;
  for (const input of outline.inputs) {
    if (input.elements === 0) continue;
    const expected = input.shape?.reduce((n, d) => n * d, 1);
    if (expected !== undefined && input.elements !== expected) {
      return elementCountMismatch(input.elements, `input '${wireText(input.name)}'`, expected);
    }
    total += input.elements;
    if (total > maxElements) {
      return new MaasError(
        'MAAS_ERR_TOO_MANY_ELEMENTS',
        `Expected at most ${maxElements} typed elements in one request (--max-message-bytes / 4) but received ${total} by input '${wireText(input.name)}'`,
      );
    }
  }
  return null;
}
