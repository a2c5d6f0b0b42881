/**
 * The token file on disk: read as untrusted input, re-read when it changes (a bad edit keeps
 * the previous tokens in force and is reported), and written only with owner-only permissions,
 * atomically, by `maas token`.
 */
import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MaasError, messageOf } from '../../core/errors.js';
import { exists, readRegularFile } from '../../io/files.js';
import { MAX_TOKEN_FILE_BYTES, TokenVerifier, parseTokenFile, type TokenFile, type TokenRecord } from './tokens.js';

/** Reads and checks a token file. */
export async function readTokenFile(path: string): Promise<TokenFile> {
  let text: string;
  try {
    text = (await readRegularFile(path, MAX_TOKEN_FILE_BYTES, 'the token file')).toString('utf8');
  } catch (e) {
    throw new MaasError('MAAS_ERR_TOKEN_FILE', `Cannot read the token file: ${messageOf(e)}`, { cause: e });
  }
  return parseTokenFile(text);
}

/** Writes a token file atomically (a temporary file renamed over it), readable by its owner only. */
export async function writeTokenFile(path: string, file: TokenFile): Promise<void> {
  const temporary = join(dirname(path), `.${randomBytes(6).toString('hex')}.tokens.tmp`);
  try {
    await writeFile(temporary, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw new MaasError('MAAS_ERR_TOKEN_FILE', `Cannot write the token file ${path}: ${messageOf(e)}`, { cause: e });
  }
}

/** Adds a record to the token file at `path` (created when absent). */
export async function addTokenRecord(path: string, record: TokenRecord): Promise<void> {
  const file: TokenFile = (await exists(path))
    ? await readTokenFile(path)
    : { version: 1, tokens: [], certificates: [] };
  file.tokens.push(record);
  await writeTokenFile(path, file);
}

/** Marks token `id` revoked; false when the file has no such token. */
export async function revokeTokenRecord(path: string, id: string): Promise<boolean> {
  const file = await readTokenFile(path);
  const record = file.tokens.find((t) => t.id === id);
  if (!record) return false;
  record.revoked = true;
  await writeTokenFile(path, file);
  return true;
}

/**
 * The tokens a server checks against, kept current: the file is polled (every `intervalMs`) and
 * re-read when its size or modification time changes. A file that no longer parses leaves the
 * previous tokens in force; `onReload` hears of every reload and failure.
 */
export class TokenStore {
  private constructor(
    private readonly path: string,
    private current: TokenVerifier,
  ) {}

  static async open(
    path: string,
    options: { intervalMs?: number; onReload?: (error: MaasError | null) => void } = {},
  ): Promise<TokenStore> {
    const store = new TokenStore(path, new TokenVerifier(await readTokenFile(path)));
    const onReload = options.onReload ?? (() => {});
    const listener = (now: Stats, before: Stats) => {
      if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
      readTokenFile(path).then(
        (file) => {
          store.current = new TokenVerifier(file);
          onReload(null);
        },
        (error: unknown) => onReload(error as MaasError),
      );
    };
    watchFile(path, { interval: options.intervalMs ?? 1000, persistent: false }, listener);
    store.stopWatching = () => unwatchFile(path, listener);
    return store;
  }

  /** The verifier for the tokens in force now. */
  get verifier(): TokenVerifier {
    return this.current;
  }

  /** Stops following the file. */
  stopWatching: () => void = () => {};

  toString(): string {
    return `TokenStore(${this.path})`;
  }
}
