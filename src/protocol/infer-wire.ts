/**
 * ModelInferRequest and ModelInferResponse on the wire, written for these two messages: the
 * request is read in one pass into the object shape the generic decoder (protobufjs through
 * proto-loader, PROTO_OPTIONS) gives, with raw contents as views into the received buffer; the
 * response is written into one allocation, output bytes copied straight into it.
 *
 * The request decoder gives the object protobufjs 7 (which proto-loader uses) gives, and refuses
 * what either it or the spec-strict protobufjs 8 refuses: lengths past their message, unmatched
 * groups, field 0, varints over 10 bytes, strings that are not UTF-8, a parameter without a value
 * or named __proto__. Typed contents are counted as they are read and kept only up to a cap. It also refuses what the
 * two would read differently (a parser differential): a known field in the wrong wire type, a
 * second contents or parameter value, a oneof given two members. A repeated scalar may come packed
 * or not. test/unit/infer-wire.test.ts fuzzes it against both.
 */
import { isUtf8 } from 'node:buffer';
import type { MaasError } from '../core/errors.js';
import { typedElementsRefusal } from './grpc-elements.js';
import type { WireContents, WireParameter } from './grpc.js';

/** ModelInferRequest as the generic decoder gives it. */
export interface WireRequest {
  model_name?: string;
  model_version?: string;
  id?: string;
  parameters: Record<string, WireParameter>;
  inputs: WireInput[];
  outputs: { name?: string; parameters: Record<string, WireParameter> }[];
  raw_input_contents: Buffer[];
}

export interface WireInput {
  name?: string;
  datatype?: string;
  shape: number[];
  parameters: Record<string, WireParameter>;
  contents?: Required<WireContents>;
}

/** A message the decoder refuses (the generic decoder throws on the same bytes). */
export class WireError extends Error {}

/**
 * A well-formed request whose typed contents disagree with their shapes or exceed the cap
 * (typedElementsRefusal), with what names it, so a stream can answer it by id.
 */
export class ElementsRefused extends Error {
  constructor(
    readonly refusal: MaasError,
    readonly modelName: string,
    readonly id: string,
  ) {
    super(refusal.message);
  }
}

/** Typed elements read so far: every one counts, only the first `max` are kept. */
class Tally {
  count = 0;
  constructor(readonly max: number) {}

  keep<T>(into: T[], value: T): void {
    if (++this.count <= this.max) into.push(value);
  }
}

const VARINT = 0;
const FIXED64 = 1;
const DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;
/** protobufjs's (and protoc's) nesting limit. */
const MAX_DEPTH = 100;
const TWO_32 = 4294967296;

/**
 * A cursor over the received bytes. `len` is the end of the message being read: a nested
 * message narrows it and restores it when done, so every read is bounded by its own message.
 */
class Reader {
  pos = 0;
  len: number;
  constructor(readonly buf: Buffer) {
    this.len = buf.length;
  }

  private byte(): number {
    if (this.pos >= this.len) throw new WireError(`message truncated at byte ${this.pos}`);
    return this.buf[this.pos++]!;
  }

