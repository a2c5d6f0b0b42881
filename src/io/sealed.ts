/**
 * Encrypted model files: a model file of any format maas reads (a tfjs model.json with its
 * weight files, an .onnx, a Keras .h5) encrypted whole, with AES-256-GCM, into one file named
 * after it plus ".enc" (model.json.enc, model.onnx.enc, model.h5.enc). It is decrypted in memory
 * only: the plaintext reaches the parsers as bytes, never a file.
 *
 * Layout (integers little-endian):
 *
 *   offset   bytes  field
 *   0        8      magic: 0x89 "MAASENC"
 *   8        1      format version: 1
 *   9        1      algorithm: 1 (HKDF-SHA256, then AES-256-GCM with a 16-byte tag)
 *   10       1      key id length K: 1 to 128
 *   11       K      key id: A-Z a-z 0-9 . _ : / -, a letter or digit first, no ".." (model-keys.ts)
 *   11+K     32     salt: random, one per file
 *   43+K     32     key check
 *   75+K     P      the payload, encrypted; P is a multiple of 8
 *   75+K+P   16     the GCM tag
 *
 * The header (bytes 0 to 75+K) is the GCM's additional authenticated data: a change to any of
 * its bytes fails authentication. HKDF-SHA256 over the key that the key id names, with the
 * file's salt and the info "maas sealed model v1", gives 76 bytes: the file's AES-256 key (32),
 * its 96-bit IV (12) and the key check (32). So every file has a key and an IV of its own (an
 * IV is never reused under a key, however many files one key encrypts), and the key check tells
 * a wrong key from a damaged file before anything is decrypted; it also binds the file to one
 * key, which AES-GCM alone does not.
 *
 * The payload, decrypted, is a table and then the files:
 *
 *   u32 file count N (1 to 4096)
 *   N × { u16 name length (1 to 255), the name in UTF-8, u32 size }
 *   zero bytes up to a multiple of 8
 *   N × { the file's bytes, zero bytes up to a multiple of 8 }
 *
 * File 0 is the model file (its name's extension says its format); a tfjs model's weight files
 * follow, named by their paths relative to model.json. The names are encrypted with the
 * contents: only the total size shows. Every file starts 8-byte aligned, so float32 weights are
 * read where they lie. Nothing decrypted is parsed before the tag is verified.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MaasError } from '../core/errors.js';
import { MAX_MODEL_FILE_BYTES, openRegularFile, readAt, readRegularFile, syncDirectory } from './files.js';
import { formatOfFileName, type ModelFileFormat } from './formats.js';
import { checkKeyId, checkModelKey, defaultModelKeys, isKeyId, type ModelKeys } from './model-keys.js';

/** The name an encrypted model file ends with. */
export const SEALED_SUFFIX = '.enc';

const MAGIC = Uint8Array.of(0x89, 0x4d, 0x41, 0x41, 0x53, 0x45, 0x4e, 0x43); // 0x89 "MAASENC"
const FORMAT_VERSION = 1;
const ALGORITHM_HKDF_AES_256_GCM = 1;
const MAX_KEY_ID_BYTES = 128;
const SALT_BYTES = 32;
const KEY_CHECK_BYTES = 32;
const AES_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_INFO = 'maas sealed model v1';
/** The header before the key id: magic, version, algorithm, key id length. */
const FIXED_HEADER_BYTES = MAGIC.length + 3;
const headerBytes = (keyIdBytes: number) => FIXED_HEADER_BYTES + keyIdBytes + SALT_BYTES + KEY_CHECK_BYTES;
const MAX_HEADER_BYTES = headerBytes(MAX_KEY_ID_BYTES);

const MAX_FILES = 4096;
const MAX_NAME_BYTES = 255;
const ALIGN = 8;
const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
/** The smallest payload: a table of one file with a one-byte name. */
const MIN_PAYLOAD_BYTES = align(4 + 2 + 1 + 4);
/** The largest payload overhead beside one file's bytes: its table and its padding. */
const SINGLE_FILE_OVERHEAD = align(4 + 2 + MAX_NAME_BYTES + 4) + ALIGN - 1;
/** Ciphertext is read, decrypted and written in pieces of this size. */
const CHUNK_BYTES = 4 * 2 ** 20;

