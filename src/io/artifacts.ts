/**
 * The model file format: tfjs-layers `model.json` (topology + weights manifest) plus one weights
 * file, with maas's extras in a `maas` extension field. Reading and writing files lives here;
 * turning layers into topology and back lives with the model.
 *
 * Writes are atomic: the weights go to a new content-addressed file (`weights.<sha>.bin`), then
 * `model.json` is replaced by rename, the single commit point. A crash before the rename leaves
 * the previous model.json and the weights it names untouched.
 *
 * Two digests in the `maas` field make a saved model verifiable at load:
 * - `weightsSha256`: SHA-256 of the weight bytes, every weights file in manifest order;
 * - `descriptionSha256`: SHA-256 of the canonical JSON (integrity.ts canonicalJson) of
 *   `{ modelTopology, weightSpecs, maas }`, where weightSpecs is every manifest group's `weights`
 *   list in order and `maas` is the extension field without these two digests: the topology,
 *   the weights' names, shapes and dtypes, int8 scales, zero points and ranges, preparation.
 * Where the weights files are stored (their paths) and `format`/`generatedBy` are not covered.
 */
import type { FileHandle } from 'node:fs/promises';
import {
  MAX_MODEL_FILE_BYTES,
  openRegularFile,
  readOpened,
  readRegularFile,
  syncDirectory,
  writeDurably,
} from './files.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { MaasError, describeValue } from '../core/errors.js';
import { canonicalJson, requireDigest, sha256Hex, verifyDigest, type IntegrityOptions } from './integrity.js';
import type { SealedFile } from './sealed.js';

/** One weight tensor's entry in a manifest group. */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

/** tfjs's weightsManifest: groups of files holding weights in order. */
export type WeightsManifest = { paths: string[]; weights: WeightSpec[] }[];

/** The parsed contents of a model.json and its weights. */
export interface ModelArtifacts {
  modelTopology: unknown;
  weightSpecs: WeightSpec[];
  weightData: Uint8Array;
  /** maas's extension field (absent in files written by other tools). */
  maas?: MaasExtension;
  format?: string;
  generatedBy?: string;
}

/** What maas adds to model.json, under the key "maas". */
export interface MaasExtension {
  formatVersion: 1;
  signature: { inputs: TensorSignature[]; outputs: TensorSignature[] };
  /** SHA-256 of the weight bytes (every weights file, in manifest order). */
  weightsSha256: string;
  /** SHA-256 of the canonical description: topology, weight specs and this field without its digests. */
  descriptionSha256?: string;
  trainingConfig?: unknown;
  preparation?: unknown;
  quantization?: unknown;
  trainingHistory?: unknown;
  explanationBackground?: unknown;
}

/** A named input or output with its datatype and shape (-1 for the batch). */
export interface TensorSignature {
  name: string;
  datatype: 'FP32';
  shape: number[];
}

/** Test seam: runs after the new files are written and before the commit rename. */
export interface WriteHooks {
  beforeCommit?: () => void | Promise<void>;
}

/** The text maas.descriptionSha256 is the SHA-256 of (see the header). */
function description(modelTopology: unknown, weightSpecs: readonly unknown[], maas: object | undefined): string {
  const { weightsSha256: _weights, descriptionSha256: _description, ...rest } = (maas ?? {}) as Partial<MaasExtension>;
  return canonicalJson({ modelTopology, weightSpecs, maas: rest });
}

