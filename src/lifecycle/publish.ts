/**
 * Publishing a model as the next version of a repository model: written whole into a hidden
 * directory beside the versions (the model's files and a version.json of where it came from),
 * synced, then renamed into place — the commit point, so a polling server sees a whole version or
 * none. Two publishers racing take the next free numbers; nothing is ever overwritten.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MaasError, invalidParameter } from '../core/errors.js';
import { isPlainObject } from '../core/validation.js';
import { syncDirectory, versionNumbers, writeDurably } from '../io/files.js';
import type { InferenceModel } from '../model/shell.js';

/** What a published version records of its making (version.json). */
export interface VersionRecord {
  /** What made it: "update", "federated", "select", "rollback", or the caller's word. */
  source: string;
  /** The version it was trained from, when it was. */
  parent?: number;
  /** SHA-256 of the data it was trained on, hex, when known. */
  dataSha256?: string;
  /** Its scores on the held-out rows it was judged by. */
  metrics?: Record<string, number>;
  /** Anything else worth keeping (JSON). */
  details?: Record<string, unknown>;
}

/** The file beside the model's files in a published version. */
export const VERSION_RECORD_FILE = 'version.json';

/** Tries to take a number this many times when other publishers take them first. */
const MAX_RACES = 16;

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The file a staged model is written to: a tfjs model.json directory (default), a Keras .h5 or an .onnx file. */
export type StagedFileName = 'model.json' | 'model.h5' | 'model.keras.h5' | 'model.onnx';

/** The hidden staging directories a model directory may hold (a publisher's work in progress). */
export const STAGING_PREFIX = '.publish-';

/** A fresh staging directory's path inside `modelDir` (not created). */
export function stagingPath(modelDir: string): string {
  return join(modelDir, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Writes `model` and a version.json of `record` into a new hidden directory inside `modelDir`,
 * synced, and returns its path: a version in all but its number. commitVersion() gives it one; a
 * staged directory that is never committed is the caller's to remove. `staging` names the
 * directory (stagingPath()) when the caller must know it before the write starts.
 */
export async function stageVersion(
  modelDir: string,
  model: InferenceModel,
  record: VersionRecord,
  options: { fileName?: StagedFileName; staging?: string } = {},
): Promise<string> {
  const fileName = options.fileName ?? 'model.json';
  if (!isPlainObject(record) || typeof record.source !== 'string' || record.source.length === 0)
    throw invalidParameter('publishVersion record', 'a record with a source', record);
  await versionNumbers(modelDir).catch((error: NodeJS.ErrnoException) => {
    throw new MaasError(
      'MAAS_ERR_MODEL_NOT_FOUND',
      `No model directory ${modelDir} to publish into: ${error.code ?? error.message}`,
    );
  });
  const staging = options.staging ?? stagingPath(modelDir);
  try {
    await mkdir(staging, { mode: 0o755 });
    if (fileName === 'model.onnx') await model.saveOnnx(join(staging, fileName));
    else await model.save(fileName === 'model.json' ? staging : join(staging, fileName));
    const body = { ...record, created: new Date().toISOString() };
    await writeDurably(join(staging, VERSION_RECORD_FILE), JSON.stringify(body, null, 2) + '\n');
    await syncDirectory(staging);
    return staging;
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Renames a staged directory (stageVersion) into place as the next version of `modelDir`: the
 * commit point, so a polling server sees a whole version or none. Returns the version number.
 */
export async function commitVersion(modelDir: string, staging: string): Promise<number> {
  const existing = await versionNumbers(modelDir);
  let version = Math.max(0, ...existing) + 1;
  for (let race = 0; ; race++) {
    try {
      // A version another publisher took first is not empty: the rename fails (ENOTEMPTY or
      // EEXIST) and the next number is tried; nothing is overwritten.
      await rename(staging, join(modelDir, String(version)));
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || race + 1 >= MAX_RACES) throw error;
      version++;
    }
  }
  await syncDirectory(modelDir);
  return version;
}

/**
 * Writes `model` as the next version of `name` in `repository` (the model's directory must exist:
 * it holds the config) with a version.json of `record`, atomically; returns the version number.
 */
export async function publishVersion(
  repository: string,
  name: string,
  model: InferenceModel,
  record: VersionRecord,
): Promise<number> {
  if (!MODEL_NAME.test(name))
    throw invalidParameter('publishVersion name', 'a model name (letters, digits, . _ -)', name);
  const modelDir = join(repository, name);
  const staging = await stageVersion(modelDir, model, record);
  try {
    return await commitVersion(modelDir, staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
