/**
 * The keys of encrypted model files (sealed.ts): 32-byte keys found by key id, from keys given in
 * code, the environment (MAAS_MODEL_KEY, MAAS_MODEL_KEY_ID), a key file of "<key id> <key>"
 * lines that no other user may read, or a KMS-style command that prints the key.
 *
 * Keys are held as KeyObjects: one prints and serializes as `{}`, so a key cannot reach a log by
 * accident, and it crosses to a load thread as a key, not as text. No error quotes key material
 * (a malformed key is described by its length), nor a key id that failed its check (it may be a
 * key written in the wrong column).
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { MaasError } from '../core/errors.js';

/** Where the keys of encrypted model files come from. */
export interface ModelKeys {
  /**
   * The 32-byte key `keyId` names. Throws MAAS_ERR_MODEL_KEY_UNKNOWN when no source holds it,
   * and MAAS_ERR_KEY_INVALID, MAAS_ERR_KEY_FILE or MAAS_ERR_KEY_COMMAND when a source is broken.
   */
  key(keyId: string): Promise<KeyObject>;
}

/** A model key's length: AES-256. */
export const MODEL_KEY_BYTES = 32;
/** The environment variable holding a model key (64 hex digits or base64). */
export const MODEL_KEY_ENV = 'MAAS_MODEL_KEY';
/** The environment variable naming MAAS_MODEL_KEY's key id (default DEFAULT_KEY_ID). */
export const MODEL_KEY_ID_ENV = 'MAAS_MODEL_KEY_ID';
/** The key id of MAAS_MODEL_KEY without MAAS_MODEL_KEY_ID, and of a key file line holding a key alone. */
export const DEFAULT_KEY_ID = 'default';
/** A key command that has not answered after this long is killed (ModelKeyringOptions.keyCommandTimeoutMs). */
export const DEFAULT_KEY_COMMAND_TIMEOUT_MS = 10_000;
/** How long a key, once found, is kept (ModelKeyringOptions.cacheMs). */
export const DEFAULT_KEY_CACHE_MS = 5 * 60_000;

/** The most a key file or a key command's output may hold: a key file is a few lines. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
const MAX_KEY_COMMAND_OUTPUT = 4096;
/** The most of a failed key command's stderr an error quotes. */
const MAX_STDERR_QUOTE = 200;

/**
 * A key id: 1 to 128 of A-Z a-z 0-9 . _ : / -, a letter or digit first, no "..". A key id read
 * from a model file becomes an argument of the key command: no shell runs it, and it cannot pass
 * for an option (no leading '-'), climb out of a directory a hook looks keys up in (no ".."), or
 * split into several arguments (no whitespace).
 */
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** Whether `value` is a well-formed key id (see KEY_ID). */
export function isKeyId(value: unknown): value is string {
  return typeof value === 'string' && KEY_ID.test(value) && !value.includes('..');
}

/** Refuses a malformed key id; `what` names it. The value itself is not quoted (it may be a key). */
export function checkKeyId(value: unknown, what: string): string {
  if (isKeyId(value)) return value;
  const length = typeof value === 'string' ? `${value.length} characters` : typeof value;
  throw new MaasError(
    'MAAS_ERR_KEY_INVALID',
    `Expected ${what} to be a key id (1 to 128 of A-Z a-z 0-9 . _ : / -, a letter or digit first, no "..") but received ${length} that are not one`,
  );
}

/** Key bytes as a KeyObject; the bytes given are wiped. */
function secretKey(bytes: Buffer, what: string): KeyObject {
  try {
    if (bytes.length !== MODEL_KEY_BYTES)
      throw new MaasError(
        'MAAS_ERR_KEY_INVALID',
        `Expected ${what} to be ${MODEL_KEY_BYTES} bytes but received ${bytes.length}`,
      );
    return createSecretKey(bytes);
  } finally {
    bytes.fill(0);
  }
}

/** A key written as 64 hex digits or as base64 (standard or URL-safe, padding optional) of 32 bytes. */
export function parseModelKey(text: string, what: string): KeyObject {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return secretKey(Buffer.from(t, 'hex'), what);
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) return secretKey(Buffer.from(t, 'base64'), what);
  throw new MaasError(
    'MAAS_ERR_KEY_INVALID',
    `Expected ${what} to be a ${MODEL_KEY_BYTES}-byte key written as 64 hex digits or base64 but received ${t.length} characters that are neither`,
  );
}

