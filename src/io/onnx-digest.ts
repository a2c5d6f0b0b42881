/**
 * The digest maas records in the ONNX files it writes: the metadata_props entry
 * `maas.model_sha256`, the hex SHA-256 of the serialized ModelProto's top-level fields other
 * than metadata_props (field 14), each exactly as stored (its tag and its payload), in file
 * order. It covers the graph (nodes and their attributes, initializers, inputs, outputs), the
 * opset imports and the IR version: everything that decides what the model computes. The
 * metadata entries (this one among them) are left out, so the digest can live in the file it
 * covers; a tool that rewrites the file changes the bytes, and the digest no longer matches.
 */
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { MaasError } from '../core/errors.js';
import { requireDigest, verifyDigest, type IntegrityOptions } from './integrity.js';

/** The metadata_props key of the digest. */
export const ONNX_DIGEST_KEY = 'maas.model_sha256';

/** ModelProto's metadata_props field number. */
const METADATA_PROPS_FIELD = 14;

/** The SHA-256 of ModelProto bytes without their metadata_props fields (see the header). */
export function onnxModelDigest(bytes: Uint8Array): string {
  const hash = createHash('sha256');
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const tag = reader.uint32();
    reader.skipType(tag & 7);
    if (tag >>> 3 !== METADATA_PROPS_FIELD) hash.update(bytes.subarray(start, reader.pos));
  }
  return hash.digest('hex');
}

/**
 * ModelProto bytes written without metadata_props, with the digest entry appended (a message's
 * fields may come in any order, and a repeated field's entries are appended).
 */
export function withOnnxDigest(bytes: Uint8Array, modelType: protobuf.Type): Uint8Array {
  const entry = modelType
    .encode(modelType.fromObject({ metadata_props: [{ key: ONNX_DIGEST_KEY, value: onnxModelDigest(bytes) }] }))
    .finish();
  const out = new Uint8Array(bytes.length + entry.length);
  out.set(bytes);
  out.set(entry, bytes.length);
  return out;
}

/** One metadata_props entry as protobufjs decodes it. */
export interface OnnxMetadataEntry {
  key?: string;
  value?: string;
}

/** Verifies the digest an ONNX file records (and, under strictIntegrity, that it records one). */
export function verifyOnnxDigest(
  bytes: Uint8Array,
  metadata: readonly OnnxMetadataEntry[] | undefined,
  path: string,
  options: IntegrityOptions,
): void {
  const recorded = (metadata ?? []).filter((e) => e.key === ONNX_DIGEST_KEY);
  requireDigest(
    options,
    recorded.length > 0,
    path,
    `maas records metadata_props '${ONNX_DIGEST_KEY}' in the ONNX files it writes: load and save it with maas, or maas convert it`,
  );
  if (recorded.length > 1)
    throw new MaasError(
      'MAAS_ERR_MODEL_INTEGRITY',
      `${path} records metadata_props '${ONNX_DIGEST_KEY}' ${recorded.length} times; a file maas wrote records it once`,
    );
  if (recorded.length === 1)
    verifyDigest(recorded[0]!.value, () => onnxModelDigest(bytes), {
      path,
      field: `metadata_props '${ONNX_DIGEST_KEY}'`,
      covers: 'The graph, opsets and IR version',
    });
}