/** One file of an encrypted model, decrypted (or to be encrypted). */
export interface SealedFile {
  /** Its path relative to the model file's directory ("model.json", "weights.1a2b….bin"). */
  name: string;
  bytes: Uint8Array;
}

/** An encrypted model file, decrypted: the key id it names and its files, the model file first. */
export interface SealedModel {
  keyId: string;
  files: SealedFile[];
}

/** The keys a load decrypts with (an option of every loader; default: MAAS_MODEL_KEY from the environment). */
export interface DecryptionOptions {
  /** Where the keys of encrypted model files (`*.enc`) come from: a ModelKeyring, or your own ModelKeys. */
  keys?: ModelKeys;
}

/** Whether a path names an encrypted model file (by its ".enc" ending). */
export function isSealedPath(path: string): boolean {
  return path.endsWith(SEALED_SUFFIX);
}

/** The format an encrypted file's name promises ("model.onnx.enc": onnx), or null when it names none. */
export function sealedFormatOf(path: string): ModelFileFormat | null {
  return formatOfFileName(path.slice(0, -SEALED_SUFFIX.length));
}

/** Why a file name cannot be stored in the table, or null when it can. */
function nameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes < 1 || bytes > MAX_NAME_BYTES) return `it is ${bytes} bytes of UTF-8; a name is 1 to ${MAX_NAME_BYTES}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(name)) return 'it holds a control character or a backslash';
  if (name.split('/').some((part) => part === '' || part === '.' || part === '..'))
    return 'it is not a relative path of named parts (no empty, . or .. part)';
  return null;
}

/** The file's own AES key and IV, and the key check, from the key the key id names and the salt. */
interface FileKey {
  aesKey: Buffer;
  iv: Buffer;
  check: Buffer;
  /** Overwrites the derived bytes once the cipher holds its copy. */
  wipe(): void;
}

function deriveFileKey(key: KeyObject, salt: Uint8Array): FileKey {
  const okm = Buffer.from(hkdfSync('sha256', key, salt, HKDF_INFO, AES_KEY_BYTES + IV_BYTES + KEY_CHECK_BYTES));
  return {
    aesKey: okm.subarray(0, AES_KEY_BYTES),
    iv: okm.subarray(AES_KEY_BYTES, AES_KEY_BYTES + IV_BYTES),
    check: okm.subarray(AES_KEY_BYTES + IV_BYTES),
    wipe: () => okm.fill(0),
  };
}

function encodeHeader(keyId: string, salt: Uint8Array, check: Uint8Array): Buffer {
  const id = Buffer.from(keyId, 'ascii');
  const header = Buffer.alloc(headerBytes(id.length));
  header.set(MAGIC, 0);
  header[MAGIC.length] = FORMAT_VERSION;
  header[MAGIC.length + 1] = ALGORITHM_HKDF_AES_256_GCM;
  header[MAGIC.length + 2] = id.length;
  id.copy(header, FIXED_HEADER_BYTES);
  header.set(salt, FIXED_HEADER_BYTES + id.length);
  header.set(check, FIXED_HEADER_BYTES + id.length + SALT_BYTES);
  return header;
}

/** A header as read, each field checked against the file's size before anything else is read. */
interface SealedHeader {
  /** The header's bytes, the GCM's additional authenticated data. */
  bytes: Buffer;
  keyId: string;
  salt: Buffer;
  check: Buffer;
  /** The encrypted payload's length. */
  payloadBytes: number;
}

function notSealed(path: string, why: string): MaasError {
  return new MaasError(
    'MAAS_ERR_MODEL_FORMAT',
    `Expected an encrypted maas model file at ${path} (one that maas encrypt wrote) but ${why}`,
  );
}

function decodeHeader(head: Buffer, fileSize: number, path: string): SealedHeader {
  if (head.length < FIXED_HEADER_BYTES || !MAGIC.every((b, i) => head[i] === b))
    throw notSealed(path, `it does not start with 0x89 "MAASENC"`);
  const version = head[MAGIC.length]!;
  if (version !== FORMAT_VERSION)
    throw notSealed(path, `it is format version ${version}; this maas reads version ${FORMAT_VERSION}`);
  const algorithm = head[MAGIC.length + 1]!;
  if (algorithm !== ALGORITHM_HKDF_AES_256_GCM)
    throw notSealed(
      path,
      `it names algorithm ${algorithm}; this maas knows ${ALGORITHM_HKDF_AES_256_GCM} (AES-256-GCM)`,
    );
  const idBytes = head[MAGIC.length + 2]!;
  if (idBytes < 1 || idBytes > MAX_KEY_ID_BYTES)
    throw notSealed(path, `its key id is ${idBytes} bytes long; a key id is 1 to ${MAX_KEY_ID_BYTES}`);
  const length = headerBytes(idBytes);
  const payloadBytes = fileSize - length - TAG_BYTES;
  if (payloadBytes < MIN_PAYLOAD_BYTES || payloadBytes % ALIGN !== 0)
    throw new MaasError(
      'MAAS_ERR_MODEL_DECRYPT',
      `The encrypted model file ${path} is ${fileSize} bytes, a length no encrypted model file has: it was truncated or extended`,
    );
  const keyId = head.toString('latin1', FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + idBytes);
  if (!isKeyId(keyId)) throw notSealed(path, 'its key id holds characters a key id does not');
  const salt = head.subarray(FIXED_HEADER_BYTES + idBytes, FIXED_HEADER_BYTES + idBytes + SALT_BYTES);
  return {
    bytes: head.subarray(0, length),
    keyId,
    salt,
    check: head.subarray(length - KEY_CHECK_BYTES, length),
    payloadBytes,
  };
}

/** The table of a payload that passed authentication: every file's name and bytes, bounds checked. */
function decodePayload(payload: Buffer, path: string): SealedFile[] {
  const bad = (why: string) =>
    new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The encrypted model file ${path} decrypted, but its contents are malformed: ${why}`,
    );
  const count = payload.readUInt32LE(0);
  if (count < 1 || count > MAX_FILES) throw bad(`it lists ${count} files; it holds 1 to ${MAX_FILES}`);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const entries: { name: string; size: number }[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 2 > payload.length) throw bad('its table runs past its end');
    const nameBytes = payload.readUInt16LE(at);
    if (at + 2 + nameBytes + 4 > payload.length) throw bad('its table runs past its end');
    let name: string;
    try {
      name = utf8.decode(payload.subarray(at + 2, at + 2 + nameBytes));
    } catch {
      throw bad(`the name of file ${i} is not UTF-8`);
    }
    const problem = nameProblem(name);
    if (problem) throw bad(`the name of file ${i}: ${problem}`);
    if (entries.some((e) => e.name === name)) throw bad(`it lists ${name} twice`);
    entries.push({ name, size: payload.readUInt32LE(at + 2 + nameBytes) });
    at += 2 + nameBytes + 4;
  }
  let offset = align(at);
  const needed = entries.reduce((n, e) => n + align(e.size), offset);
  if (needed !== payload.length) throw bad(`its table accounts for ${needed} bytes but it holds ${payload.length}`);
  return entries.map(({ name, size }) => {
    const bytes = payload.subarray(offset, offset + size);
    offset += align(size);
    return { name, bytes };
  });
}