/** A key given in code: a KeyObject of 32 bytes, the 32 bytes, or their hex or base64 text. */
export function asModelKey(value: KeyObject | Uint8Array | string, what: string): KeyObject {
  if (typeof value === 'string') return parseModelKey(value, what);
  if (value instanceof Uint8Array) return secretKey(Buffer.from(value), what);
  return checkModelKey(value, what);
}

/** Refuses a KeyObject that is not a 32-byte secret key. */
export function checkModelKey(key: unknown, what: string): KeyObject {
  const k = key as Partial<KeyObject> | null;
  if (!k || typeof k !== 'object' || k.type !== 'secret' || k.symmetricKeySize !== MODEL_KEY_BYTES)
    throw new MaasError(
      'MAAS_ERR_KEY_INVALID',
      `Expected ${what} to be a ${MODEL_KEY_BYTES}-byte secret key but received ${k?.type === 'secret' ? `${k.symmetricKeySize} bytes` : 'something else'}`,
    );
  return key as KeyObject;
}

/** A new random model key, as base64 (what `maas keygen` writes). */
export function generateModelKey(): string {
  const bytes = randomBytes(MODEL_KEY_BYTES);
  try {
    return bytes.toString('base64');
  } finally {
    bytes.fill(0);
  }
}

function keyFileError(path: string, why: string, cause?: unknown): MaasError {
  return new MaasError('MAAS_ERR_KEY_FILE', `The model key file ${path} ${why}`, { cause });
}

/**
 * Only its owner (this process's user, or root) may write a key file and no other user may read
 * it: group read is allowed (Kubernetes gives a secret to a pod's fsGroup), nothing for others.
 */
function checkKeyFileAccess(stats: Stats, path: string): void {
  if (process.platform === 'win32') return; // no POSIX modes there
  const mode = (stats.mode & 0o777).toString(8).padStart(3, '0');
  if ((stats.mode & 0o027) !== 0)
    throw keyFileError(path, `has mode ${mode}: others may read it or its group may change it; chmod 600 (or 640) it`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid && stats.uid !== 0)
    throw keyFileError(path, `belongs to uid ${stats.uid}, not to this process's user (${uid}) or root`);
}

/** Lines of "<key id> <key>" or a key alone (key id "default"); blank lines and # comments skipped. */
export function parseKeyFile(text: string, path: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  const lineOf = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const words = line.split(/\s+/);
    const where = `line ${i + 1} of ${path}`;
    if (words.length > 2)
      throw keyFileError(
        path,
        `line ${i + 1}: expected "<key id> <key>" or a key alone but it holds ${words.length} words`,
      );
    const [id, key] = words.length === 2 ? [words[0]!, words[1]!] : [DEFAULT_KEY_ID, words[0]!];
    checkKeyId(id, `the key id on ${where}`);
    if (lineOf.has(id)) throw keyFileError(path, `line ${i + 1}: its key id is the one on line ${lineOf.get(id)}`);
    keys.set(id, parseModelKey(key, `the key on ${where}`));
    lineOf.set(id, i + 1);
  });
  if (keys.size === 0) throw keyFileError(path, 'holds no key');
  return keys;
}

/**
 * Reads a key file. Unlike a model file it may be a symbolic link (Kubernetes mounts secrets
 * through links); what is checked and read is the file the descriptor opened.
 */
export async function readKeyFile(path: string): Promise<Map<string, KeyObject>> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw keyFileError(path, `cannot be opened (${(e as { code?: string }).code ?? 'error'})`, e);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw keyFileError(path, 'is not a regular file');
    if (stats.size > MAX_KEY_FILE_BYTES)
      throw keyFileError(path, `holds ${stats.size} bytes; a key file holds at most ${MAX_KEY_FILE_BYTES}`);
    checkKeyFileAccess(stats, path);
    const bytes = Buffer.alloc(stats.size);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    try {
      return parseKeyFile(bytes.toString('utf8', 0, bytesRead), path);
    } finally {
      bytes.fill(0);
    }
  } finally {
    await handle.close();
  }
}

