/**
 * The count of a ModelInferRequest's typed contents, made by the decoder as it reads them, against
 * protobufjs's own decoding of the same bytes: every contents field, packed and unpacked, negative
 * int64s, several inputs, seeded random requests; and the refusals it leads to.
 */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/core/random.js';
import { inferenceService } from '../../src/protocol/grpc.js';
import { typedElementsRefusal, type InputOutline } from '../../src/protocol/grpc-elements.js';
import { decodeModelInferRequest, ElementsRefused, WireError } from '../../src/protocol/infer-wire.js';

const method = inferenceService().service.ModelInfer!;
const encode = (message: object) => method.requestSerialize(message);
const decode = (bytes: Buffer) =>
  method.requestDeserialize(bytes) as { inputs: { contents?: Record<string, unknown[]> }[] };

const FIELDS = [
  'bool_contents',
  'int_contents',
  'int64_contents',
  'uint_contents',
  'uint64_contents',
  'fp32_contents',
  'fp64_contents',
  'bytes_contents',
] as const;

function valuesFor(field: (typeof FIELDS)[number], n: number, r: Random): unknown[] {
  return Array.from({ length: n }, () => {
    const v = r.uniform(-1, 1);
    if (field === 'bool_contents') return v > 0;
    if (field === 'int_contents' || field === 'int64_contents') return Math.round(v * 2 ** 30); // negatives: 10-byte varints
    if (field === 'uint_contents' || field === 'uint64_contents') return Math.round(Math.abs(v) * 2 ** 31);
    if (field === 'bytes_contents') return Buffer.from('ab');
    return v;
  });
}

/** A varint's bytes (non-negative values below 2^53). */
function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}
const tag = (field: number, wireType: number) => varint(field * 8 + wireType);
const delimited = (field: number, bytes: number[]) => [...tag(field, 2), ...varint(bytes.length), ...bytes];

/** Elements per input, as the decoder kept them (all of them, below its cap). */
const counted = (bytes: Buffer) =>
  decodeModelInferRequest(bytes).inputs.map((t) => Object.values(t.contents ?? {}).reduce((n, v) => n + v.length, 0));

/** What the decoder throws for `bytes` under a cap of `maxElements`. */
function refusedAt(bytes: Buffer, maxElements: number): ElementsRefused {
  try {
    decodeModelInferRequest(bytes, maxElements);
  } catch (error) {
    if (error instanceof ElementsRefused) return error;
    throw error;
  }
  throw new Error('the decoder did not refuse');
}

