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
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name))
    throw invalidParameter('publishVersion name', 'a model name (letters, digits, . _ -)', name);
  if (!isPlainObject(record) || typeof record.source !== 'string' || record.source.length === 0)
    throw invalidParameter('publishVersion record', 'a record with a source', record);
  const modelDir = join(repository, name);
  const existing = await versionNumbers(modelDir).catch((error: NodeJS.ErrnoException) => {
    throw new MaasError(
      'MAAS_ERR_MODEL_NOT_FOUND',
      `No model directory ${modelDir} to publish into: ${error.code ?? error.message}`,
    );
  });
  const staging = join(modelDir, `.publish-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(staging, { mode: 0o755 });
    await model.save(staging);
    const body = { ...record, created: new Date().toISOString() };
    await writeDurably(join(staging, VERSION_RECORD_FILE), JSON.stringify(body, null, 2) + '\n');
    await syncDirectory(staging);
    let version = Math.max(0, ...existing) + 1;
    for (let race = 0; ; race++) {
      try {
        // The commit point. A version another publisher took first is not empty: the rename fails
        // (ENOTEMPTY or EEXIST) and the next number is tried; nothing is overwritten.
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
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