/** Writes model.json and its weights into `dir` atomically; returns the model.json path. */
export async function writeArtifacts(dir: string, artifacts: ModelArtifacts, hooks: WriteHooks = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const digest = sha256Hex(artifacts.weightData);
  const weightsName = `weights.${digest.slice(0, 16)}.bin`;
  const weightsPath = join(dir, weightsName);
  const tmpSuffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeDurably(weightsPath + tmpSuffix, artifacts.weightData);
  await rename(weightsPath + tmpSuffix, weightsPath);
  const json = {
    format: 'layers-model',
    generatedBy: artifacts.generatedBy ?? 'maas',
    convertedBy: null,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [`./${weightsName}`], weights: artifacts.weightSpecs }],
    maas: {
      ...artifacts.maas!,
      weightsSha256: digest,
      descriptionSha256: sha256Hex(
        Buffer.from(description(artifacts.modelTopology, artifacts.weightSpecs, artifacts.maas), 'utf8'),
      ),
    },
  };
  const modelPath = join(dir, 'model.json');
  await writeDurably(modelPath + tmpSuffix, JSON.stringify(json));
  try {
    await hooks.beforeCommit?.();
    await rename(modelPath + tmpSuffix, modelPath); // the commit point
  } catch (e) {
    await rm(modelPath + tmpSuffix, { force: true });
    throw e;
  }
  await syncDirectory(dir);
  // Weights files no model.json names any more (earlier saves) are garbage now.
  for (const entry of await readdir(dir)) {
    if (/^weights\.[0-9a-f]{16}\.bin$/.test(entry) && entry !== weightsName)
      await rm(join(dir, entry), { force: true });
  }
  return modelPath;
}

/** The model.json a path names: the file itself, or model.json inside a directory. */
export async function resolveModelJson(path: string): Promise<string> {
  const full = resolve(path);
  let info;
  try {
    info = await stat(full);
  } catch {
    throw new MaasError(
      'MAAS_ERR_MODEL_NOT_FOUND',
      `Expected a model directory or model.json at ${path} but nothing is there`,
    );
  }
  return info.isDirectory() ? join(full, 'model.json') : full;
}

/**
 * Checks a weightsManifest before any file it names is read: groups of relative paths that stay
 * inside the model's directory (returned normalized: "./a/../w.bin" is "w.bin"), and weight
 * entries with a name, a dtype and a shape of non-negative integers.
 */
