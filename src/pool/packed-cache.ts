/**
 * The packed cache: a model version's weights packed once into a file of a cache directory, so
 * every serving process and its workers map the same pages from the page cache (one copy per
 * machine, DESIGN decision 13), and a restart or a second process loads by mapping instead of
 * reading, checking and packing the model again.
 *
 * An entry is `<key>.json` (what serving needs besides the weights) and `<key>.pack` (the packed
 * bytes exactly as a region holds them). The key covers everything the bytes depend on: the
 * model's files (path, size, inode, modification and change times: an edited file is a new
 * key), the precision, the kernels this process packs for, and the cache's layout version. The
 * `.pack` file appears last (by link, so two processes packing the same version at once end
 * with one file), so its presence marks a complete entry.
 *
 * The addon trusts packed bytes beyond their header checks, so the cache must be private: the
 * directory is created 0700, and the directory and every file used must be owned by this
 * effective user, writable by no one else and not reached through a symbolic link
 * (MAAS_ERR_PACKED_CACHE_UNSAFE otherwise). Encrypted models are never cached: their packed
 * weights would be plaintext on disk.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, realpath, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MaasError } from '../core/errors.js';
import { syncDirectory } from '../io/files.js';
import type { PackedFormat, PackedRegion, RegionTarget } from '../model/packed.js';
import { native } from '../native/index.js';
import type { LoadedModel } from './messages.js';

/** Bump when the entry files' meaning changes: older entries are then never matched. */
const CACHE_LAYOUT = 1;
/** A model directory with more files than this is not cached (the key stats every file). */
const MAX_KEYED_FILES = 4096;
const MAX_ENTRY_JSON_BYTES = 64 * 1024;

/** What an entry's JSON records besides the packed bytes. */
interface EntryRecord {
  layout: number;
  format: PackedFormat;
  kernel: string;
  byteLength: number;
  inputSize: number;
  outputSize: number;
  quantization?: string;
  /** Whether the model file's recorded digest was verified when it was packed (strictIntegrity needs it). */
  digestVerified: boolean;
  /** The model file, for people reading the cache and for prune() to tell a stale entry. */
  source: string;
  /** The precision the key was made with ('as-stored' or 'bf16'); absent in entries written before prune. */
  precision?: string;
}

/** What prune() removed and kept. */
export interface PruneReport {
  /** Entries removed because their model file is gone or changed (or was packed by other kernels). */
  stale: string[];
  /** Entries removed, least recently used first, to bring the cache under maxBytes. */
  evicted: string[];
  /** Temporary files left by packs that never finished. */
  leftovers: number;
  /** Bytes freed. */
  freedBytes: number;
  /** Bytes the remaining entries hold. */
  keptBytes: number;
}

/** A temporary file older than this is a leftover of a pack that died (a pack in progress renews it). */
const LEFTOVER_AGE_MS = 60 * 60 * 1000;

/** An entry being written: where to pack, and how to publish it once packed. */
export interface PendingEntry {
  readonly target: RegionTarget & { readonly file: string };
  /**
   * Publishes the packed region as the entry and closes the region's descriptor (on failure too);
   * returns the region over the published file.
   */
  commit(region: PackedRegion, loaded: Omit<LoadedModel, 'region'>, digestVerified: boolean): Promise<PackedRegion>;
}

function unsafe(path: string, why: string): MaasError {
  return new MaasError('MAAS_ERR_PACKED_CACHE_UNSAFE', `The packed cache ${path} is refused: ${why}`);
}

/** The effective user (a cache must be this user's alone), or null where the platform has none. */
function effectiveUser(): number | null {
  return typeof process.geteuid === 'function' ? process.geteuid() : null;
}

/** Refuses a cache directory that is a symbolic link, someone else's, or open to other users. */
async function checkPrivateDirectory(dir: string): Promise<void> {
  const info = await lstat(dir);
  if (info.isSymbolicLink()) throw unsafe(dir, 'it is a symbolic link');
  if (!info.isDirectory()) throw unsafe(dir, 'it is not a directory');
  const euid = effectiveUser();
  if (euid !== null && info.uid !== euid) throw unsafe(dir, `it is owned by uid ${info.uid}, not this user (${euid})`);
  if ((info.mode & 0o077) !== 0)
    throw unsafe(dir, `its mode is ${(info.mode & 0o777).toString(8)}; other users must have no access (chmod 700)`);
}

/** Every regular file under the model's directory (a few levels deep), stat'ed: the key's file part. */
async function modelFiles(path: string): Promise<string[] | null> {
  const real = await realpath(path);
  const root = (await stat(real)).isDirectory() ? real : dirname(real);
  const out: string[] = [];
  const walk = async (dir: string, depth: number): Promise<boolean> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory() && depth < 3) {
        if (!(await walk(full, depth + 1))) return false;
      } else if (entry.isFile()) {
        const s = await lstat(full, { bigint: true });
        out.push(`${full}\0${s.size}\0${s.ino}\0${s.dev}\0${s.mtimeNs}\0${s.ctimeNs}`);
        if (out.length > MAX_KEYED_FILES) return false;
      }
    }
    return true;
  };
  return (await walk(root, 0)) ? [real, ...out.sort()] : null;
}

