/**
 * The purpose-written ModelInfer codec against the generic decoders: 10 000 seeded messages, valid
 * ones built from random requests and then mutated byte by byte, truncated, spliced and replaced by
 * noise. Against protobufjs 8 (spec-strict: it refuses truncated fields and unmatched groups) ours
 * must decode to the same object or refuse where it refuses; against the protobufjs 7 that
 * proto-loader uses for every other RPC, whatever both decode must be the same object (7 also
 * accepts some malformed messages, cut strings among them, which ours refuses). Responses must
 * encode to the generic encoder's bytes.
 */
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/core/package-root.js';
import { Random } from '../../src/core/random.js';
import { inferenceService, PROTO_OPTIONS } from '../../src/protocol/grpc.js';
import {
  decodeModelInferRequest,
  encodeModelInferResponse,
  WireError,
  type WireResponse,
} from '../../src/protocol/infer-wire.js';

const method = inferenceService().service.ModelInfer!;
const strictType = new protobuf.Root()
  .loadSync(join(packageRoot(), 'proto', 'grpc_service.proto'), { keepCase: true })
  .lookupType('inference.ModelInferRequest');
const generic = {
  decode: (bytes: Buffer) => method.requestDeserialize(bytes) as unknown,
  strict: (bytes: Buffer) => strictType.toObject(strictType.decode(bytes), PROTO_OPTIONS) as unknown,
  encodeRequest: (message: object) => method.requestSerialize(message),
  encodeResponse: (message: object) => method.responseSerialize(message),
};

const TEXTS = ['', 'input', 'output', 'classic', 'ünïcødé ✓', 'x'.repeat(200), 'FP32', 'INT64', 'BYTES'];

function pick<T>(r: Random, items: readonly T[]): T {
  return items[Math.floor(r.next() * items.length)]!;
}
const int = (r: Random, below: number) => Math.floor(r.next() * below);

function randomParameters(r: Random): Record<string, object> {
  const out: Record<string, object> = {};
  for (let i = int(r, 3); i > 0; i--) {
    const kind = int(r, 5);
    out[pick(r, ['priority', 'timeout', 'a', 'b', ''])] =
      kind === 0
        ? { bool_param: r.next() < 0.5 }
        : kind === 1
          ? { int64_param: int(r, 2 ** 40) - 2 ** 39 }
          : kind === 2
            ? { string_param: pick(r, TEXTS) }
            : kind === 3
              ? { double_param: r.normal() * 1e6 }
              : { uint64_param: int(r, 2 ** 50) };
  }
  return out;
}

function randomContents(r: Random): Record<string, unknown[]> {
  const n = int(r, 6);
  const values = (make: () => unknown) => Array.from({ length: n }, make);
  switch (int(r, 8)) {
    case 0:
      return { bool_contents: values(() => r.next() < 0.5) };
    case 1:
      return { int_contents: values(() => int(r, 2 ** 31) - 2 ** 30) };
    case 2:
      return { int64_contents: values(() => int(r, 2 ** 52) - 2 ** 51) };
    case 3:
      return { uint_contents: values(() => int(r, 2 ** 32)) };
    case 4:
      return { uint64_contents: values(() => int(r, 2 ** 53)) };
    case 5:
      return { fp32_contents: values(() => Math.fround(r.normal())) };
    case 6:
      return { fp64_contents: values(() => r.normal()) };
    default:
      return { bytes_contents: values(() => Buffer.from(pick(r, TEXTS))) };
  }
}

/** A random request object, as a client would build it (every field optional). */
function randomRequest(r: Random): object {
  const inputs = Array.from({ length: int(r, 3) }, () => ({
    ...(r.next() < 0.9 ? { name: pick(r, TEXTS) } : {}),
    ...(r.next() < 0.9 ? { datatype: pick(r, TEXTS) } : {}),
    shape: Array.from({ length: int(r, 4) }, () => (r.next() < 0.1 ? -1 - int(r, 1000) : int(r, 5000))),
    parameters: randomParameters(r),
    ...(r.next() < 0.4 ? { contents: randomContents(r) } : {}),
  }));
  return {
    ...(r.next() < 0.9 ? { model_name: pick(r, TEXTS) } : {}),
    ...(r.next() < 0.5 ? { model_version: pick(r, ['', '1', '2']) } : {}),
    ...(r.next() < 0.5 ? { id: pick(r, TEXTS) } : {}),
    parameters: randomParameters(r),
    inputs,
    outputs: Array.from({ length: int(r, 3) }, () => ({ name: pick(r, TEXTS), parameters: randomParameters(r) })),
    raw_input_contents:
      r.next() < 0.6
        ? inputs.map(() => Buffer.from(Float32Array.from({ length: int(r, 8) }, () => r.normal()).buffer))
        : [],
  };
}

