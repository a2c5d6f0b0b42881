/**
 * `maas pack MODEL`: packs a model's weights into the packed cache ahead of serving, so the
 * first `maas serve` (and every process of `--processes N`) maps them instead of reading and
 * packing the model file. MODEL is a model file or a repository version directory; the entry
 * is the one the server looks up for that file with the same precision on this CPU.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MaasError } from '../core/errors.js';
import { exists } from '../io/files.js';
import { isSealedPath } from '../io/sealed.js';
import type { DensePrecision } from '../model/packed.js';
import { native } from '../native/index.js';
import { openAndPack } from '../pool/open-and-pack.js';
import { defaultPackedCacheDir } from '../pool/packed-cache.js';
import { PLAIN_MODEL_FILE_NAMES } from '../serving/repository/config.js';

export interface PackCommandOptions {
  packedCache?: string;
  precision?: DensePrecision;
  print: (line: string) => void;
}

/** The model file a path names: itself, or the one a version directory serves (as the repository picks it). */
async function modelFileOf(path: string): Promise<string> {
  if (!(await stat(path)).isDirectory()) return path;
  for (const name of PLAIN_MODEL_FILE_NAMES) if (await exists(join(path, name))) return join(path, name);
  throw new MaasError(
    'MAAS_ERR_MODEL_NOT_FOUND',
    `Expected a model file (${PLAIN_MODEL_FILE_NAMES.join(', ')}) in ${path} but found none`,
  );
}

export async function runPack(model: string, options: PackCommandOptions): Promise<void> {
  const file = await modelFileOf(resolve(model));
  if (isSealedPath(file))
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `${file} is encrypted: its packed weights would be plaintext on disk, so encrypted models are never cached`,
    );
  const dir = resolve(options.packedCache ?? defaultPackedCacheDir());
  const started = performance.now();
  const loaded = await openAndPack({
    path: file,
    tag: 0,
    packedCache: dir,
    ...(options.precision ? { precision: options.precision } : {}),
  });
  native.closeRegion(loaded.region.fd);
  const { format, kernel, byteLength } = loaded.region;
  const ms = Math.round(performance.now() - started);
  options.print(
    `${loaded.cached === 'hit' ? 'already packed' : 'packed'} ${file}: ${format} for ${kernel}, ${(byteLength / 2 ** 20).toFixed(1)} MiB in ${dir} (${ms} ms)`,
  );
}
