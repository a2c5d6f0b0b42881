/**
 * Keras HDF5 import: whole-model files (`model.save`: the model_config attribute and
 * model_weights) and weights-only files (`save_weights`) paired with the architecture JSON
 * (`to_json`). The file is read once through files.ts and its bytes are parsed by h5wasm in a
 * thread of its own (keras-h5-thread.ts) under a timeout: HDF5 never reopens the path, a trap
 * in HDF5 cannot break later loads, and a damaged file that makes HDF5 loop is stopped.
 * Returns the topology, each layer's weights by layer name, and the training_config.
 *
 * A file may record a digest in the root attribute `maas_sha256` (maas's own .h5 export,
 * keras-h5-write.ts, always does): the
 * hex SHA-256 of a sequence of records, first the model_config attribute (when present; name
 * "model_config", no dims, its UTF-8 bytes), then every weight: layer groups (those with
 * weight_names) in the UTF-8 byte order of their names, each group's weights in weight_names
 * order, named "<layer>/<weight name>", with their dims and their values as float32. A record
 * is: u32 byte length of the name, the name in UTF-8, u32 rank, u32 per dim, u64 byte length
 * of the data, the data; every integer and float little-endian.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createHash, type Hash } from 'node:crypto';
import { MAX_MODEL_FILE_BYTES, readRegularFile } from './files.js';
import { readModelBytes, type DecryptionOptions } from './sealed.js';
import { MAX_MODEL_JSON_BYTES } from './artifacts.js';
import { requireDigest, verifyDigest, type IntegrityOptions } from './integrity.js';
import { MAX_TENSOR_ELEMENTS } from './onnx.js';
import { float32LeBytes } from './onnx-export.js';
import type { H5Contents, H5Job, H5Reply } from './keras-h5-thread.js';
import { MaasError, messageOf } from '../core/errors.js';

/** What a Keras file holds, in the shape loadModel consumes. */
export interface KerasModelData {
  topology: unknown;
  /** Weights by layer name, in the layer's weight_names order (kernel, bias, ...). */
  weights: Map<string, Float32Array[]>;
  trainingConfig: unknown;
  /** The root's keras_version attribute ('2.12.0', '3.3.3'), or null when the file has none. */
  kerasVersion: string | null;
}

/** readKerasH5()'s options. */
export interface KerasReadOptions extends IntegrityOptions, DecryptionOptions {
  /** For a weights-only file (save_weights): the architecture JSON written by to_json. */
  architecture?: string;
}

/** Test seams: a step between reading the file and parsing it, and the parse's time limit. */
export interface KerasReadHooks {
  afterRead?: () => Promise<void>;
  parseTimeoutMs?: number;
}

/** The HDF5 format signature; a file holds it at offset 0, 512, 1024, 2048, … (a user block may precede it). */
const HDF5_SIGNATURE = Uint8Array.of(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a);

/** Checks the HDF5 signature where the format allows it, before HDF5 sees the bytes. */
function checkHdf5Signature(bytes: Uint8Array, path: string): void {
  const at = (offset: number) => HDF5_SIGNATURE.every((b, i) => bytes[offset + i] === b);
  for (let offset = 0; offset + HDF5_SIGNATURE.length <= bytes.length; offset = offset === 0 ? 512 : offset * 2)
    if (at(offset)) return;
  throw new MaasError(
    'MAAS_ERR_MODEL_FORMAT',
    `Expected a Keras HDF5 file at ${path} but received ${bytes.length === 0 ? 'an empty file' : `${bytes.length} bytes without the HDF5 signature (at offset 0, 512, 1024, …)`}`,
  );
}

/**
 * How long HDF5 may take over a file: a minute, plus 50 ms per MB (a valid file parses at
 * hundreds of MB/s; a damaged global heap can make HDF5 loop for ever).
 */
function parseTimeoutMs(bytes: number): number {
  return 60_000 + bytes / 20_000;
}

/**
 * The thread's module: compiled JavaScript next to this file, or, run from the TypeScript sources
 * (tests), the source required through tsx's CommonJS hook, registered in the thread first (the
 * pool's threads load their TypeScript the same way).
 */
function threadEntry(): { entry: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { entry: new URL('./keras-h5-thread.js', import.meta.url), eval: false };
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs/api');
  const thread = fileURLToPath(new URL('./keras-h5-thread.ts', import.meta.url));
  return { entry: `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(thread)});`, eval: true };
}

/**
 * Parses the bytes (moved, not copied, into the thread) in a thread that ends with the file.
 * `movable`: the caller holds no other view of the bytes' buffer, so all of it may move.
 */