/** Bytes the wire format gives special meaning: continuation bits, wire types 3/4/6/7, field 0. */
const INTERESTING = [0x00, 0x01, 0x02, 0x07, 0x08, 0x0a, 0x0b, 0x0c, 0x12, 0x1a, 0x22, 0x2a, 0x3a, 0x7f, 0x80, 0xff];

function mutate(r: Random, bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  switch (int(r, 6)) {
    case 0: // flip bytes
      for (let i = 1 + int(r, 3); i > 0 && out.length > 0; i--) out[int(r, out.length)] = int(r, 256);
      return out;
    case 1: // a wire-meaningful byte somewhere
      if (out.length > 0) out[int(r, out.length)] = pick(r, INTERESTING);
      return out;
    case 2: // truncate
      return out.subarray(0, int(r, out.length + 1));
    case 3: {
      // insert a few bytes
      const at = int(r, out.length + 1);
      const extra = Buffer.from(Array.from({ length: 1 + int(r, 4) }, () => pick(r, INTERESTING)));
      return Buffer.concat([out.subarray(0, at), extra, out.subarray(at)]);
    }
    case 4: {
      // delete a range
      const at = int(r, out.length + 1);
      return Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + int(r, 4))]);
    }
    default: // noise
      return Buffer.from(Array.from({ length: int(r, 64) }, () => int(r, 256)));
  }
}

type Outcome = { ok: true; value: unknown } | { ok: false };

/** Whether two decodings agree, an empty string counting as absent (proto3: protobufjs 8 drops it, 7 keeps it). */
function sameMeaning(a: unknown, b: unknown): boolean {
  const normal = (v: unknown): unknown => {
    if (Buffer.isBuffer(v) || typeof v !== 'object' || v === null) return v;
    if (Array.isArray(v)) return v.map(normal);
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== '')
        .map(([k, x]) => [k, normal(x)]),
    );
  };
  return isDeepStrictEqual(normal(a), normal(b));
}

function run(decode: (bytes: Buffer) => unknown, bytes: Buffer): Outcome {
  try {
    return { ok: true, value: decode(bytes) };
  } catch {
    return { ok: false };
  }
}

