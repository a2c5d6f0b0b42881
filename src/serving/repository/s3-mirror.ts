/**
 * A model repository in an S3-compatible bucket: `--model-repository s3://bucket/prefix`. The
 * repository itself keeps reading a local directory; this module keeps that directory a copy of
 * the bucket's objects under the prefix, in a cache that survives restarts.
 *
 * A sync lists the prefix and compares each object's ETag with the one recorded when it was
 * downloaded; only new and changed objects are fetched (each GET pinned to the listed ETag, its
 * length checked), and the objects gone are deleted. A version directory (a path segment of
 * digits) changes as a whole: it is assembled in a hidden staging directory, from the unchanged
 * files of the current copy and the downloaded ones, and renamed into place, so a scan that
 * follows sees the old version or the new one, never half of each. The repository then loads
 * the new version and switches to it as it does for a local directory.
 *
 * Every key is untrusted: a key becomes a path only when each of its segments is a plain name
 * (letters, digits, . _ -, not starting with a dot) and it is at most MAX_DEPTH deep; others are
 * skipped with a warning. Credentials come from the AWS SDK's standard chain (the environment,
 * the shared profile, a web identity, the container or instance role).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type * as S3Sdk from '@aws-sdk/client-s3';
import { MaasError, messageOf } from '../../core/errors.js';
import { takeFileLock } from '../../io/file-lock.js';
import { MAX_MODEL_FILE_BYTES, readRegularFile, writeDurably } from '../../io/files.js';

/** What the repository asks of a mirrored source: bring the local copy up to date. */
export interface RepositoryMirror {
  /** The source, as the user wrote it (s3://bucket/prefix). */
  readonly source: string;
  /** The local copy the repository reads. */
  readonly dir: string;
  /** The first sync: with the store unreachable, a previous copy is served (with a warning) if there is one. */
  prepare(): Promise<void>;
  /** Brings the copy up to date; calls made while one runs share it. */
  sync(): Promise<void>;
  /** Stops a sync in flight (its store calls are aborted) and releases the copy's lock. */
  close(): Promise<void>;
}

/** A bucket and a key prefix ("" or ending in "/"). */
export interface S3Location {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
}

/** Deepest key below the prefix: model/version/subdirectory/file. */
const MAX_DEPTH = 4;
/** Most objects under one prefix: a repository of models, not a data lake. */
const MAX_OBJECTS = 100_000;
/** Downloads at once. */
const PARALLEL_DOWNLOADS = 4;
const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;
const VERSION_SEGMENT = /^[0-9]+$/;
/** S3's bucket naming rules (lowercase letters, digits, dots and hyphens; 3 to 63). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const MANIFEST = '.maas-mirror.json';
const HIDDEN_WORK = '.maas-mirror-work';
const LOCK = '.maas-mirror.lock';
/** The record: at most MAX_OBJECTS paths with their ETags, each at most MAX_ETAG_BYTES. */
const MAX_MANIFEST_BYTES = 128 * 2 ** 20;
const MAX_ETAG_BYTES = 256;
/** Seconds a store connection may take to open, and a request may go without a byte. */
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 60_000;
/** Keys remembered as skipped (so each is warned once); beyond, the memory starts over. */
const MAX_SKIPPED = 10_000;

/**
 * Where --model-repository points: null for a local directory, the bucket and prefix for an
 * s3:// URL; any other scheme is refused, with the way to reach that store if there is one.
 */
export function repositoryLocation(value: string): S3Location | null {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return null;
  if (scheme !== 's3') {
    const hint =
      scheme === 'gs'
        ? ' Google Cloud Storage speaks the S3 API: use s3://BUCKET/PREFIX with AWS_ENDPOINT_URL_S3=https://storage.googleapis.com and an HMAC key.'
        : '';
    throw new MaasError(
      'MAAS_ERR_REPOSITORY_URL',
      `Expected a local directory or s3://BUCKET/PREFIX for the model repository but received a ${scheme}:// URL, which maas does not read.${hint}`,
    );
  }
  const rest = value.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..'))
    throw new MaasError(
      'MAAS_ERR_REPOSITORY_URL',
      `Expected an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens) in ${value} but received '${bucket}'`,
    );
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.some((s) => !SAFE_SEGMENT.test(s)))
    throw new MaasError(
      'MAAS_ERR_REPOSITORY_URL',
      `Expected a key prefix of plain names (letters, digits, . _ -) in ${value} but received '${path}'`,
    );
  const prefix = segments.length ? `${segments.join('/')}/` : '';
  return { url: `s3://${bucket}/${prefix}`, bucket, prefix };
}