function checkManifest(manifest: unknown, jsonPath: string): WeightsManifest {
  const bad = (why: string, received: unknown): MaasError =>
    new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected ${why} in the weightsManifest of ${basename(jsonPath)} but received ${describeValue(received)}`,
    );
  if (!Array.isArray(manifest)) throw bad('an array of groups', manifest);
  const dir = resolve(dirname(jsonPath));
  return manifest.map((group: unknown) => {
    const g = group as { paths?: unknown; weights?: unknown };
    if (!g || typeof g !== 'object' || !Array.isArray(g.paths) || !Array.isArray(g.weights))
      throw bad('groups of { paths, weights } arrays', group);
    const paths = g.paths.map((p: unknown) => {
      if (typeof p !== 'string' || p.length === 0) throw bad('weight file paths as strings', p);
      const rel = p.replace(/^\.\//, '');
      const full = resolve(dir, rel);
      if (isAbsolute(rel) || (full !== dir && !full.startsWith(dir + sep)) || full === dir)
        throw bad('a weights path inside the model directory', p);
      return relative(dir, full);
    });
    const weights = g.weights.map((w: unknown) => {
      const spec = w as Partial<WeightSpec>;
      if (
        !spec ||
        typeof spec.name !== 'string' ||
        typeof spec.dtype !== 'string' ||
        !Array.isArray(spec.shape) ||
        !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)
      )
        throw bad('weight entries { name, shape: non-negative integers, dtype }', w);
      return spec as WeightSpec;
    });
    return { paths, weights };
  });
}

/** Bytes per element of the dtypes a tfjs manifest names (after any quantization). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** The bytes a manifest's weights occupy, or null when one of its dtypes is not one maas sizes. */
function manifestBytes(specs: readonly WeightSpec[]): number | null {
  let total = 0;
  for (const w of specs) {
    const quantized = (w.quantization as { dtype?: unknown } | undefined)?.dtype;
    const dtype = typeof quantized === 'string' ? quantized : w.dtype;
    const size = Object.hasOwn(DTYPE_BYTES, dtype) ? DTYPE_BYTES[dtype]! : undefined;
    if (size === undefined) return null;
    total += w.shape.reduce((a, b) => a * b, 1) * size;
  }
  return total;
}

/** A weights file opened for reading: its handle, size, full path and manifest name. */
interface OpenedShard {
  handle: FileHandle;
  size: number;
  path: string;
  name: string;
}

/**
 * Opens every weights file a manifest names (each path once, each a regular file of at most
 * `maxBytes`) and checks that together they hold exactly the bytes the manifest needs, before a
 * byte of any is read. Closes what it opened when a check fails.
 */
async function openShards(
  paths: readonly string[],
  expected: number | null,
  jsonPath: string,
  maxBytes: number,
): Promise<OpenedShard[]> {
  const name = basename(jsonPath);
  if (new Set(paths).size !== paths.length)
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `The weightsManifest of ${name} names a weights file twice`);
  const opened: OpenedShard[] = [];
  try {
    for (const p of paths) {
      const path = join(dirname(jsonPath), p);
      const { handle, size } = await openRegularFile(path, maxBytes, `the weights file ${p}`);
      opened.push({ handle, size, path, name: p });
    }
    const total = opened.reduce((n, f) => n + f.size, 0);
    if (expected !== null && total !== expected)
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `The weights files named by ${name} hold ${total} bytes but its weightsManifest needs ${expected}`,
      );
    return opened;
  } catch (e) {
    await Promise.all(opened.map((f) => f.handle.close()));
    throw e;
  }
}

/** Reads the weights files a manifest names, whole (see openShards for the checks). */
async function readShards(paths: readonly string[], expected: number | null, jsonPath: string): Promise<Uint8Array[]> {
  const opened = await openShards(paths, expected, jsonPath, MAX_MODEL_FILE_BYTES);
  try {
    const chunks: Uint8Array[] = [];
    while (opened.length > 0) {
      const f = opened.shift()!;
      const bytes = await readOpened(f.handle, f.size, f.path, `the weights file ${f.name}`);
      chunks.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)); // a view, not a copy
    }
    return chunks;
  } finally {
    await Promise.all(opened.map((f) => f.handle.close()));
  }
}

/**
 * The weights files a manifest names, from files held in memory (a decrypted model's), with the
 * checks readShards makes: each path once, each present, together exactly the bytes needed.
 */
function shardsInMemory(
  paths: readonly string[],
  expected: number | null,
  files: ReadonlyMap<string, Uint8Array>,
  jsonPath: string,
): Uint8Array[] {
  const name = basename(jsonPath);
  if (new Set(paths).size !== paths.length)
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `The weightsManifest of ${name} names a weights file twice`);
  const chunks = paths.map((p) => {
    const bytes = files.get(p);
    if (!bytes)
      throw new MaasError(
        'MAAS_ERR_MODEL_NOT_FOUND',
        `The weightsManifest of ${name} names the weights file ${p}, which ${jsonPath} does not hold`,
      );
    return bytes;
  });
  const total = chunks.reduce((n, c) => n + c.length, 0);
  if (expected !== null && total !== expected)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The weights files named by ${name} hold ${total} bytes but its weightsManifest needs ${expected}`,
    );
  return chunks;
}

/** The largest model.json maas parses (a topology and manifest; weights live in other files). */
export const MAX_MODEL_JSON_BYTES = 64 * 2 ** 20;

/** A model.json's maas extension field, when it holds an object. */
function maasField(parsed: Record<string, unknown>): Partial<MaasExtension> | undefined {
  return parsed.maas !== null && typeof parsed.maas === 'object' ? parsed.maas : undefined;
}

/** Under strictIntegrity, refuses a model.json that records neither digest. */
function requireArtifactDigests(parsed: Record<string, unknown>, jsonPath: string, options: IntegrityOptions): void {
  const maas = maasField(parsed);
  requireDigest(
    options,
    maas?.weightsSha256 !== undefined && maas.descriptionSha256 !== undefined,
    jsonPath,
    'maas records maas.weightsSha256 and maas.descriptionSha256 when it saves a model: load and save it with maas, or maas convert it',
  );
}

/** Verifies maas.weightsSha256, when recorded, against `computed` (the weights' SHA-256, hex). */
function verifyWeightsDigest(parsed: Record<string, unknown>, computed: () => string, jsonPath: string): void {
  const maas = maasField(parsed);
  if (maas?.weightsSha256 !== undefined)
    verifyDigest(maas.weightsSha256, computed, {
      path: jsonPath,
      field: `maas.weightsSha256 of ${basename(jsonPath)}`,
      covers: 'The weights',
    });
}