/**
 * Decrypts the payload into memory of its own, piece by piece (the file's bytes are never all
 * held twice), and verifies the tag. On a failure the plaintext is overwritten before it goes.
 */
async function decryptPayload(handle: FileHandle, header: SealedHeader, key: KeyObject, path: string): Promise<Buffer> {
  const fileKey = deriveFileKey(key, header.salt);
  try {
    if (!timingSafeEqual(fileKey.check, header.check))
      throw new MaasError(
        'MAAS_ERR_MODEL_DECRYPT',
        `The encrypted model file ${path} was encrypted with another key than the one key id '${header.keyId}' names here (or its header was altered)`,
      );
    const decipher = createDecipheriv('aes-256-gcm', fileKey.aesKey, fileKey.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(header.bytes);
    const tag = Buffer.alloc(TAG_BYTES);
    await readAt(handle, tag, header.bytes.length + header.payloadBytes, path, 'the encrypted model file');
    decipher.setAuthTag(tag);
    // A buffer of its own (never a slice of Node's shared pool), so a reader may move it to another thread.
    const plain = Buffer.allocUnsafeSlow(header.payloadBytes);
    try {
      const piece = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, header.payloadBytes));
      for (let done = 0; done < header.payloadBytes;) {
        const n = Math.min(piece.length, header.payloadBytes - done);
        await readAt(handle, piece.subarray(0, n), header.bytes.length + done, path, 'the encrypted model file');
        const out = decipher.update(piece.subarray(0, n));
        out.copy(plain, done);
        out.fill(0);
        done += n;
      }
      try {
        decipher.final();
      } catch (e) {
        throw new MaasError(
          'MAAS_ERR_MODEL_DECRYPT',
          `The encrypted model file ${path} failed authentication with key '${header.keyId}': it was damaged, truncated or tampered with after it was encrypted`,
          { cause: e },
        );
      }
      return plain;
    } catch (e) {
      plain.fill(0);
      throw e;
    }
  } finally {
    fileKey.wipe();
  }
}

