/**
 * Reading model files as untrusted input: a file is read only when it is what it claims, a
 * regular file (not a symbolic link, FIFO, device or directory) no larger than a cap, checked on
 * the open descriptor so the check and the read see the same file. And the one step writers
 * share to make a rename durable.
 */
import { constants } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { MaasError, messageOf } from '../core/errors.js';

/** Whether something is at `path`, asked asynchronously so a serving event loop never blocks on it. */
export function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Largest single model file read (a weights shard or an .onnx); Node's Buffer holds at most this. */
export const MAX_MODEL_FILE_BYTES = 2 ** 32 - 1;

function kindOf(stats: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'a device';
}

/**
 * Opens `path` for reading if it is a regular file of at most `maxBytes`; `what` names it in
 * errors ("the weights file weights.bin"). Symbolic links are refused (O_NOFOLLOW), and a FIFO
 * is never waited on (O_NONBLOCK).
 */
export async function openRegularFile(
  path: string,
  maxBytes: number,
  what: string,
): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT')
      throw new MaasError('MAAS_ERR_MODEL_NOT_FOUND', `Expected ${what} at ${path} but nothing is there`, { cause: e });
    if (code === 'ELOOP')
      throw new MaasError(
        'MAAS_ERR_MODEL_FILE',
        `Expected ${what} at ${path} to be a regular file, not a symbolic link`,
        {
          cause: e,
        },
      );
    throw new MaasError('MAAS_ERR_MODEL_FILE', `Cannot open ${what} at ${path}: ${code ?? (e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile())
      throw new MaasError(
        'MAAS_ERR_MODEL_FILE',
        `Expected ${what} at ${path} to be a regular file, not ${kindOf(stats)}`,
      );
    if (stats.size > maxBytes)
      throw new MaasError(
        'MAAS_ERR_MODEL_FILE',
        `Expected ${what} of at most ${maxBytes} bytes at ${path} but it holds ${stats.size}`,
      );
    return { handle, size: stats.size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Reads a regular file of at most `maxBytes` whole (see openRegularFile). */
export async function readRegularFile(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const { handle, size } = await openRegularFile(path, maxBytes, what);
  return readOpened(handle, size, path, what);
}

/** Reads the `size` bytes of a file openRegularFile opened, then closes it. */
export async function readOpened(handle: FileHandle, size: number, path: string, what: string): Promise<Buffer> {
  try {
    const bytes = Buffer.allocUnsafe(size);
    await readAt(handle, bytes, 0, path, what);
    return bytes;
  } finally {
    await handle.close();
  }
}

/**
 * Fills `into` with the bytes of an open file from `position` on; a file that shrank while it
 * was read is refused.
 */
export async function readAt(
  handle: FileHandle,
  into: Uint8Array,
  position: number,
  path: string,
  what: string,
): Promise<void> {
  let at = 0;
  while (at < into.length) {
    const { bytesRead } = await handle.read(into, at, into.length - at, position + at);
    if (bytesRead === 0)
      throw new MaasError(
        'MAAS_ERR_MODEL_FILE',
        `${what} at ${path} changed while it was read (${position + at} of ${position + into.length} bytes)`,
      );
    at += bytesRead;
  }
}

/** Writes `data` to a new or truncated file at `path` and syncs it: the write half of a durable replace. */
export async function writeDurably(path: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes the renames in `dir` durable (fsync of the directory). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    await handle.close();
  }
}

/** The longest message a loader's error carries: a file's contents never flood a log or a reply. */
export const MAX_LOADER_MESSAGE_CHARS = 1000;

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/**
 * What a loader throws for a file: a MaasError as it is (its message cut to
 * MAX_LOADER_MESSAGE_CHARS: names read from a file can be long), anything else (a parser's
 * SyntaxError, a WebAssembly trap, an I/O error) as MAAS_ERR_MODEL_FORMAT naming the file.
 */
export function loaderError(error: unknown, path: string): MaasError {
  if (error instanceof MaasError)
    return error.message.length <= MAX_LOADER_MESSAGE_CHARS
      ? error
      : new MaasError(error.code, cut(error.message, MAX_LOADER_MESSAGE_CHARS), { cause: error });
  return new MaasError('MAAS_ERR_MODEL_FORMAT', `Cannot read the model file ${path}: ${cut(messageOf(error), 300)}`, {
    cause: error,
  });
}

/** Runs a loader, every error it throws coded by loaderError: the one boundary of a file's load. */
export async function asLoader<T>(path: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw loaderError(error, path);
  }
}

/**
 * The numbered subdirectories of a model directory (its versions, as the repository serves them),
 * ascending; rejects when the directory cannot be read.
 */
export async function versionNumbers(dir: string): Promise<number[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && /^\d+$/.test(e.name))
    .map((e) => Number(e.name))
    .sort((a, b) => a - b);
}