/** Verifies maas.descriptionSha256, when recorded: the topology, weight specs and maas field. */
function verifyDescriptionDigest(
  parsed: Record<string, unknown>,
  weightSpecs: readonly WeightSpec[],
  jsonPath: string,
): void {
  const maas = maasField(parsed);
  if (maas?.descriptionSha256 !== undefined)
    verifyDigest(
      maas.descriptionSha256,
      () => sha256Hex(Buffer.from(description(parsed.modelTopology, weightSpecs, maas), 'utf8')),
      {
        path: jsonPath,
        field: `maas.descriptionSha256 of ${basename(jsonPath)}`,
        covers: 'The topology, weight specs and maas field',
      },
    );
}

/**
 * Verifies the digests a model.json records (both, when strictIntegrity asks for them): a file
 * that maas saved loads only as it was saved.
 */
function verifyArtifacts(
  parsed: Record<string, unknown>,
  weightSpecs: readonly WeightSpec[],
  weightData: Uint8Array,
  jsonPath: string,
  options: IntegrityOptions,
): void {
  requireArtifactDigests(parsed, jsonPath, options);
  verifyWeightsDigest(parsed, () => sha256Hex(weightData), jsonPath);
  verifyDescriptionDigest(parsed, weightSpecs, jsonPath);
}

/** A model.json's text parsed: an object with a modelTopology, or a MODEL_FORMAT error naming the file. */
function parseModelJson(bytes: Uint8Array, jsonPath: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Cannot read ${jsonPath}: ${(e as Error).message}`, { cause: e });
  }
  const object = parsed as Record<string, unknown> | null;
  if (object === null || typeof object !== 'object' || Array.isArray(object) || !object.modelTopology) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a tfjs-layers model.json with a modelTopology in ${basename(jsonPath)}`,
    );
  }
  return object;
}

/**
 * The weights files a model.json's manifest names (normalized paths relative to its directory),
 * checked as a load checks them: what `maas encrypt` puts beside the model.json.
 */
export function manifestPaths(json: Uint8Array, jsonPath: string): string[] {
  return checkManifest(parseModelJson(json, jsonPath).weightsManifest ?? [], jsonPath).flatMap((g) => g.paths);
}

/** How readArtifacts gets the weights files a manifest names, their total checked against `expected`. */
type ShardReader = (paths: readonly string[], expected: number | null) => Promise<Uint8Array[]> | Uint8Array[];

/** A parsed model.json and its weights: shards read, joined once, digests verified. */
async function assembleArtifacts(
  parsed: Record<string, unknown>,
  jsonPath: string,
  readWeights: ShardReader,
  options: IntegrityOptions,
): Promise<ModelArtifacts> {
  const manifest = checkManifest(parsed.weightsManifest ?? [], jsonPath);
  const weightSpecs = manifest.flatMap((group) => group.weights);
  const chunks = await readWeights(
    manifest.flatMap((group) => group.paths),
    manifestBytes(weightSpecs),
  );
  // One shard (what maas and most converters write) is used as read; several are joined once.
  let weightData = chunks.length === 1 ? chunks[0]! : new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  if (chunks.length > 1) {
    let offset = 0;
    for (const c of chunks) {
      weightData.set(c, offset);
      offset += c.length;
    }
  }
  if (chunks.length === 0) weightData = new Uint8Array(0);
  verifyArtifacts(parsed, weightSpecs, weightData, jsonPath, options);
  const maas = parsed.maas as MaasExtension | undefined;
  return {
    modelTopology: parsed.modelTopology,
    weightSpecs,
    weightData,
    maas,
    format: parsed.format as string | undefined,
  };
}

/**
 * Reads a tfjs-layers model.json and every weights file its manifest names, and verifies the
 * digests it records.
 */
export async function readArtifacts(path: string, options: IntegrityOptions = {}): Promise<ModelArtifacts> {
  const jsonPath = await resolveModelJson(path);
  const json = await readRegularFile(jsonPath, MAX_MODEL_JSON_BYTES, 'a model.json');
  return assembleArtifacts(
    parseModelJson(json, jsonPath),
    jsonPath,
    (paths, expected) => readShards(paths, expected, jsonPath),
    options,
  );
}

/**
 * A tfjs-layers model held in memory (a decrypted model's files: the model.json first, then its
 * weights files by their manifest paths), checked and verified as readArtifacts checks a model
 * on disk. `path` names it in messages.
 */
