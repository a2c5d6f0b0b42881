/**
 * Protobuf wire-format mutation, with no schema: a message is split into its fields (key varint,
 * then a varint, 8 or 4 bytes, or a length and that many bytes) and mutated at that level: wrong
 * wire types, huge or off-by-one lengths, overlong varints, fields repeated thousands of times,
 * nested messages mutated in turn or replaced with garbage. Used for gRPC requests and ONNX files.
 */
import { INTERESTING_U32, type Rng, mutateBytes } from './random.js';

/** One field as it sits on the wire. */
interface WireField {
  field: number;
  wire: number;
  /** The payload: a varint's or fixed field's bytes, or a length-delimited field's contents. */
  payload: Buffer;
}

/** A varint's bytes. */
export function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

function readVarint(data: Buffer, at: number): { value: bigint; next: number } | null {
  let value = 0n;
  for (let shift = 0n, i = at; i < data.length && shift < 70n; i++, shift += 7n) {
    value |= BigInt(data[i]! & 0x7f) << shift;
    if ((data[i]! & 0x80) === 0) return { value, next: i + 1 };
  }
  return null;
}

/** The fields of a message, or null when the bytes are not a well-formed message. */
export function parseFields(data: Buffer): WireField[] | null {
  const fields: WireField[] = [];
  let at = 0;
  while (at < data.length) {
    const key = readVarint(data, at);
    if (!key) return null;
    const field = Number(key.value >> 3n);
    const wire = Number(key.value & 7n);
    at = key.next;
    let end: number;
    if (wire === 0) {
      const v = readVarint(data, at);
      if (!v) return null;
      end = v.next;
    } else if (wire === 1) end = at + 8;
    else if (wire === 5) end = at + 4;
    else if (wire === 2) {
      const n = readVarint(data, at);
      if (!n || n.value > BigInt(data.length)) return null;
      at = n.next;
      end = at + Number(n.value);
    } else return null;
    if (end > data.length || field === 0) return null;
    fields.push({ field, wire, payload: data.subarray(at, end) });
    at = end;
  }
  return fields;
}

function key(field: number, wire: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wire));
}

/** One field back on the wire; `length` overrides a length-delimited field's declared length. */
function encodeField(f: WireField, length?: bigint): Buffer {
  if (f.wire !== 2) return Buffer.concat([key(f.field, f.wire), f.payload]);
  return Buffer.concat([key(f.field, 2), varint(length ?? BigInt(f.payload.length)), f.payload]);
}

function encodeFields(fields: WireField[]): Buffer {
  return Buffer.concat(fields.map((f) => encodeField(f)));
}

/** A varint of `value` padded with redundant continuation bytes (`extra` of them). */
function overlongVarint(value: number, extra: number): Buffer {
  const bytes = [...varint(BigInt(value))];
  bytes[bytes.length - 1]! |= 0x80;
  for (let i = 1; i < extra; i++) bytes.push(0x80);
  bytes.push(0x00);
  return Buffer.from(bytes);
}

/** Keeps a mutated message under `maxBytes` (the fuzzer's own memory, not a limit under test). */
const MAX_REPEAT_BYTES = 8 * 2 ** 20;

type FieldMutation = (rng: Rng, fields: WireField[], at: number, depth: number) => { data: Buffer; what: string };