/** Why a key command failed, in words (never its output: stdout would be the key). */
function commandFailure(error: ExecFileException, stderr: Buffer, timeoutMs: number): string {
  if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER')
    return `printed more than ${MAX_KEY_COMMAND_OUTPUT} bytes; a key command prints one key`;
  if (error.killed) return `did not answer within ${timeoutMs} ms and was stopped`;
  if (typeof error.code === 'string') return `could not be started (${error.code})`;
  const last =
    stderr
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .pop() ?? '';
  const said = last === '' ? '' : `: ${last.length > MAX_STDERR_QUOTE ? `${last.slice(0, MAX_STDERR_QUOTE)}…` : last}`;
  return error.signal ? `was ended by ${error.signal}${said}` : `exited with code ${String(error.code)}${said}`;
}

/**
 * Runs the key command for `keyId`: argv[0] with the rest as arguments, `{keyId}` replaced in
 * each, without a shell, with MAAS_MODEL_KEY_ID set (and MAAS_MODEL_KEY removed) in its
 * environment. Its standard output, trimmed, is the key.
 */
function runKeyCommand(argv: readonly string[], keyId: string, timeoutMs: number): Promise<KeyObject> {
  const [file, ...args] = argv.map((a) => a.replaceAll('{keyId}', keyId));
  const env: NodeJS.ProcessEnv = { ...process.env, [MODEL_KEY_ID_ENV]: keyId };
  delete env[MODEL_KEY_ENV];
  const failed = (why: string, cause?: unknown) =>
    new MaasError('MAAS_ERR_KEY_COMMAND', `The model key command ${file} for key id '${keyId}' ${why}`, { cause });
  return new Promise((resolve, reject) => {
    execFile(
      file!,
      args,
      {
        encoding: 'buffer',
        env,
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_KEY_COMMAND_OUTPUT,
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        try {
          if (error) return reject(failed(commandFailure(error, stderr, timeoutMs), error));
          resolve(parseModelKey(stdout.toString('utf8'), `the output of the key command for key id '${keyId}'`));
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        } finally {
          stdout.fill(0);
        }
      },
    );
  });
}

/** ModelKeyring's sources, searched in this order; the first that holds a key id gives its key. */
export interface ModelKeyringOptions {
  /** Keys given in code, by key id: KeyObjects, 32 bytes, or their hex or base64 text. */
  keys?: Readonly<Record<string, KeyObject | Uint8Array | string>>;
  /**
   * Where MAAS_MODEL_KEY (and MAAS_MODEL_KEY_ID, default "default") are read, once, when the
   * keyring is made (default process.env; null: not at all).
   */
  environment?: Readonly<Record<string, string | undefined>> | null;
  /**
   * A key file: lines of "<key id> <key>" (or a key alone: key id "default"), # comments. Read at
   * each lookup of a key id not in the cache, so a key added for a rotation is found without a
   * restart. Refused when other users may read it or its group may write it.
   */
  keyFile?: string;
  /**
   * A KMS-style hook, as an argument vector (no shell): `{keyId}` in an argument is replaced by
   * the key id, which is also in the command's environment as MAAS_MODEL_KEY_ID. It prints the
   * key (hex or base64) on stdout and exits 0.
   */
  keyCommand?: readonly string[];
  /** The key command is killed after this long (default 10 s). */
  keyCommandTimeoutMs?: number;
  /** How long a key once found is kept in memory (default 5 min; 0: look up each time). */
  cacheMs?: number;
}

/**
 * The keys of encrypted model files, found by key id in the sources ModelKeyringOptions lists.
 * A key found is cached for `cacheMs`, and concurrent lookups of one key id share one search,
 * so a version that reloads does not call the KMS for each file.
 */
export class ModelKeyring implements ModelKeys {
  private readonly given = new Map<string, KeyObject>();
  private readonly keyFile: string | undefined;
  private readonly keyCommand: readonly string[] | undefined;
  private readonly keyCommandTimeoutMs: number;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, { key: KeyObject; until: number }>();
  private readonly searches = new Map<string, Promise<KeyObject>>();