/**
 * What an entry holds: the weights as the file stores them (fp32 or int8), the fp32 ones as bf16,
 * or the round-trip stack explanations take gradients through (the fp32 weights and each kernel
 * transposed).
 */
export type CachedPrecision = 'as-stored' | 'bf16' | 'round-trip';
const CACHED_PRECISIONS: readonly CachedPrecision[] = ['as-stored', 'bf16', 'round-trip'];

/** The packed cache in `dir`: looked up and written by the load thread, and by `maas pack`. */
export class PackedCache {
  constructor(readonly dir: string) {}

  /**
   * The key of `modelPath` packed in `precision` ('int8' for int8 files) by this process's
   * kernels, or null when the model is not cacheable (too many files).
   */
  async keyOf(modelPath: string, precision: CachedPrecision): Promise<string | null> {
    const files = await modelFiles(modelPath);
    if (!files) return null;
    const cpu = native.cpuInfo();
    const identity = {
      layout: CACHE_LAYOUT,
      precision,
      kernels: [cpu.f32Kernel, cpu.bf16Kernel, cpu.int8Kernel, cpu.cap],
      files,
    };
    return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 40);
  }

  /** Creates the directory (0700) if needed and checks that it is private. */
  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await checkPrivateDirectory(this.dir);
  }

  /**
   * The entry under `key`, mapped read-only as a region tagged `tag`; null when there is none
   * (or, under strictIntegrity, when it was packed from a file whose digest was not verified).
   */
  async lookup(key: string, tag: number, strictIntegrity: boolean): Promise<LoadedModel | null> {
    await checkPrivateDirectory(this.dir);
    const record = await this.readRecord(key);
    if (!record || (strictIntegrity && !record.digestVerified)) return null;
    // Marks the entry used, for prune()'s least-recently-used order (best effort: a read-only cache still serves).
    const now = new Date();
    await utimes(join(this.dir, `${key}.json`), now, now).catch(() => undefined);
    let opened: { fd: number; byteLength: number };
    try {
      opened = native.openCachedRegion(this.packPath(key), tag);
    } catch (e) {
      if ((e as { code?: string }).code === 'MAAS_ERR_PACKED_CACHE_UNSAFE') throw e;
      return null; // not there (yet): a miss
    }
    if (opened.byteLength !== record.byteLength) {
      // Cut short (a full disk, a crash mid-copy): removed, so the next pack can publish again.
      native.closeRegion(opened.fd);
      await rm(this.packPath(key), { force: true });
      return null;
    }
    const region: PackedRegion = {
      fd: opened.fd,
      byteLength: record.byteLength,
      kernel: record.kernel,
      format: record.format,
    };
    return {
      region,
      inputSize: record.inputSize,
      outputSize: record.outputSize,
      ...(record.quantization !== undefined ? { quantization: record.quantization } : {}),
    };
  }

  /**
   * A new entry under `key`: pack into its target file, then commit; the published region's
   * descriptor is unclaimed under `tag` like the packed one it replaces.
   */
  begin(key: string, source: string, tag: number, precision: CachedPrecision): PendingEntry {
    const temporary = join(this.dir, `.${key}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    return {
      target: { file: temporary },
      commit: async (region, loaded, digestVerified) => {
        // The packed region's descriptor is this call's to close, whatever happens.
        try {
          const record: EntryRecord = {
            layout: CACHE_LAYOUT,
            format: region.format,
            kernel: region.kernel,
            byteLength: region.byteLength,
            inputSize: loaded.inputSize,
            outputSize: loaded.outputSize,
            ...(loaded.quantization !== undefined ? { quantization: loaded.quantization } : {}),
            digestVerified,
            source,
            precision,
          };
          await this.writeRecord(key, record);
          // link, not rename: when another process published the same key first, its file stays
          // and this one's copy is dropped, so both map one file.
          await link(temporary, this.packPath(key)).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== 'EEXIST') throw e;
          });
          await syncDirectory(this.dir);
          const published = native.openCachedRegion(this.packPath(key), tag);
          if (published.byteLength !== region.byteLength) {
            native.closeRegion(published.fd);
            throw unsafe(this.packPath(key), 'it changed while it was published');
          }
          return { ...region, fd: published.fd };
        } finally {
          native.closeRegion(region.fd);
          await rm(temporary, { force: true });
        }
      },
    };
  }

  /**
   * Removes stale entries (the model file gone, edited, or packed by other kernels: no server
   * would look them up again), leftovers of packs that died, and then, least recently used first,
   * entries (all but the most recent) until the `.pack` files hold at most `maxBytes`. An entry a server has mapped keeps
   * its pages until it unmaps them; the next load of that model packs it again.
   */
  async prune(options: { maxBytes?: number } = {}): Promise<PruneReport> {
    await checkPrivateDirectory(this.dir);
    const report: PruneReport = { stale: [], evicted: [], leftovers: 0, freedBytes: 0, keptBytes: 0 };
    const live: { key: string; source: string; bytes: number; used: number }[] = [];
    const names = await readdir(this.dir);
    for (const name of names) {
      const full = join(this.dir, name);
      if (name.startsWith('.') && name.endsWith('.tmp')) {
        const info = await lstat(full).catch(() => null);
        if (info?.isFile() && Date.now() - info.mtimeMs > LEFTOVER_AGE_MS) {
          await rm(full, { force: true });
          report.leftovers++;
          report.freedBytes += info.size;
        }
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const key = name.slice(0, -'.json'.length);
      if (!/^[0-9a-f]{40}$/.test(key)) continue;
      const record = await this.readRecord(key);
      const pack = await lstat(this.packPath(key)).catch(() => null);
      const bytes = pack?.isFile() ? pack.size : 0;
      if (!record || (await this.isStale(key, record))) {
        await this.remove(key);
        report.stale.push(record?.source ?? key);
        report.freedBytes += bytes;
        continue;
      }
      const used = (await lstat(full).catch(() => null))?.mtimeMs ?? 0;
      live.push({ key, source: record.source, bytes, used });
    }
    live.sort((a, b) => a.used - b.used);
    let total = live.reduce((n, e) => n + e.bytes, 0);
    // The most recently used entry stays whatever the cap: it is what was just loaded.
    if (options.maxBytes !== undefined)
      for (const entry of live.slice(0, -1)) {
        if (total <= options.maxBytes) break;
        await this.remove(entry.key);
        report.evicted.push(entry.source);
        report.freedBytes += entry.bytes;
        total -= entry.bytes;
      }
    report.keptBytes = total;
    return report;
  }

  /** Whether no load would find this entry again: its model file is gone, or now makes another key. */
  private async isStale(key: string, record: EntryRecord): Promise<boolean> {
    const precisions: CachedPrecision[] = CACHED_PRECISIONS.includes(record.precision as CachedPrecision)
      ? [record.precision as CachedPrecision]
      : [...CACHED_PRECISIONS];
    for (const precision of precisions) {
      const now = await this.keyOf(record.source, precision).catch(() => null);
      if (now === key) return false;
    }
    return true;
  }

  /** Removes an entry: the record last, so a half-removed entry is still found and finished by the next prune. */
  private async remove(key: string): Promise<void> {
    await rm(this.packPath(key), { force: true });
    await rm(join(this.dir, `${key}.json`), { force: true });
  }

  private packPath(key: string): string {
    return join(this.dir, `${key}.pack`);
  }

  private async readRecord(key: string): Promise<EntryRecord | null> {
    let handle;
    try {
      handle = await open(join(this.dir, `${key}.json`), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw unsafe(join(this.dir, `${key}.json`), (e as Error).message);
    }
    try {
      const info = await handle.stat();
      const euid = effectiveUser();
      if (!info.isFile() || (euid !== null && info.uid !== euid) || (info.mode & 0o022) !== 0)
        throw unsafe(join(this.dir, `${key}.json`), 'it is not a regular file of this user writable only by it');
      if (info.size > MAX_ENTRY_JSON_BYTES) return null;
      const parsed = JSON.parse(await handle.readFile('utf8')) as Partial<EntryRecord>;
      return isEntryRecord(parsed) ? parsed : null;
    } catch (e) {
      if (e instanceof MaasError) throw e;
      return null; // unreadable or from another layout: a miss, rewritten by the next pack
    } finally {
      await handle.close();
    }
  }

  private async writeRecord(key: string, record: EntryRecord): Promise<void> {
    const temporary = join(this.dir, `.${key}.${process.pid}.${randomBytes(6).toString('hex')}.json.tmp`);
    try {
      const handle = await open(temporary, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify(record, null, 2) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, join(this.dir, `${key}.json`));
    } finally {
      await rm(temporary, { force: true });
    }
  }
}

function isEntryRecord(r: Partial<EntryRecord>): r is EntryRecord {
  return (
    r.layout === CACHE_LAYOUT &&
    (r.format === 'fp32' || r.format === 'bf16' || r.format === 'int8') &&
    typeof r.kernel === 'string' &&
    Number.isSafeInteger(r.byteLength) &&
    r.byteLength! > 0 &&
    Number.isSafeInteger(r.inputSize) &&
    Number.isSafeInteger(r.outputSize) &&
    (r.quantization === undefined || typeof r.quantization === 'string') &&
    typeof r.digestVerified === 'boolean' &&
    typeof r.source === 'string' &&
    (r.precision === undefined || typeof r.precision === 'string')
  );
}

/** The default cache directory: $MAAS_PACKED_CACHE, else $XDG_CACHE_HOME/maas/packed, else ~/.cache/maas/packed. */
export function defaultPackedCacheDir(env: NodeJS.ProcessEnv = process.env, home = process.env.HOME ?? ''): string {
  if (env.MAAS_PACKED_CACHE) return env.MAAS_PACKED_CACHE;
  const base = env.XDG_CACHE_HOME || join(home || '.', '.cache');
  return join(base, 'maas', 'packed');
}