function parseInThread(bytes: Uint8Array, path: string, timeoutMs: number, movable: boolean): Promise<H5Contents> {
  // A Buffer from Node's pool shares its memory with others: only a buffer of its own can move.
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const owned = whole || movable ? bytes : bytes.slice();
  const job: H5Job = { bytes: owned, maxElements: MAX_TENSOR_ELEMENTS };
  const { entry, eval: isCode } = threadEntry();
  const worker = new Worker(entry, {
    eval: isCode,
    workerData: job,
    transferList: [owned.buffer as ArrayBuffer],
    stdout: true,
    stderr: true,
  });
  const refused = (why: string, cause?: unknown) =>
    new MaasError('MAAS_ERR_MODEL_FORMAT', `Expected a Keras HDF5 file at ${path} but ${why}`, { cause });
  return new Promise<H5Contents>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      outcome();
    };
    const timer = setTimeout(
      () =>
        settle(() =>
          reject(
            refused(
              `HDF5 did not finish parsing it within ${Math.round(timeoutMs / 1000)} s (a damaged file can make it loop); it was stopped`,
            ),
          ),
        ),
      timeoutMs,
    );
    worker.on('message', (reply: H5Reply) =>
      settle(() =>
        reply.ok
          ? resolve(reply.contents)
          : reject(refused(`${reply.message}${reply.hdf5 ? ` (HDF5: ${reply.hdf5})` : ''}`)),
      ),
    );
    worker.on('error', (e) => settle(() => reject(refused(`HDF5's thread failed: ${messageOf(e).slice(0, 300)}`, e))));
    worker.on('exit', (code) =>
      settle(() => reject(refused(`HDF5's thread ended (exit code ${code}) without an answer`))),
    );
  });
}

/** One record of the maas_sha256 stream (see the header). */
function record(hash: Hash, name: string, dims: readonly number[], data: Uint8Array): void {
  const utf8 = Buffer.from(name, 'utf8');
  const head = Buffer.alloc(4 + utf8.length + 4 + 4 * dims.length + 8);
  let at = head.writeUInt32LE(utf8.length, 0);
  at += utf8.copy(head, at);
  at = head.writeUInt32LE(dims.length, at);
  for (const d of dims) at = head.writeUInt32LE(d, at);
  head.writeBigUInt64LE(BigInt(data.byteLength), at);
  hash.update(head);
  hash.update(data);
}

/** The SHA-256 that a file's maas_sha256 attribute records (see the header). */
export function kerasDigest(contents: Pick<H5Contents, 'modelConfig' | 'layers'>): string {
  const hash = createHash('sha256');
  if (contents.modelConfig !== null) record(hash, 'model_config', [], Buffer.from(contents.modelConfig, 'utf8'));
  const byName = [...contents.layers].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  for (const layer of byName)
    for (const w of layer.weights) record(hash, `${layer.name}/${w.name}`, w.dims, float32LeBytes(w.values));
  return hash.digest('hex');
}

function parseJson(text: string, what: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Expected JSON in ${what} of ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** The architecture JSON of a weights-only file, read under the model.json cap. */
async function readArchitecture(path: string, architecture: string | undefined): Promise<unknown> {
  if (!architecture)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `${path} holds weights only (save_weights): pass the architecture JSON (to_json) as { architecture }`,
    );
  const text = (await readRegularFile(architecture, MAX_MODEL_JSON_BYTES, 'the architecture JSON')).toString('utf8');
  return parseJson(text, 'the architecture file', architecture);
}

/**
 * Reads a Keras .h5 (or an encrypted one, .h5.enc, decrypted in memory); `options.architecture`
 * is the to_json file for weights-only saves.
 */
export async function readKerasH5(
  path: string,
  options: KerasReadOptions = {},
  hooks: KerasReadHooks = {},
): Promise<KerasModelData> {
  const { bytes, movable } = await readModelBytes(path, 'keras-h5', MAX_MODEL_FILE_BYTES, 'a Keras HDF5 file', options);
  return kerasFromBytes(bytes, path, options, hooks, movable);
}

/**
 * Reads a Keras .h5 held in memory (see readKerasH5); `path` names it in messages. `movable`:
 * no one else holds a view of the bytes' buffer, so it moves to the parsing thread uncopied.
 */
export async function kerasFromBytes(
  bytes: Uint8Array,
  path: string,
  options: KerasReadOptions = {},
  hooks: KerasReadHooks = {},
  movable = false,
): Promise<KerasModelData> {
  checkHdf5Signature(bytes, path);
  await hooks.afterRead?.();
  const contents = await parseInThread(bytes, path, hooks.parseTimeoutMs ?? parseTimeoutMs(bytes.byteLength), movable);
  requireDigest(
    options,
    contents.digest !== null,
    path,
    'maas writes no .h5: convert it with maas convert to a model.json, which records digests, or record maas_sha256 as docs/import.md describes',
  );
  if (contents.digest !== null)
    verifyDigest(contents.digest, () => kerasDigest(contents), {
      path,
      field: 'the root attribute maas_sha256',
      covers: 'The model_config and weights',
    });
  return {
    topology:
      contents.modelConfig === null
        ? await readArchitecture(path, options.architecture)
        : parseJson(contents.modelConfig, 'model_config', path),
    weights: new Map(contents.layers.map((l) => [l.name, l.weights.map((w) => w.values)])),
    trainingConfig:
      contents.trainingConfig === null ? null : parseJson(contents.trainingConfig, 'training_config', path),
    kerasVersion: contents.kerasVersion,
  };
}