  constructor(options: ModelKeyringOptions = {}) {
    for (const [id, key] of Object.entries(options.keys ?? {}))
      this.given.set(checkKeyId(id, 'a key id of ModelKeyring({ keys })'), asModelKey(key, `the key '${id}'`));
    const env = options.environment === undefined ? process.env : options.environment;
    const envKey = env?.[MODEL_KEY_ENV];
    if (envKey !== undefined && envKey !== '') {
      const id = checkKeyId(env?.[MODEL_KEY_ID_ENV] || DEFAULT_KEY_ID, MODEL_KEY_ID_ENV);
      if (!this.given.has(id)) this.given.set(id, parseModelKey(envKey, MODEL_KEY_ENV));
    }
    this.keyFile = options.keyFile;
    if (options.keyCommand !== undefined) {
      const argv = options.keyCommand;
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string' && !a.includes('\0')))
        throw new MaasError(
          'MAAS_ERR_ARG_TYPE',
          'Expected keyCommand to be a non-empty array of strings (the program, then its arguments)',
        );
      this.keyCommand = [...(argv as string[])];
    }
    this.keyCommandTimeoutMs = positive(
      options.keyCommandTimeoutMs,
      DEFAULT_KEY_COMMAND_TIMEOUT_MS,
      'keyCommandTimeoutMs',
    );
    this.cacheMs = positive(options.cacheMs, DEFAULT_KEY_CACHE_MS, 'cacheMs', true);
  }

  /** The key `keyId` names (see ModelKeys.key). */
  async key(keyId: string): Promise<KeyObject> {
    checkKeyId(keyId, 'the key id');
    const cached = this.cache.get(keyId);
    if (cached && cached.until > Date.now()) return cached.key;
    let search = this.searches.get(keyId);
    if (!search) {
      search = this.search(keyId).finally(() => this.searches.delete(keyId));
      this.searches.set(keyId, search);
    }
    const key = await search;
    if (this.cacheMs > 0) this.cache.set(keyId, { key, until: Date.now() + this.cacheMs });
    return key;
  }

  /** Reads the key file, if there is one, so a misconfigured keyring fails at start rather than at a load. */
  async check(): Promise<void> {
    if (this.keyFile !== undefined) await readKeyFile(this.keyFile);
  }

  /**
   * The key id to encrypt with when none is named: the one key the keys given, the environment
   * and the key file hold together. A key command cannot list its keys: name the key id then.
   */
  async defaultKeyId(): Promise<string> {
    const ids = new Set(this.given.keys());
    if (this.keyFile !== undefined) for (const id of (await readKeyFile(this.keyFile)).keys()) ids.add(id);
    if (ids.size === 1) return [...ids][0]!;
    throw new MaasError(
      'MAAS_ERR_MODEL_KEY_UNKNOWN',
      ids.size === 0
        ? `No key to encrypt with: name a key id for ${this.sources().join(', ') || 'a key source'}`
        : `The keys hold ${ids.size} key ids (${[...ids].sort().join(', ')}): name the one to encrypt with`,
    );
  }

  /** The configured sources, in words, for messages. */
  sources(): string[] {
    const sources: string[] = [];
    if (this.given.size > 0) sources.push(`the keys given (${[...this.given.keys()].sort().join(', ')})`);
    if (this.keyFile !== undefined) sources.push(`the key file ${this.keyFile}`);
    if (this.keyCommand !== undefined) sources.push(`the key command ${this.keyCommand[0]}`);
    return sources;
  }

  private async search(keyId: string): Promise<KeyObject> {
    const given = this.given.get(keyId);
    if (given) return given;
    if (this.keyFile !== undefined) {
      const fromFile = (await readKeyFile(this.keyFile)).get(keyId);
      if (fromFile) return fromFile;
    }
    if (this.keyCommand !== undefined) return runKeyCommand(this.keyCommand, keyId, this.keyCommandTimeoutMs);
    const searched = this.sources();
    throw new MaasError(
      'MAAS_ERR_MODEL_KEY_UNKNOWN',
      `No model key has the key id '${keyId}' (searched ${searched.length > 0 ? searched.join(', ') : `nothing: set ${MODEL_KEY_ENV}, or give a key file or a key command`})`,
    );
  }
}

function positive(value: number | undefined, fallback: number, name: string, zeroAllowed = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0))
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `Expected ${name} to be a ${zeroAllowed ? 'non-negative' : 'positive'} number of milliseconds but received ${value}`,
    );
  return value;
}

let environmentKeys: ModelKeyring | null = null;

/**
 * The keys a load uses when none are given: MAAS_MODEL_KEY from this process's environment,
 * read when a key is first asked for (a malformed one fails that load, coded, not an import).
 */
export function defaultModelKeys(): ModelKeys {
  return {
    key: async (keyId) => {
      environmentKeys ??= new ModelKeyring();
      return environmentKeys.key(keyId);
    },
  };
}