/**
 * Opens an encrypted model file: its header is read and checked, the key its key id names is
 * asked of `keys`, and the payload is decrypted and authenticated in memory. The file must be a
 * regular file (files.ts) whose payload is at most `maxPayloadBytes`.
 */
export async function openSealedFile(
  path: string,
  keys: ModelKeys = defaultModelKeys(),
  maxPayloadBytes: number = MAX_MODEL_FILE_BYTES,
): Promise<SealedModel> {
  const { handle, size } = await openRegularFile(
    path,
    Math.min(MAX_MODEL_FILE_BYTES, maxPayloadBytes + MAX_HEADER_BYTES + TAG_BYTES),
    'an encrypted model file',
  );
  try {
    const head = Buffer.alloc(Math.min(size, MAX_HEADER_BYTES));
    await readAt(handle, head, 0, path, 'the encrypted model file');
    const header = decodeHeader(head, size, path);
    const key = checkModelKey(await keys.key(header.keyId), `the key of key id '${header.keyId}'`);
    const payload = await decryptPayload(handle, header, key, path);
    return { keyId: header.keyId, files: decodePayload(payload, path) };
  } finally {
    await handle.close();
  }
}

/**
 * The model file inside an encrypted file, checked to be of the format the encrypted file's name
 * promises ("model.onnx.enc" must hold an .onnx; a name that promises none takes what it holds).
 */
export function sealedModelFormat(sealed: SealedModel, path: string): ModelFileFormat {
  const inner = sealed.files[0]!.name;
  const format = formatOfFileName(inner);
  if (!format)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The encrypted model file ${path} holds ${inner}, not a model.json, .onnx or .h5 file`,
    );
  const promised = sealedFormatOf(path);
  if (promised && promised !== format)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The encrypted model file ${path} holds ${inner} (${format}), not the ${promised} file its name says`,
    );
  if (format !== 'tfjs-layers' && sealed.files.length !== 1)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The encrypted model file ${path} holds ${sealed.files.length} files; an encrypted ${format} file holds one`,
    );
  return format;
}

/** A model file's bytes, and whether the reader may move their buffer (to a parsing thread). */
export interface ModelBytes {
  bytes: Uint8Array;
  /** True when no one else holds views of the buffer. */
  movable: boolean;
}

/**
 * The bytes of a one-file model (.onnx, .h5): read as they are, or, from an encrypted file
 * (.enc), decrypted in memory. `what` names the file in errors ("an .onnx file").
 */
export async function readModelBytes(
  path: string,
  format: ModelFileFormat,
  maxBytes: number,
  what: string,
  options: DecryptionOptions = {},
): Promise<ModelBytes> {
  if (!isSealedPath(path)) return { bytes: await readRegularFile(path, maxBytes, what), movable: false };
  const sealed = await openSealedFile(path, options.keys, maxBytes + SINGLE_FILE_OVERHEAD);
  return { bytes: singleModelFile(sealed, path, format, maxBytes, what), movable: true };
}

/** The one file of a decrypted .onnx or .h5, checked to be of `format` and at most `maxBytes`. */
export function singleModelFile(
  sealed: SealedModel,
  path: string,
  format: ModelFileFormat,
  maxBytes: number,
  what: string,
): Uint8Array {
  const actual = sealedModelFormat(sealed, path);
  if (actual !== format)
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Expected ${what} in ${path} but it holds a ${actual} model`);
  const { bytes } = sealed.files[0]!;
  if (bytes.length > maxBytes)
    throw new MaasError(
      'MAAS_ERR_MODEL_FILE',
      `Expected ${what} of at most ${maxBytes} bytes in ${path} but it holds ${bytes.length}`,
    );
  return bytes;
}