describe('ModelInfer request decoder', () => {
  it('decodes 10 000 random and mutated messages as the generic decoders do, or refuses where protobufjs 8 refuses', () => {
    const r = new Random(Number(process.env.MAAS_FUZZ_SEED ?? 2026));
    const counts = { accepted: 0, refused: 0, lenientOnly: 0, stricter: 0 };
    for (let i = 0; i < 10_000; i++) {
      const valid = generic.encodeRequest(randomRequest(r));
      const bytes = i % 5 === 0 ? valid : mutate(r, valid);
      const strict = run(generic.strict, bytes);
      const lenient = run(generic.decode, bytes);
      const ours = run(decodeModelInferRequest, bytes);
      const what = `message ${i} (${bytes.toString('hex')})`;
      // Ours decodes only what both generic decoders decode and read alike; of the rest it may
      // refuse what they accept only by its differential rules (a known field in another wire
      // type, a value given twice): counted, and bounded below.
      const alike = strict.ok && lenient.ok && sameMeaning(strict.value, lenient.value);
      if (ours.ok && !alike)
        throw new Error(
          `${what}: protobufjs 8 ${strict.ok ? 'decoded' : 'refused'} it, 7 ${lenient.ok ? 'decoded' : 'refused'} it, ours decoded it`,
        );
      if (!ours.ok && alike) counts.stricter++;
      if (!ours.ok && bytes === valid) throw new Error(`${what}: a valid message was refused`);
      if (!ours.ok && lenient.ok) counts.lenientOnly++;
      if (ours.ok && lenient.ok) {
        expect(ours.value, what).toEqual(lenient.value);
        counts.accepted++;
      } else counts.refused++;
    }
    // Both outcomes were exercised in earnest, and protobufjs 7's leniency among them.
    expect(counts.accepted).toBeGreaterThan(2_000);
    expect(counts.refused).toBeGreaterThan(1_000);
    expect(counts.lenientOnly).toBeGreaterThan(0);
    // Refusing what both read alike stays rare: mutated bytes only, never a valid message.
    expect(counts.stricter).toBeLessThan(counts.accepted / 50);
  });

  it('gives raw contents as views into the received bytes, not copies', () => {
    const raw = Buffer.from(Float32Array.of(1, 2, 3).buffer);
    const bytes = generic.encodeRequest({
      model_name: 'm',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3] }],
      raw_input_contents: [raw],
    });
    const decoded = decodeModelInferRequest(bytes);
    expect(decoded.raw_input_contents[0]!.buffer).toBe(bytes.buffer);
    expect(decoded.raw_input_contents[0]).toEqual(raw);
  });

  it('agrees on the corners, refusing where the generic decoders differ: repeated values, groups, field 0, __proto__', () => {
    // Each case with what ours must do: decode, or refuse for the reason named (not for another,
    // such as a length that happens to run short).
    const cases: [hex: string, want: 'decodes' | RegExp][] = [
      // parameters entry with two value fields: 8 merges, 7 replaces
      ['2209 0a0161 12020801 1200', /two values/],
      // shape unpacked (two varints) and packed, mixed
      ['2a08 1803 1804 1a020506', 'decodes'],
      // an unknown group, matched and unmatched end
      ['0a016d 4b 0801 4c', 'decodes'],
      ['0a016d 4b 0801 54', /end group/],
      // field number 0, wire types 6 and 7
      ['00 01', /field number 0/],
      ['0e', /wire type 6/],
      ['0f', /wire type 7/],
      // contents twice: 8 merges, 7 replaces
      ['2a0c 2a06 32040000803f 2a02 1001', /two contents/],
      // a oneof given two members: 8 keeps the last, 7 both
      ['220a 0a0170 1205 0801 1a0178', /sets both/],
      // a nested length past its parent
      ['2a04 0a10 6162', /runs past its message/],
    ];
    for (const [hex, want] of cases) {
      const bytes = Buffer.from(hex.replace(/ /g, ''), 'hex');
      const strict = run(generic.strict, bytes);
      const lenient = run(generic.decode, bytes);
      const ours = run(decodeModelInferRequest, bytes);
      const alike = strict.ok && lenient.ok && sameMeaning(strict.value, lenient.value);
      if (want === 'decodes') {
        expect(ours.ok, hex).toBe(true);
        expect(alike, hex).toBe(true);
        if (ours.ok && lenient.ok) expect(ours.value, hex).toEqual(lenient.value);
      } else {
        expect(alike, hex).toBe(false);
        expect(() => decodeModelInferRequest(bytes), hex).toThrow(want);
      }
    }
  });

  it('refuses a parameter named __proto__, with or without a value', () => {
    // protobufjs 7 fails on it without a value; a decoder assigning it would set the map's prototype.
    for (const hex of ['220f0a095f5f70726f746f5f5f12020801', '220b0a095f5f70726f746f5f5f'])
      expect(() => decodeModelInferRequest(Buffer.from(hex, 'hex'))).toThrow(/__proto__/);
  });

  it('refuses with WireError, a class of its own', () => {
    expect(() => decodeModelInferRequest(Buffer.from([0x0a, 0x05, 0x61]))).toThrow(WireError);
  });
});

describe('ModelInfer response encoder', () => {
  it('writes the generic encoder bytes for 2 000 random responses', () => {
    const r = new Random(7);
    for (let i = 0; i < 2_000; i++) {
      const outputs = Array.from({ length: int(r, 3) }, () => ({
        name: pick(r, TEXTS),
        datatype: pick(r, TEXTS),
        shape: Array.from({ length: int(r, 3) }, () => (r.next() < 0.1 ? -1 - int(r, 2 ** 40) : int(r, 2 ** 40))),
      }));
      const response: WireResponse = {
        model_name: pick(r, TEXTS),
        model_version: pick(r, ['', '1', '12']),
        id: pick(r, TEXTS),
        outputs,
        raw_output_contents: outputs.map(() => Float32Array.from({ length: int(r, 300) }, () => r.normal())),
      };
      const theirs = generic.encodeResponse({
        ...response,
        raw_output_contents: response.raw_output_contents.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)),
      });
      expect(encodeModelInferResponse(response).toString('hex'), `response ${i}`).toBe(theirs.toString('hex'));
    }
  });
});