const FIELD_MUTATIONS: readonly (readonly [FieldMutation, number])[] = [
  [
    (rng, fields, at) => {
      const f = fields[at]!;
      const wire = rng.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== f.wire));
      const out = [...fields.slice(0, at).map((g) => encodeField(g)), key(f.field, wire), f.payload];
      out.push(...fields.slice(at + 1).map((g) => encodeField(g)));
      return { data: Buffer.concat(out), what: `field ${f.field}: wire type ${f.wire} → ${wire}` };
    },
    3,
  ],
  [
    (rng, fields, at) => {
      const f = fields[at]!;
      const field = rng.pick([1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 2 ** 29 - 1, rng.between(1, 2 ** 29 - 1)]);
      const copy = [...fields];
      copy[at] = { ...f, field };
      return { data: encodeFields(copy), what: `field ${f.field} → ${field}` };
    },
    2,
  ],
  [
    (rng, fields, at) => {
      const f = fields[at]!;
      if (f.wire !== 2) return { data: encodeFields(fields), what: 'no length to change' };
      const length = rng.pick([
        BigInt(f.payload.length + 1),
        BigInt(Math.max(0, f.payload.length - 1)),
        2n ** 31n,
        2n ** 32n - 1n,
        2n ** 35n,
        2n ** 64n - 1n,
      ]);
      const out = [...fields.slice(0, at).map((g) => encodeField(g)), encodeField(f, length)];
      out.push(...fields.slice(at + 1).map((g) => encodeField(g)));
      return { data: Buffer.concat(out), what: `field ${f.field}: declared length ${length}` };
    },
    3,
  ],
  [
    (rng, fields, at) => {
      const f = fields[at]!;
      const value = rng.pick([
        0n,
        2n ** 31n,
        2n ** 32n,
        2n ** 53n + 1n,
        2n ** 63n,
        2n ** 64n - 1n,
        BigInt(rng.pick(INTERESTING_U32)),
      ]);
      const copy = [...fields];
      copy[at] = { field: f.field, wire: 0, payload: varint(value) };
      return { data: encodeFields(copy), what: `field ${f.field} := varint ${value}` };
    },
    2,
  ],
  [
    (rng, fields, at) => {
      const f = fields[at]!;
      const out = [...fields.slice(0, at).map((g) => encodeField(g))];
      out.push(
        overlongVarint((f.field << 3) | f.wire, rng.pick([1, 9, 12])),
        f.wire === 2 ? varint(BigInt(f.payload.length)) : Buffer.alloc(0),
        f.payload,
      );
      out.push(...fields.slice(at + 1).map((g) => encodeField(g)));
      return { data: Buffer.concat(out), what: `field ${f.field}: overlong key varint` };
    },
    1,
  ],
  [
    (rng, fields, at) => {
      const encoded = encodeField(fields[at]!);
      const copies = Math.min(rng.pick([2, 100, 10_000, 1_000_000]), Math.floor(MAX_REPEAT_BYTES / encoded.length));
      const repeated = Buffer.concat(new Array<Buffer>(Math.max(1, copies)).fill(encoded));
      return {
        data: Buffer.concat([encodeFields(fields.slice(0, at + 1)), repeated, encodeFields(fields.slice(at + 1))]),
        what: `field ${fields[at]!.field} repeated ×${copies}`,
      };
    },
    2,
  ],
  [
    (_rng, fields, at) => ({
      data: encodeFields([...fields.slice(0, at), ...fields.slice(at + 1)]),
      what: `drop field ${fields[at]!.field}`,
    }),
    2,
  ],
  [
    (rng, fields, at, depth) => {
      const f = fields[at]!;
      if (f.wire !== 2) return { data: encodeFields(fields), what: 'no nested message' };
      const inner = mutateMessage(rng, f.payload, depth + 1);
      const copy = [...fields];
      copy[at] = { ...f, payload: inner.data };
      return { data: encodeFields(copy), what: `in field ${f.field}: ${inner.what}` };
    },
    4,
  ],
  [
    (rng, fields, at) => {
      const f = fields[at]!;
      const copy = [...fields];
      copy[at] = { field: f.field, wire: 2, payload: rng.bytes(rng.length(512)) };
      return { data: encodeFields(copy), what: `field ${f.field} := ${copy[at].payload.length} garbage bytes` };
    },
    2,
  ],
];

/** One mutation of a protobuf message (wire-level when it parses, byte-level otherwise). */
export function mutateMessage(rng: Rng, data: Buffer, depth = 0): { data: Buffer; what: string } {
  const fields = parseFields(data);
  if (!fields || fields.length === 0 || depth > 6 || rng.chance(0.15)) return mutateBytes(rng, data);
  return rng.weighted(FIELD_MUTATIONS)(rng, fields, rng.below(fields.length), depth);
}
