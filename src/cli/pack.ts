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
import { PackedCache, defaultPackedCacheDir } from '../pool/packed-cache.js';
import { PLAIN_MODEL_FILE_NAMES } from '../serving/repository/config.js';

export interface PackCommandOptions {
  packedCache?: string;
  precision?: DensePrecision;
  /** Also packs the round trip explanations take gradients through (a version with explain_method). */
  roundTrip?: boolean;
  /** Prune the cache (stale entries, leftovers; with maxSize, least recently used ones) instead of, or after, packing. */
  prune?: boolean;
  maxSize?: number;
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

const mib = (bytes: number) =>
  bytes < 2 ** 20 ? `${(bytes / 2 ** 10).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** `maas pack --prune [--max-size SIZE]`: what the cache lost and kept. */
async function runPrune(dir: string, options: PackCommandOptions): Promise<void> {
  const cache = new PackedCache(dir);
  await cache.prepare();
  const report = await cache.prune(options.maxSize !== undefined ? { maxBytes: options.maxSize } : {});
  for (const source of report.stale) options.print(`removed stale entry of ${source}`);
  for (const source of report.evicted) options.print(`evicted ${source} (least recently used)`);
  options.print(
    `pruned ${dir}: ${report.stale.length} stale, ${report.evicted.length} evicted, ${report.leftovers} leftover files; freed ${mib(report.freedBytes)}, ${mib(report.keptBytes)} kept`,
  );
}

export async function runPack(model: string | undefined, options: PackCommandOptions): Promise<void> {
  const dir = resolve(options.packedCache ?? defaultPackedCacheDir());
  if (options.maxSize !== undefined && !options.prune)
    throw new MaasError('MAAS_ERR_ARG_RANGE', '--max-size applies to --prune: add --prune');
  if (model === undefined) {
    if (!options.prune)
      throw new MaasError('MAAS_ERR_ARG_RANGE', 'Name a model to pack, or prune the cache with --prune');
    return runPrune(dir, options);
  }
  await packOne(model, dir, options);
  if (options.prune) await runPrune(dir, options);
}

async function packOne(model: string, dir: string, options: PackCommandOptions): Promise<void> {
  const file = await modelFileOf(resolve(model));
  if (isSealedPath(file))
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `${file} is encrypted: its packed weights would be plaintext on disk, so encrypted models are never cached`,
    );
  const started = performance.now();
  const loaded = await openAndPack({
    path: file,
    tag: 0,
    packedCache: dir,
    ...(options.precision ? { precision: options.precision } : {}),
    ...(options.roundTrip ? { roundTrip: true } : {}),
  });
  native.closeRegion(loaded.region.fd);
  if (loaded.roundTrip) native.closeRegion(loaded.roundTrip.fd);
  const { format, kernel, byteLength } = loaded.region;
  const ms = Math.round(performance.now() - started);
  options.print(
    `${loaded.cached === 'hit' ? 'already packed' : 'packed'} ${file}: ${format} for ${kernel}, ${mib(byteLength)} in ${dir} (${ms} ms)`,
  );
  if (loaded.roundTrip)
    options.print(
      `${loaded.roundTripCached === 'hit' ? 'already packed' : 'packed'} its round trip (explanations): ${mib(loaded.roundTrip.byteLength)}`,
    );
}