/** The default local copy of a bucket prefix: under the user's cache directory, one per URL. */
export function defaultMirrorDir(location: S3Location, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  const id = createHash('sha256').update(location.url).digest('hex').slice(0, 16);
  return join(base, 'maas', 'repositories', `${location.bucket}-${id}`);
}

/** The path a key names below the prefix, or why it is skipped. */
function keyPath(relative: string): { path: string } | { skip: string } {
  const segments = relative.split('/');
  if (segments.length > MAX_DEPTH) return { skip: `deeper than ${MAX_DEPTH} levels` };
  if (!segments.every((s) => SAFE_SEGMENT.test(s)))
    return { skip: 'a segment is not a plain name (letters, digits, . _ -, no leading dot)' };
  return { path: segments.join('/') };
}

/** The version directory a path lies in ("classic/2" for "classic/2/model.json"), or null. */
function versionUnit(path: string): string | null {
  const segments = path.split('/');
  const at = segments.findIndex((s, i) => i < segments.length - 1 && VERSION_SEGMENT.test(s));
  return at < 0 ? null : segments.slice(0, at + 1).join('/');
}

/**
 * What changes together: a version directory as a whole, and otherwise the files of one
 * directory (a model's config.json and labels, or a flat model's files) as a set, so a failed
 * download never leaves a new model.json beside old weights. A file unit's key ends in "/*".
 */
function unitOf(path: string): { key: string; version: boolean } {
  const version = versionUnit(path);
  if (version !== null) return { key: version, version: true };
  return { key: `${dirname(path) === '.' ? '' : `${dirname(path)}/`}*`, version: false };
}

interface ObjectRecord {
  etag: string;
  size: number;
}

interface Manifest {
  source: string;
  objects: Record<string, ObjectRecord>;
}

export interface S3MirrorOptions {
  location: S3Location;
  /** The local copy (defaultMirrorDir, or --repository-cache). */
  dir: string;
  logger: Logger;
  /** An S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS). */
  endpoint?: string;
}

export class S3Mirror implements RepositoryMirror {
  readonly dir: string;
  private readonly location: S3Location;
  private readonly logger: Logger;
  private running: Promise<void> | null = null;
  /** Aborts the store calls in flight when the repository closes. */
  private readonly closing = new AbortController();
  /** Keys already warned about, so a poll does not repeat the warning every scan. */
  private readonly skipped = new Set<string>();

  private constructor(
    private readonly client: S3Sdk.S3Client,
    private readonly sdk: typeof S3Sdk,
    options: S3MirrorOptions,
    private manifest: Manifest,
    private readonly releaseLock: () => Promise<void>,
  ) {
    this.location = options.location;
    this.logger = options.logger;
    this.dir = options.dir;
  }

  get source(): string {
    return this.location.url;
  }