  /**
   * A varint's low 32 bits (int32, uint32 and bool fields). protobufjs 7 reads five bytes and then
   * skips five more whatever they hold, so a varint of 6 to 9 bytes would put it out of step:
   * such a one is refused. Returns whether bits above the 32nd were set too (for bool).
   */
  private low32(): { value: number; high: boolean } {
    let value = 0;
    let high = false;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (i < 4) value |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        value |= (b & 0x0f) << 28;
        high = (b & 0x70) !== 0;
      } else if (b & 0x7f) high = true;
      if (b < 0x80) {
        if (i >= 5 && i < 9) throw new WireError(`a 32-bit varint of ${i + 1} bytes`);
        return { value: value >>> 0, high };
      }
    }
    throw new WireError('varint longer than 10 bytes');
  }

  uint32(): number {
    return this.low32().value;
  }

  /** A field tag: a varint of at most 32 bits. */
  tag(): number {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      if (i === 4) {
        if (b >= 0x80 || (b & 0x70) !== 0) throw new WireError('invalid tag encoding');
        return (value | (b << 28)) >>> 0;
      }
      value |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return value >>> 0;
    }
    throw new WireError('invalid tag encoding');
  }

  /** A length: a varint below 2^31. */
  size(): number {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      if (i === 4) {
        if (b > 7) throw new WireError('invalid length encoding');
        return (value | (b << 28)) >>> 0;
      }
      value |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return value >>> 0;
    }
    throw new WireError('invalid length encoding');
  }

  /** A varint as a 64-bit number (two's complement when signed), as protobufjs's LongBits give it. */
  int64(unsigned: boolean): number {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x7f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * (i - 5) + 3);
      if (b < 0x80) return toNumber(lo >>> 0, hi >>> 0, unsigned);
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** A bool: protobufjs 8 reads any set bit as true, 7 only the low 32, so bits set only above are refused. */
  bool(): boolean {
    const { value, high } = this.low32();
    if (value === 0 && high) throw new WireError('a bool whose only set bits are above the 32nd');
    return value !== 0 || high;
  }

  /** The next `n` bytes' start, checked against the message's end. */
  take(n: number): number {
    if (this.pos + n > this.len) throw new WireError(`field of ${n} bytes runs past its message`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  bytes(): Buffer {
    const n = this.size();
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  /** A proto3 string: valid UTF-8 (protobufjs 8 refuses other bytes; 7 would replace them). */
  string(): string {
    const n = this.size();
    const at = this.take(n);
    if (!isUtf8(this.buf.subarray(at, at + n))) throw new WireError('a string field is not valid UTF-8');
    return this.buf.toString('utf8', at, at + n);
  }

  /** Enters a length-delimited message; returns the enclosing end, for leave(). */
  enter(): number {
    const end = this.size() + this.pos;
    if (end > this.len) throw new WireError('nested message runs past its parent');
    const outer = this.len;
    this.len = end;
    return outer;
  }

  leave(outer: number): void {
    if (this.pos !== this.len) throw new WireError('nested message overran its length');
    this.len = outer;
  }

  /** Skips a field of an unknown number (or of the wrong wire type), groups included. */
  skip(wireType: number, depth: number, field: number): void {
    if (depth > MAX_DEPTH) throw new WireError('nesting deeper than 100');
    if (field === 0) throw new WireError('field number 0');
    if (wireType === VARINT) {
      while (this.byte() & 0x80);
    } else if (wireType === FIXED64) this.take(8);
    else if (wireType === DELIMITED) this.take(this.size());
    else if (wireType === FIXED32) this.take(4);
    else if (wireType === START_GROUP) {
      for (;;) {
        const t = this.tag();
        const nested = t >>> 3;
        if (nested === 0) throw new WireError('field number 0');
        if ((t & 7) === END_GROUP) {
          if (nested !== field) throw new WireError('end group tag does not match its start');
          return;
        }
        this.skip(t & 7, depth + 1, nested);
      }
    } else throw new WireError(`invalid wire type ${wireType}`);
  }

  /** Repeated scalars: one value, or a packed run of them, each handed to `sink`. */
  repeated<T>(wireType: number, scalarType: number, sink: (value: T) => void, read: () => T): void {
    if (wireType === DELIMITED) {
      const outer = this.enter();
      while (this.pos < this.len) sink(read());
      this.leave(outer);
      return;
    }
    wireTypeOf(wireType, scalarType);
    sink(read());
  }
}

/**
 * A known field must come in its own wire type: protobufjs 8 skips it otherwise and 7 reads it as
 * its own type anyway, so the two would give different requests. Such a message is refused.
 */
function wireTypeOf(actual: number, expected: number): void {
  if (actual !== expected) throw new WireError(`a known field came with wire type ${actual}, not ${expected}`);
}

function toNumber(lo: number, hi: number, unsigned: boolean): number {
  if (!unsigned && hi >>> 31) {
    const l = (~lo + 1) >>> 0;
    let h = ~hi >>> 0;
    if (!l) h = (h + 1) >>> 0;
    return -(l + h * TWO_32);
  }
  return lo + hi * TWO_32;
}

/** Reads a message's fields until its end: `field` handles the known ones and says if it did. */
function fields(r: Reader, depth: number, field: (number: number, wireType: number) => boolean): void {
  if (depth > MAX_DEPTH) throw new WireError('nesting deeper than 100');
  while (r.pos < r.len) {
    const t = r.tag();
    if (!field(t >>> 3, t & 7)) r.skip(t & 7, depth, t >>> 3);
  }
}

/** A nested message, read from a length-delimited field. */
function nested(r: Reader, depth: number, field: (number: number, wireType: number) => boolean): void {
  const outer = r.enter();
  fields(r, depth, field);
  r.leave(outer);
}

const PARAMETER_CHOICES = ['', 'bool_param', 'int64_param', 'string_param', 'double_param', 'uint64_param'] as const;

function parameter(r: Reader, depth: number): WireParameter {
  const p: WireParameter = {};
  nested(r, depth, (n, w) => {
    const choice = PARAMETER_CHOICES[n];
    if (!choice) return false;
    wireTypeOf(w, n === 3 ? DELIMITED : n === 4 ? FIXED64 : VARINT);
    // A oneof given two different members: protobufjs 8 keeps the last, 7 keeps both.
    if (p.parameter_choice !== undefined && p.parameter_choice !== choice)
      throw new WireError(`parameter sets both ${p.parameter_choice} and ${choice}`);
    if (n === 1) p.bool_param = r.bool();
    else if (n === 2) p.int64_param = r.int64(false);
    else if (n === 3) p.string_param = r.string();
    else if (n === 4) p.double_param = r.buf.readDoubleLE(r.take(8));
    else p.uint64_param = r.int64(true);
    p.parameter_choice = choice;
    return true;
  });
  return p;
}

/** One entry of a map<string, InferParameter> of a message at `depth`. */
function parameterEntry(r: Reader, depth: number, into: Record<string, WireParameter>): void {
  let key = '';
  let value: WireParameter | null = null;
  nested(r, depth, (n, w) => {
    if (n !== 1 && n !== 2) return false;
    wireTypeOf(w, DELIMITED);
    if (n === 1) key = r.string();
    else {
      const next = parameter(r, depth + 1);
      // protobufjs 8 merges a second value into the first, 7 replaces it: they differ when the
      // second sets nothing over a first that set something.
      if (value?.parameter_choice !== undefined && next.parameter_choice === undefined)
        throw new WireError('parameter entry with two values');
      value = next;
    }
    return true;
  });
  // The generic decoder fails on this key (its converter reads the entry as the prototype).
  if (key === '__proto__') throw new WireError("parameter named '__proto__'");
  // Null until a later entry of the same key gives a value: checked when the message is read.
  into[key] = value as unknown as WireParameter;
}

function emptyContents(): Required<WireContents> {
  return {
    bool_contents: [],
    int_contents: [],
    int64_contents: [],
    uint_contents: [],
    uint64_contents: [],
    fp32_contents: [],
    fp64_contents: [],
    bytes_contents: [],
  };
}

/** InferTensorContents, each element counted by `tally` (which keeps only those within its cap). */
function contents(r: Reader, depth: number, c: Required<WireContents>, tally: Tally): void {
  const buf = r.buf;
  const into =
    <T>(values: T[]) =>
    (value: T) =>
      tally.keep(values, value);
  nested(r, depth, (n, w) => {
    if (n === 1) r.repeated(w, VARINT, into(c.bool_contents), () => r.bool());
    else if (n === 2) r.repeated(w, VARINT, into(c.int_contents), () => r.uint32() | 0);
    else if (n === 3) r.repeated(w, VARINT, into(c.int64_contents), () => r.int64(false));
    else if (n === 4) r.repeated(w, VARINT, into(c.uint_contents), () => r.uint32());
    else if (n === 5) r.repeated(w, VARINT, into(c.uint64_contents), () => r.int64(true));
    else if (n === 6) fixedRun(r, w, FIXED32, 4, into(c.fp32_contents), (at) => buf.readFloatLE(at));
    else if (n === 7) fixedRun(r, w, FIXED64, 8, into(c.fp64_contents), (at) => buf.readDoubleLE(at));
    else if (n === 8) {
      wireTypeOf(w, DELIMITED);
      tally.keep(c.bytes_contents, r.bytes());
    } else return false;
    return true;
  });
}

/** Packed floats or doubles (a run must be whole values), or one unpacked. */
function fixedRun(
  r: Reader,
  w: number,
  scalarType: number,
  width: number,
  sink: (value: number) => void,
  read: (at: number) => number,
): void {
  if (w === DELIMITED) {
    const n = r.size();
    const at = r.take(n);
    if (n % width !== 0) throw new WireError(`packed run of ${n} bytes is not whole ${width}-byte values`);
    for (let i = at; i < at + n; i += width) sink(read(i));
    return;
  }
  wireTypeOf(w, scalarType);
  sink(read(r.take(width)));
}

/** An input tensor; its typed elements are counted by `tally`. */
function input(r: Reader, depth: number, tally: Tally): WireInput {
  const t: WireInput = { shape: [], parameters: {} };
  nested(r, depth, (n, w) => {
    if (n < 1 || n > 5) return false;
    if (n === 3) {
      r.repeated(
        w,
        VARINT,
        (d) => t.shape.push(d),
        () => r.int64(false),
      );
      return true;
    }
    wireTypeOf(w, DELIMITED);
    if (n === 1) t.name = r.string();
    else if (n === 2) t.datatype = r.string();
    else if (n === 4) parameterEntry(r, depth, t.parameters);
    else {
      // protobufjs 8 merges a second contents into the first, 7 replaces it: alike only when the
      // first holds nothing.
      if (t.contents && Object.values(t.contents).some((values) => values.length > 0))
        throw new WireError('input with two contents fields');
      contents(r, depth + 1, (t.contents = emptyContents()), tally);
    }
    return true;
  });
  return t;
}

function requestedOutput(r: Reader, depth: number): WireRequest['outputs'][number] {
  const o: WireRequest['outputs'][number] = { parameters: {} };
  nested(r, depth, (n, w) => {
    if (n !== 1 && n !== 2) return false;
    wireTypeOf(w, DELIMITED);
    if (n === 1) o.name = r.string();
    else parameterEntry(r, depth, o.parameters);
    return true;
  });
  return o;
}

/**
 * A serialized ModelInferRequest as the generic decoder gives it; throws WireError where it
 * throws. With `maxElements`, typed contents are bounded in the same pass: at most that many are
 * kept, and a request holding more, or an input whose count is not its shape's, throws
 * ElementsRefused.
 */
export function decodeModelInferRequest(bytes: Buffer, maxElements?: number): WireRequest {
  const r = new Reader(bytes);
  const m: WireRequest = { parameters: {}, inputs: [], outputs: [], raw_input_contents: [] };
  const tally = new Tally(maxElements ?? Infinity);
  const elements: number[] = [];
  fields(r, 0, (n, w) => {
    if (n < 1 || n > 7) return false;
    wireTypeOf(w, DELIMITED);
    if (n === 1) m.model_name = r.string();
    else if (n === 2) m.model_version = r.string();
    else if (n === 3) m.id = r.string();
    else if (n === 4) parameterEntry(r, 0, m.parameters);
    else if (n === 5) {
      const before = tally.count;
      m.inputs.push(input(r, 1, tally));
      elements.push(tally.count - before);
    } else if (n === 6) m.outputs.push(requestedOutput(r, 1));
    else m.raw_input_contents.push(r.bytes());
    return true;
  });
  for (const map of [m.parameters, ...m.inputs.map((i) => i.parameters), ...m.outputs.map((o) => o.parameters)])
    for (const [key, value] of Object.entries(map)) {
      // protobufjs 7 fails on a parameter left without a value (8 would give an empty one).
      if (value === null) throw new WireError(`parameter '${key}' has no value`);
    }
  if (maxElements !== undefined && tally.count > 0) refuseBadCounts(m, elements, maxElements);
  return m;
}

/** Throws ElementsRefused when the counted elements disagree with the shapes or the cap. */
function refuseBadCounts(m: WireRequest, elements: number[], maxElements: number): void {
  const refusal = typedElementsRefusal(
    m.inputs.map((t, i) => ({
      name: t.name ?? '',
      // A negative or inexact dimension checks nothing here: the DataPlane refuses the shape.
      shape: t.shape.every((d) => d >= 0 && d <= Number.MAX_SAFE_INTEGER) ? t.shape : null,
      elements: elements[i]!,
    })),
    maxElements,
  );
  if (refusal) throw new ElementsRefused(refusal, m.model_name ?? '', m.id ?? '');
}

/** What encodeModelInferResponse writes: ModelInferResponse without parameters or typed contents. */
export interface WireResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[] }[];
  /** Each output's bytes (any typed array), copied once, into the message. */
  raw_output_contents: ArrayBufferView[];
}

function varintBytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/** A shape dimension's varint length: a negative int64 takes ten bytes. */
function dimensionBytes(d: number): number {
  return d < 0 ? 10 : varintBytes(d);
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(value: number): void {
    while (value >= 0x80) {
      this.buf[this.pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buf[this.pos++] = value;
  }

  /** A negative int64 as its 64-bit two's complement. */
  int64(d: number): void {
    if (d >= 0) return this.varint(d);
    let lo = (d % TWO_32) >>> 0;
    let hi = Math.floor(d / TWO_32) >>> 0;
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.pos++] = lo & 0x01;
  }

  text(field: number, value: string, bytes: number): void {
    this.varint((field << 3) | DELIMITED);
    this.varint(bytes);
    this.pos += this.buf.write(value, this.pos, bytes, 'utf8');
  }
}

/**
 * A ModelInferResponse in one allocation, fields in number order as protobufjs writes them (so
 * the bytes are the generic encoder's): every string written, even empty; shapes packed, an empty
 * one left out.
 */
export function encodeModelInferResponse(response: WireResponse): Buffer {
  const textBytes = (s: string) => Buffer.byteLength(s, 'utf8');
  const field = (bytes: number) => 1 + varintBytes(bytes) + bytes;
  const nameBytes = textBytes(response.model_name);
  const versionBytes = textBytes(response.model_version);
  const idBytes = textBytes(response.id);
  const outputs = response.outputs.map((o) => {
    const name = textBytes(o.name);
    const datatype = textBytes(o.datatype);
    const shape = o.shape.reduce((n, d) => n + dimensionBytes(d), 0);
    return { name, datatype, shape, size: field(name) + field(datatype) + (shape > 0 ? field(shape) : 0) };
  });
  let total = field(nameBytes) + field(versionBytes) + field(idBytes);
  for (const o of outputs) total += 1 + varintBytes(o.size) + o.size;
  for (const raw of response.raw_output_contents) total += 1 + varintBytes(raw.byteLength) + raw.byteLength;
  const w = new Writer(Buffer.allocUnsafe(total));
  w.text(1, response.model_name, nameBytes);
  w.text(2, response.model_version, versionBytes);
  w.text(3, response.id, idBytes);
  response.outputs.forEach((o, i) => {
    const sizes = outputs[i]!;
    w.varint((5 << 3) | DELIMITED);
    w.varint(sizes.size);
    w.text(1, o.name, sizes.name);
    w.text(2, o.datatype, sizes.datatype);
    if (sizes.shape > 0) {
      w.varint((3 << 3) | DELIMITED);
      w.varint(sizes.shape);
      for (const d of o.shape) w.int64(d);
    }
  });
  for (const raw of response.raw_output_contents) {
    w.varint((6 << 3) | DELIMITED);
    w.varint(raw.byteLength);
    w.buf.set(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), w.pos);
    w.pos += raw.byteLength;
  }
  // The buffer is allocUnsafe: a sizing slip would send stale heap bytes (another request's data).
  if (w.pos !== total) throw new Error(`ModelInferResponse sized ${total} bytes but wrote ${w.pos}`);
  return w.buf;
}