/** The payload's table (see the header), padded. */
function encodeTable(files: readonly SealedFile[]): Buffer {
  const names = files.map((f) => Buffer.from(f.name, 'utf8'));
  const table = Buffer.alloc(align(4 + names.reduce((n, name) => n + 2 + name.length + 4, 0)));
  let at = table.writeUInt32LE(files.length, 0);
  files.forEach((f, i) => {
    at = table.writeUInt16LE(names[i]!.length, at);
    at += names[i]!.copy(table, at);
    at = table.writeUInt32LE(f.bytes.length, at);
  });
  return table;
}

/** Refuses what the table cannot hold: no files, too many, a bad or repeated name, too many bytes. */
function checkFilesToSeal(files: readonly SealedFile[], keyId: string): void {
  const bad = (why: string) => new MaasError('MAAS_ERR_ARG_RANGE', `Cannot encrypt the model: ${why}`);
  if (files.length < 1 || files.length > MAX_FILES)
    throw bad(`it has ${files.length} files; 1 to ${MAX_FILES} can be encrypted together`);
  const seen = new Set<string>();
  for (const f of files) {
    const problem = nameProblem(f.name);
    if (problem) throw bad(`the file name ${JSON.stringify(f.name.slice(0, 300))} cannot be stored: ${problem}`);
    if (seen.has(f.name)) throw bad(`it names ${f.name} twice`);
    seen.add(f.name);
  }
  const total =
    headerBytes(keyId.length) +
    encodeTable(files).length +
    files.reduce((n, f) => n + align(f.bytes.length), 0) +
    TAG_BYTES;
  if (total > MAX_MODEL_FILE_BYTES)
    throw bad(`it would be ${total} bytes encrypted; an encrypted model file holds at most ${MAX_MODEL_FILE_BYTES}`);
}

/** Encrypts `bytes` piece by piece and writes what comes out. */
async function writeEncrypted(
  handle: FileHandle,
  cipher: ReturnType<typeof createCipheriv>,
  bytes: Uint8Array,
): Promise<void> {
  for (let at = 0; at < bytes.length; at += CHUNK_BYTES)
    await handle.write(cipher.update(bytes.subarray(at, Math.min(at + CHUNK_BYTES, bytes.length))));
}

/**
 * Writes `files` (the model file first) encrypted with `key` under `keyId` to `path`, atomically:
 * into a new file beside it, synced, then renamed over it. A random salt gives the file its own
 * key and IV.
 */
export async function writeSealedFile(
  path: string,
  files: readonly SealedFile[],
  keyId: string,
  key: KeyObject,
): Promise<void> {
  checkKeyId(keyId, 'the key id to encrypt with');
  checkModelKey(key, `the key of key id '${keyId}'`);
  checkFilesToSeal(files, keyId);
  const salt = randomBytes(SALT_BYTES);
  const fileKey = deriveFileKey(key, salt);
  const header = encodeHeader(keyId, salt, fileKey.check);
  let cipher;
  try {
    cipher = createCipheriv('aes-256-gcm', fileKey.aesKey, fileKey.iv, { authTagLength: TAG_BYTES });
  } finally {
    fileKey.wipe();
  }
  cipher.setAAD(header);
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(temporary, 'wx', 0o644);
  try {
    await handle.write(header);
    await handle.write(cipher.update(encodeTable(files)));
    for (const f of files) {
      await writeEncrypted(handle, cipher, f.bytes);
      await handle.write(cipher.update(Buffer.alloc(align(f.bytes.length) - f.bytes.length)));
    }
    await handle.write(cipher.final());
    await handle.write(cipher.getAuthTag());
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (e) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw e;
  }
  await syncDirectory(dirname(path));
}