  /**
   * A mirror of `location`: its local copy made (private to this user) and locked, its record
   * read, then the store's client.
   */
  static async open(options: S3MirrorOptions): Promise<S3Mirror> {
    const { dir, location } = options;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const releaseLock = await takeLock(dir);
    try {
      const recorded = await readManifest(dir);
      if (recorded ? recorded.source !== location.url : (await visibleEntries(dir)) > 0)
        throw new MaasError(
          'MAAS_ERR_REPOSITORY_URL',
          `Expected the repository cache ${dir} to be empty or a copy of ${location.url} but it holds ${recorded ? `a copy of ${recorded.source}` : 'other files'}: give --repository-cache a directory of its own`,
        );
      // Loaded only for an s3:// repository: the SDK is large, and warns on import about Node versions.
      const sdk = await import('@aws-sdk/client-s3');
      const env = process.env;
      const endpoint = options.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined);
      const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || (await profileRegion(sdk)) || 'us-east-1';
      const client = new sdk.S3Client({
        region,
        followRegionRedirects: true,
        // A store that stops answering fails the sync (retried next poll) instead of holding it.
        requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: IDLE_TIMEOUT_MS },
        // S3-compatible servers (MinIO, Ceph, s3rver) name the bucket in the path.
        ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      });
      return new S3Mirror(client, sdk, options, recorded ?? { source: location.url, objects: {} }, releaseLock);
    } catch (error) {
      await releaseLock();
      throw error;
    }
  }

  async prepare(): Promise<void> {
    try {
      await this.sync();
    } catch (error) {
      if (Object.keys(this.manifest.objects).length === 0) throw error;
      this.logger.warn(
        { err: error, source: this.source, dir: this.dir },
        'the model store cannot be read: serving the copy from the last sync',
      );
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    await this.running?.catch(() => {});
    this.client.destroy();
    await this.releaseLock();
  }

  sync(): Promise<void> {
    if (this.closing.signal.aborted)
      return Promise.reject(new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down'));
    this.running ??= this.syncOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async syncOnce(): Promise<void> {
    const remote = await this.list();
    const intact = await this.intactPaths();
    const held = (path: string, r: ObjectRecord) =>
      intact.has(path) && this.manifest.objects[path]?.etag === r.etag && this.manifest.objects[path]?.size === r.size;
    const changed = [...remote].filter(([path, r]) => !held(path, r)).map(([path]) => path);
    const removed = Object.keys(this.manifest.objects).filter((path) => !remote.has(path));
    if (changed.length === 0 && removed.length === 0) return;
    const work = join(this.dir, HIDDEN_WORK);
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true, mode: 0o700 });
    try {
      const before = this.manifest.objects;
      const next = await this.apply(remote, held, work);
      this.manifest = { source: this.source, objects: next };
      const temp = join(work, MANIFEST);
      await writeDurably(temp, JSON.stringify(this.manifest));
      await rename(temp, join(this.dir, MANIFEST));
      await this.prune(Object.keys(before).filter((p) => !(p in next)));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    const units = new Set([...changed, ...removed].map((p) => versionUnit(p) ?? p));
    this.logger.info(
      { source: this.source, changed: changed.length, removed: removed.length, paths: [...units].slice(0, 20) },
      'model store synced',
    );
  }

  /** The recorded paths whose file is in the copy at its recorded size (a copy cleared by hand is fetched again). */
  private async intactPaths(): Promise<Set<string>> {
    const intact = new Set<string>();
    for (const [path, r] of Object.entries(this.manifest.objects)) {
      const info = await stat(join(this.dir, path)).catch(() => null);
      if (info?.isFile() && info.size === r.size) intact.add(path);
    }
    return intact;
  }

  /** Every usable object under the prefix, by its path in the copy. */
  private async list(): Promise<Map<string, ObjectRecord>> {
    const objects = new Map<string, ObjectRecord>();
    let token: string | undefined;
    let listed = 0;
    do {
      const page = await this.call('list', () =>
        this.client.send(
          new this.sdk.ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: this.location.prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          { abortSignal: this.closing.signal },
        ),
      );
      listed += page.Contents?.length ?? 0;
      if (listed > MAX_OBJECTS)
        throw new MaasError(
          'MAAS_ERR_REPOSITORY_STORE',
          `Expected at most ${MAX_OBJECTS} objects under ${this.source}; is the prefix the repository's?`,
        );
      if (this.skipped.size > MAX_SKIPPED) this.skipped.clear();
      for (const object of page.Contents ?? []) {
        const key = object.Key ?? '';
        const relative = key.slice(this.location.prefix.length);
        if (relative === '' || relative.endsWith('/')) continue; // the prefix itself, or a "folder" marker
        const size = object.Size ?? 0;
        const etag = object.ETag ?? '';
        // Nothing the repository would refuse to read is fetched (nor fills the disk), and no ETag
        // longer than a store makes (the record must stay within MAX_MANIFEST_BYTES).
        const path =
          size > MAX_MODEL_FILE_BYTES
            ? { skip: `larger than ${MAX_MODEL_FILE_BYTES} bytes, the largest model file maas reads` }
            : etag.length > MAX_ETAG_BYTES
              ? { skip: `an ETag longer than ${MAX_ETAG_BYTES} characters` }
              : keyPath(relative);
        if ('skip' in path) {
          if (!this.skipped.has(key)) this.logger.warn({ key, why: path.skip }, 'model store object skipped');
          this.skipped.add(key);
          continue;
        }
        objects.set(path.path, { etag, size });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    // A key that is also the directory of other keys ("a/1" beside "a/1/model.json") cannot be both.
    const directories = new Set(
      [...objects.keys()].flatMap((p) =>
        p
          .split('/')
          .slice(0, -1)
          .map((_, i, s) => s.slice(0, i + 1).join('/')),
      ),
    );
    for (const path of objects.keys())
      if (directories.has(path)) {
        if (!this.skipped.has(path))
          this.logger.warn(
            { key: this.location.prefix + path, why: 'it is also a directory of other keys' },
            'model store object skipped',
          );
        this.skipped.add(path);
        objects.delete(path);
      }
    return objects;
  }

  /**
   * Makes the copy match `remote`: version directories rebuilt whole in `work` and renamed into
   * place, other files downloaded beside their place and renamed over it. Returns the record of
   * what the copy now holds (a version whose objects changed while being fetched keeps its
   * previous state, and is fetched again next sync).
   */
  private async apply(
    remote: Map<string, ObjectRecord>,
    held: (path: string, record: ObjectRecord) => boolean,
    work: string,
  ): Promise<Record<string, ObjectRecord>> {
    const local = this.manifest.objects;
    const next: Record<string, ObjectRecord> = {};
    const units = new Map<string, { version: boolean; paths: string[] }>();
    for (const path of new Set([...remote.keys(), ...Object.keys(local)])) {
      const unit = unitOf(path);
      const members = units.get(unit.key);
      if (members) members.paths.push(path);
      else units.set(unit.key, { version: unit.version, paths: [path] });
    }
    const jobs: (() => Promise<void>)[] = [];
    for (const [unit, { version, paths }] of units) {
      const wanted = paths.filter((p) => remote.has(p));
      if (wanted.length === paths.length && wanted.every((p) => held(p, remote.get(p)!))) {
        for (const p of wanted) next[p] = local[p]!;
        continue;
      }
      jobs.push(async () => {
        try {
          if (version) await this.replaceVersion(unit, wanted, remote, held, work);
          else
            await this.replaceFiles(
              wanted.filter((p) => !held(p, remote.get(p)!)),
              remote,
              work,
            );
          for (const p of wanted) next[p] = remote.get(p)!;
        } catch (error) {
          if (this.closing.signal.aborted) throw error;
          this.logger.warn({ err: error, path: unit, source: this.source }, 'model store object not fetched');
          for (const p of paths) if (local[p]) next[p] = local[p];
        }
      });
    }
    await runLimited(jobs, PARALLEL_DOWNLOADS);
    return next;
  }

  /**
   * Files outside version directories (one directory's, as a set): all downloaded first, then
   * renamed over the old ones, so a failed download replaces none of them. A version directory
   * that is empty of objects is removed whole by replaceVersion.
   */
  private async replaceFiles(paths: string[], remote: Map<string, ObjectRecord>, work: string): Promise<void> {
    const fetched: [string, string][] = [];
    for (const path of paths) {
      const temp = join(work, randomBytes(8).toString('hex'));
      await this.download(path, remote.get(path)!, temp);
      fetched.push([temp, path]);
    }
    for (const [temp, path] of fetched) {
      await mkdir(dirname(join(this.dir, path)), { recursive: true, mode: 0o755 });
      await rename(temp, join(this.dir, path));
    }
  }

  /** A version directory: assembled in `work` (unchanged files linked, others downloaded), then swapped in. */
  private async replaceVersion(
    unit: string,
    paths: string[],
    remote: Map<string, ObjectRecord>,
    held: (path: string, record: ObjectRecord) => boolean,
    work: string,
  ): Promise<void> {
    const live = join(this.dir, unit);
    if (paths.length === 0) {
      await rm(live, { recursive: true, force: true });
      return;
    }
    const staged = join(work, randomBytes(8).toString('hex'));
    for (const path of paths) {
      const target = join(staged, path.slice(unit.length + 1));
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      const record = remote.get(path)!;
      const linked =
        held(path, record) &&
        (await link(join(this.dir, path), target).then(
          () => true,
          () => false,
        ));
      if (!linked) await this.download(path, record, target);
    }
    await mkdir(dirname(live), { recursive: true, mode: 0o755 });
    const old = join(work, `${randomBytes(8).toString('hex')}.old`);
    const hadOld = await rename(live, old).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
        return false;
      },
    );
    try {
      await rename(staged, live);
    } catch (error) {
      if (hadOld) await rename(old, live); // put the version being served back
      throw error;
    }
  }

  /** Fetches an object into `target`: the listed version only (If-Match), of the listed length. */
  private async download(path: string, record: ObjectRecord, target: string): Promise<void> {
    const key = this.location.prefix + path;
    const answer = await this.call(`get ${key}`, () =>
      this.client.send(
        new this.sdk.GetObjectCommand({
          Bucket: this.location.bucket,
          Key: key,
          ...(record.etag ? { IfMatch: record.etag } : {}),
        }),
        { abortSignal: this.closing.signal },
      ),
    );
    if (!answer.Body) throw new MaasError('MAAS_ERR_REPOSITORY_STORE', `The object ${key} came without a body`);
    if (answer.ContentLength !== undefined && answer.ContentLength !== record.size) {
      (answer.Body as Readable).destroy(); // not read: let the connection go
      throw new MaasError(
        'MAAS_ERR_REPOSITORY_STORE',
        `Expected ${record.size} bytes for ${key} as listed but the store sends ${answer.ContentLength}: it changed, fetched next sync`,
      );
    }
    // Counted as it streams: a body without a length (chunked) stops at the listed size, before
    // it can fill the disk.
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > record.size)
          done(
            new MaasError(
              'MAAS_ERR_REPOSITORY_STORE',
              `Expected ${record.size} bytes for ${key} as listed but the store sends more: it changed, fetched next sync`,
            ),
          );
        else done(null, chunk);
      },
    });
    await pipeline(answer.Body as Readable, counted, createWriteStream(target, { mode: 0o644 }), {
      signal: this.closing.signal,
    });
    if (size !== record.size)
      throw new MaasError(
        'MAAS_ERR_REPOSITORY_STORE',
        `Expected ${record.size} bytes for ${key} but received ${size}: the download was cut short`,
      );
  }

  /**
   * Deletes the files of objects that are gone (only what an earlier sync wrote: the copy's
   * directory may hold the repository's own hidden files), then the directories they leave empty.
   */
  private async prune(gone: string[]): Promise<void> {
    const parents = new Set<string>();
    for (const path of gone) {
      await rm(join(this.dir, path), { force: true, recursive: true });
      for (let d = dirname(path); d !== '.'; d = dirname(d)) parents.add(d);
    }
    // Deepest first, so a model directory goes after its emptied version directories.
    for (const d of [...parents].sort((x, y) => y.length - x.length))
      if ((await readdir(join(this.dir, d)).catch(() => ['?'])).length === 0)
        await rm(join(this.dir, d), { recursive: true, force: true });
  }

  /** Runs a store call; its failure becomes MAAS_ERR_REPOSITORY_STORE, saying what to check. */
  private async call<T>(what: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      const name = (error as { name?: string }).name ?? '';
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const hint =
        name === 'CredentialsProviderError'
          ? ': no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role)'
          : name === 'NoSuchBucket'
            ? `: the bucket ${this.location.bucket} does not exist`
            : status === 403
              ? ': access denied (check the credentials and the bucket policy)'
              : `: ${name ? `${name}: ` : ''}${messageOf(error)}`;
      throw new MaasError('MAAS_ERR_REPOSITORY_STORE', `Could not ${what} in ${this.source}${hint}`, { cause: error });
    }
  }
}

