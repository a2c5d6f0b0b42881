/**
 * `maas rollback MODEL --model-repository DIR [--to VERSION]`: serves an earlier version again by
 * publishing its exact bytes as the next version. The version directory is copied file by file
 * into a temporary directory beside it, synced, and renamed into place, so a server polling the
 * repository sees a whole version or none; nothing is deleted (the version rolled back from stays
 * on disk, to look at). A server in explicit mode takes it with a load call.
 */
import { copyFile, lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { MaasError } from '../core/errors.js';
import { syncDirectory, versionNumbers } from '../io/files.js';

export interface RollbackCommandOptions {
  modelRepository: string;
  /** The version to serve again (default: the newest below the newest). */
  to?: number;
  print: (line: string) => void;
}

/** Deepest directory level copied (a version holds a model file, its shards and small extras). */
const MAX_DEPTH = 4;
/** Most files copied: a version is a model, not a tree of anything. */
const MAX_FILES = 10_000;

/** Copies a version directory's regular files and directories; anything else is refused. */
async function copyVersion(from: string, to: string, depth: number, count: { files: number }): Promise<void> {
  await mkdir(to, { mode: 0o755 });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const info = await lstat(source);
    if (info.isDirectory() && depth < MAX_DEPTH) await copyVersion(source, join(to, entry.name), depth + 1, count);
    else if (info.isFile()) {
      if (++count.files > MAX_FILES)
        throw new MaasError('MAAS_ERR_ARG_RANGE', `${from} holds more than ${MAX_FILES} files: not a model version`);
      await copyFile(source, join(to, entry.name));
    } else
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        `${source} is not a regular file or directory (a link, or too deep): a rollback copies plain files only`,
      );
  }
  await syncDirectory(to);
}

/** Publishes version `to` (default: the one before the newest) as the next version; returns its number. */
export async function runRollback(model: string, options: RollbackCommandOptions): Promise<number> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(model))
    throw new MaasError('MAAS_ERR_ARG_RANGE', `Expected a model name (letters, digits, . _ -) but received '${model}'`);
  const modelDir = join(options.modelRepository, model);
  // The versions as the server sees them.
  const versions = await versionNumbers(modelDir).catch((error: NodeJS.ErrnoException) => {
    throw new MaasError('MAAS_ERR_MODEL_NOT_FOUND', `No model directory ${modelDir}: ${error.code ?? error.message}`);
  });
  const newest = versions.at(-1);
  if (newest === undefined) throw new MaasError('MAAS_ERR_MODEL_NOT_FOUND', `${modelDir} has no version directory`);
  const target = options.to ?? versions.filter((v) => v < newest).at(-1);
  if (target === undefined)
    throw new MaasError('MAAS_ERR_ARG_RANGE', `${model} has one version (${newest}): there is nothing to roll back to`);
  if (!versions.includes(target))
    throw new MaasError('MAAS_ERR_ARG_RANGE', `${model} has no version ${target} (it has ${versions.join(', ')})`);
  const next = newest + 1;
  const staging = join(modelDir, `.rollback-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await copyVersion(join(modelDir, String(target)), staging, 0, { files: 0 });
    await rename(staging, join(modelDir, String(next))); // the commit point: a whole version or none
    await syncDirectory(modelDir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  options.print(
    `rolled back ${model}: version ${next} holds version ${target}'s files, byte for byte (version ${newest} stays on disk)`,
  );
  options.print('a server polling the repository serves it at its next poll; in explicit mode, load the model again');
  return next;
}