export async function artifactsFromFiles(
  files: readonly SealedFile[],
  path: string,
  options: IntegrityOptions = {},
): Promise<ModelArtifacts> {
  const [json, ...weights] = files;
  if (!json || json.bytes.length > MAX_MODEL_JSON_BYTES)
    throw new MaasError(
      'MAAS_ERR_MODEL_FILE',
      `Expected a model.json of at most ${MAX_MODEL_JSON_BYTES} bytes in ${path} but it holds ${json?.bytes.length ?? 0}`,
    );
  const byName = new Map(weights.map((f) => [f.name, f.bytes]));
  return assembleArtifacts(
    parseModelJson(json.bytes, path),
    path,
    (paths, expected) => shardsInMemory(paths, expected, byName, path),
    options,
  );
}

/** A model.json read and checked, with its weights files opened but not yet read (see tfjs-stream.ts). */
export interface TfjsManifest {
  jsonPath: string;
  modelTopology: unknown;
  weightSpecs: WeightSpec[];
  maas: MaasExtension | undefined;
  /** Whether the model.json records a digest of its weights (verified by verifyWeights). */
  weightsDigestRecorded: boolean;
  /** The weights files in manifest order, open, with their sizes (together what the manifest needs). */
  shards: OpenedShard[];
  /** Verifies the weights' SHA-256 (hex), computed as they were read, against the recorded one. */
  verifyWeights(sha256Hex: string): void;
  /** Closes the weights files (once, however often it is called). */
  close(): Promise<void>;
}

/** The largest weights file a streamed load reads (one file per layer of a large model is normal). */
export const MAX_STREAMED_SHARD_BYTES = 2 ** 40;

/** What a model.json's maas field carries besides the weights' description, each as stored (unchecked). */
export interface Carried {
  preparation?: unknown;
  history?: unknown;
  background?: unknown;
}

/**
 * The preparation pipeline, training history and explanation background a plaintext tfjs-layers
 * model.json carries (maas.preparation, .trainingHistory, .explanationBackground): for a load
 * whose weights came from the packed cache, which opened no model file.
 */
export async function savedCarried(path: string): Promise<Carried> {
  const jsonPath = await resolveModelJson(path);
  const parsed = parseModelJson(await readRegularFile(jsonPath, MAX_MODEL_JSON_BYTES, 'a model.json'), jsonPath);
  const maas = maasField(parsed);
  return { preparation: maas?.preparation, history: maas?.trainingHistory, background: maas?.explanationBackground };
}

/**
 * Opens a tfjs-layers model for reading its weights a tensor at a time: the model.json read and
 * checked (strictIntegrity's demand for digests, the description digest verified), each weights
 * file opened and the sizes checked against the manifest; nothing of the weights is read yet.
 */
export async function openTfjsManifest(path: string, options: IntegrityOptions = {}): Promise<TfjsManifest> {
  const jsonPath = await resolveModelJson(path);
  const parsed = parseModelJson(await readRegularFile(jsonPath, MAX_MODEL_JSON_BYTES, 'a model.json'), jsonPath);
  const manifest = checkManifest(parsed.weightsManifest ?? [], jsonPath);
  const weightSpecs = manifest.flatMap((group) => group.weights);
  requireArtifactDigests(parsed, jsonPath, options);
  verifyDescriptionDigest(parsed, weightSpecs, jsonPath);
  const shards = await openShards(
    manifest.flatMap((group) => group.paths),
    manifestBytes(weightSpecs),
    jsonPath,
    MAX_STREAMED_SHARD_BYTES,
  );
  let closing: Promise<void> | null = null;
  // Once: readLayers closes the files when it ends, and a caller's cleanup may close them again.
  const close = () => (closing ??= Promise.all(shards.map((f) => f.handle.close())).then(() => {}));
  return {
    jsonPath,
    modelTopology: parsed.modelTopology,
    weightSpecs,
    maas: parsed.maas as MaasExtension | undefined,
    weightsDigestRecorded: maasField(parsed)?.weightsSha256 !== undefined,
    shards,
    verifyWeights: (sha256) => verifyWeightsDigest(parsed, () => sha256, jsonPath),
    close,
  };
}