/** Entries of a directory other than hidden ones. */
async function visibleEntries(dir: string): Promise<number> {
  return (await readdir(dir)).filter((n) => !n.startsWith('.')).length;
}

/**
 * Takes the copy for this process (src/io/file-lock.ts): a live holder refuses the start (two
 * servers syncing one copy would delete each other's work); a holder that is gone is taken over.
 */
function takeLock(dir: string): Promise<() => Promise<void>> {
  return takeFileLock(join(dir, LOCK), (held) =>
    held === 'raced' || held === null
      ? new MaasError(
          'MAAS_ERR_REPOSITORY_URL',
          `The repository cache ${dir} is locked (${join(dir, LOCK)}${held === null ? ' cannot be read' : ''}): give each server its own --repository-cache, or remove the lock if no server uses it`,
        )
      : new MaasError(
          'MAAS_ERR_REPOSITORY_URL',
          `The repository cache ${dir} is in use by process ${held.pid}${held.host === hostname() ? '' : ` on ${held.host}`}: give each server its own --repository-cache`,
        ),
  );
}

/** The region of the shared AWS profile, if one names it. */
async function profileRegion(sdk: typeof S3Sdk): Promise<string | undefined> {
  try {
    const probe = new sdk.S3Client({});
    const region = await probe.config.region();
    probe.destroy();
    return region;
  } catch {
    return undefined;
  }
}

async function readManifest(dir: string): Promise<Manifest | null> {
  try {
    const text = await readRegularFile(join(dir, MANIFEST), MAX_MANIFEST_BYTES, 'the repository cache record');
    const parsed = JSON.parse(text.toString('utf8')) as Partial<Manifest>;
    if (typeof parsed.source !== 'string' || typeof parsed.objects !== 'object' || parsed.objects === null) return null;
    const objects: Record<string, ObjectRecord> = {};
    for (const [path, r] of Object.entries(parsed.objects))
      if ('path' in keyPath(path) && typeof r?.etag === 'string' && Number.isSafeInteger(r.size))
        objects[path] = { etag: r.etag, size: r.size };
    return { source: parsed.source, objects };
  } catch {
    return null;
  }
}

/** Runs the jobs, at most `limit` at a time. */
async function runLimited(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, lane));
}