describe("the decoder's element count", () => {
  it('counts every contents field as protobufjs decodes it, and refuses one over the cap with names, shape and id', () => {
    const r = new Random(7);
    for (const field of FIELDS) {
      for (const n of [0, 1, 2, 3, 5, 127, 129, 1000]) {
        const bytes = encode({
          model_name: 'm',
          id: 'req-1',
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, n], contents: { [field]: valuesFor(field, n, r) } }],
        });
        const decoded = decode(bytes).inputs[0]!.contents?.[field]?.length ?? 0;
        expect(counted(bytes)[0], `${field} n=${n}`).toBe(decoded);
        if (n === 0) continue;
        const refused = refusedAt(bytes, n - 1);
        expect(refused.refusal.code).toBe('MAAS_ERR_TOO_MANY_ELEMENTS');
        expect(refused.refusal.message).toMatch(new RegExp(`received ${n} by input 'x'$`));
        expect([refused.modelName, refused.id]).toEqual(['m', 'req-1']);
      }
    }
  });

  it('matches protobufjs on seeded random requests of several inputs, raw and typed', () => {
    const seed = Number(process.env.MAAS_TEST_SEED ?? 20261130);
    const r = new Random(seed);
    for (let round = 0; round < 200; round++) {
      const inputs = Array.from({ length: 1 + Math.floor(r.uniform(0, 3)) }, (_, i) => {
        const field = FIELDS[Math.floor(r.uniform(0, FIELDS.length))]!;
        const n = Math.floor(r.uniform(0, 300));
        return { name: `in${i}`, datatype: 'FP32', shape: [n], contents: { [field]: valuesFor(field, n, r) } };
      });
      const bytes = encode({ model_name: 'model', inputs, raw_input_contents: [Buffer.alloc(16)] });
      const decoded = decode(bytes).inputs.map((t) =>
        Object.values(t.contents ?? {}).reduce((n, v) => n + v.length, 0),
      );
      expect(counted(bytes), `seed ${seed} round ${round}`).toEqual(decoded);
    }
  });

  it('counts unpacked scalars and packed runs split in two, which proto3 parsers merge', () => {
    const contents = [
      [...tag(1, 0), 1], // bool, unpacked
      [...tag(1, 0), 0],
      delimited(1, [1, 0, 1]), // bool, packed: 3
      delimited(2, [...varint(300), 5]), // int32, packed: 2 values in 3 bytes
      [...tag(6, 5), 0, 0, 128, 63], // float, unpacked
      delimited(6, [0, 0, 128, 63, 0, 0, 0, 64]), // float, packed: 2
    ].flat();
    const input = [...delimited(1, [120]), ...delimited(3, [2, 5]), ...delimited(5, contents)];
    const bytes = Buffer.from([...delimited(1, [109]), ...delimited(5, input)]);
    expect(counted(bytes)).toEqual([2 + 3 + 2 + 1 + 2]);
    expect(decodeModelInferRequest(bytes).inputs[0]!.shape).toEqual([2, 5]);
    const decoded = decode(bytes).inputs[0]!.contents!;
    expect(Object.values(decoded).reduce((n, v) => n + v.length, 0)).toBe(10);
    expect(refusedAt(bytes, 9).refusal.message).toMatch(/received 10 by input 'x'$/);
  });

  it('counts every element past the cap, so the refusal names the true total', () => {
    const bytes = encode({
      model_name: 'm',
      inputs: [{ name: 'x', shape: [500], contents: { bool_contents: Array(500).fill(true) } }],
    });
    const refused = refusedAt(bytes, 100);
    expect(refused.refusal.message).toMatch(/received 500 by input 'x'$/);
  });

  it('checks no shape with a negative dimension, and refuses a truncated message as unreadable', () => {
    const bytes = encode({
      model_name: 'm',
      inputs: [{ name: 'x', shape: [-1, 4], contents: { fp32_contents: [1, 2] } }],
    });
    expect(counted(bytes)).toEqual([2]); // the DataPlane refuses the shape
    expect(() => decodeModelInferRequest(bytes.subarray(0, bytes.length - 3))).toThrow(WireError);
    expect(() => decodeModelInferRequest(Buffer.from([0x0a, 0x05, 0x61]))).toThrow(WireError);
  });
});

describe('typedElementsRefusal', () => {
  const outline = (shape: number[] | null, elements: number): InputOutline[] => [{ name: 'x', shape, elements }];

  it('refuses contents whose count is not the shape’s, naming both', () => {
    const refusal = typedElementsRefusal(outline([1, 12], 13), 1000);
    expect(refusal?.code).toBe('MAAS_ERR_INFER_INPUT');
    expect(refusal?.message).toBe("unexpected number of elements 13 for input 'x', expecting 12");
  });

  it('refuses more elements than the cap even when the shape agrees', () => {
    const refusal = typedElementsRefusal(outline([2000], 2000), 1000);
    expect(refusal?.code).toBe('MAAS_ERR_TOO_MANY_ELEMENTS');
    expect(refusal?.message).toMatch(
      /^Expected at most 1000 typed elements in one request .* but received 2000 by input 'x'$/,
    );
  });

  it('lets through contents that agree with their shape and the cap, and raw requests', () => {
    expect(typedElementsRefusal(outline([2, 6], 12), 12)).toBeNull();
    expect(typedElementsRefusal(outline(null, 12), 12)).toBeNull(); // the DataPlane refuses the shape
    expect(typedElementsRefusal(outline([1, 6], 0), 0)).toBeNull();
  });
});
