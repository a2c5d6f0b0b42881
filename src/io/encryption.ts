/**
 * Models at rest, as functions: encryptModel puts a model's files (a model.json with the weights
 * files its manifest names, an .onnx, an .h5) into one encrypted file (sealed.ts), and
 * decryptModel writes them back out, for a user who asks for the plaintext. Loading an encrypted
 * model needs neither: every loader decrypts in memory.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MaasError } from '../core/errors.js';
import { manifestPaths, MAX_MODEL_JSON_BYTES } from './artifacts.js';
import { MAX_MODEL_FILE_BYTES, exists, readRegularFile } from './files.js';
import { formatOfFileName } from './formats.js';
import { ModelKeyring, checkKeyId, type ModelKeys } from './model-keys.js';
import {
  SEALED_SUFFIX,
  isSealedPath,
  openSealedFile,
  sealedFormatOf,
  sealedModelFormat,
  writeSealedFile,
  type DecryptionOptions,
  type SealedFile,
} from './sealed.js';

/** encryptModel()'s options. */
export interface EncryptOptions {
  /** Where the key comes from (default: MAAS_MODEL_KEY and MAAS_MODEL_KEY_ID from the environment). */
  keys?: ModelKeys;
  /** The key id to encrypt with; it is stored in the file (default: the one key a ModelKeyring holds). */
  keyId?: string;
}

/** What encryptModel wrote. */
export interface EncryptResult {
  /** The encrypted file. */
  path: string;
  /** The key id it names (its key encrypted it). */
  keyId: string;
  /** The files inside, the model file first (a tfjs model's weights files follow). */
  files: string[];
}

/** What decryptModel wrote. */
export interface DecryptResult {
  /** The key id the file named. */
  keyId: string;
  /** The files written, the model file first. */
  files: string[];
}

/** What a model directory may hold, in the order encryptModel looks for it. */
const DIRECTORY_MODEL_FILES = ['model.json', 'model.onnx', 'model.h5', 'model.keras.h5'];

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** The model file `input` names: itself, or the first model file of a directory. */
async function modelFileOf(input: string): Promise<string> {
  if (!(await isDirectory(input))) return input;
  for (const name of DIRECTORY_MODEL_FILES) if (await exists(join(input, name))) return join(input, name);
  throw new MaasError(
    'MAAS_ERR_MODEL_NOT_FOUND',
    `Expected a model file (${DIRECTORY_MODEL_FILES.join(', ')}) in ${input} but found none`,
  );
}

/** A model's files as they are on disk, read with the checks every model file read passes (files.ts). */
async function modelFiles(path: string): Promise<SealedFile[]> {
  const format = formatOfFileName(path);
  if (!format)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a model.json, .onnx or .h5 file to encrypt but received ${basename(path)}`,
    );
  const cap = format === 'tfjs-layers' ? MAX_MODEL_JSON_BYTES : MAX_MODEL_FILE_BYTES;
  const main: SealedFile = { name: basename(path), bytes: await readRegularFile(path, cap, 'the model file') };
  if (format !== 'tfjs-layers') return [main];
  const files = [main];
  for (const name of manifestPaths(main.bytes, path))
    files.push({
      name,
      bytes: await readRegularFile(join(dirname(path), name), MAX_MODEL_FILE_BYTES, `the weights file ${name}`),
    });
  return files;
}

/** The key id to encrypt with: the one given, or the one key a ModelKeyring holds. */
async function keyIdFor(keys: ModelKeys, keyId: string | undefined): Promise<string> {
  if (keyId !== undefined) return checkKeyId(keyId, 'the key id to encrypt with');
  if (keys instanceof ModelKeyring) return keys.defaultKeyId();
  throw new MaasError('MAAS_ERR_ARG_TYPE', 'Expected a keyId to encrypt with (the keys given cannot list theirs)');
}

/**
 * Encrypts a model (a model.json or its directory with the weights files it names, an .onnx, an
 * .h5) into one file, `output`, which must end with ".enc"; name it after the model file
 * (model.json.enc, model.onnx.enc, model.h5.enc) and a repository finds it. The files go in as
 * they are, byte for byte (their digests still verify), with a random salt that gives the file
 * its own key and IV. Written atomically: a new file, synced, renamed over `output`.
 */
export async function encryptModel(
  input: string,
  output: string,
  options: EncryptOptions = {},
): Promise<EncryptResult> {
  if (!isSealedPath(output))
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `Expected the encrypted file's name to end with ${SEALED_SUFFIX} (model.json${SEALED_SUFFIX}, model.onnx${SEALED_SUFFIX}, …) but received ${basename(output)}`,
    );
  const path = await modelFileOf(input);
  if (isSealedPath(path)) throw new MaasError('MAAS_ERR_ARG_RANGE', `${path} is encrypted already`);
  const files = await modelFiles(path);
  const format = formatOfFileName(path);
  const promised = sealedFormatOf(output);
  if (promised && promised !== format)
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `The name ${basename(output)} says a ${promised} model but ${basename(path)} is a ${format} model: name it ${basename(path)}${SEALED_SUFFIX}`,
    );
  const keys = options.keys ?? new ModelKeyring();
  const keyId = await keyIdFor(keys, options.keyId);
  await writeSealedFile(output, files, keyId, await keys.key(keyId));
  return { path: output, keyId, files: files.map((f) => f.name) };
}

/**
 * Decrypts an encrypted model file into `outputDir` (made if missing, 0700): its model file and
 * any weights files, each written 0600 and never over an existing file. This is the one place
 * maas writes plaintext weights, because the caller asked for them: loaders decrypt in memory.
 */
export async function decryptModel(
  input: string,
  outputDir: string,
  options: DecryptionOptions = {},
): Promise<DecryptResult> {
  if (!isSealedPath(input))
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `Expected an encrypted model file (*${SEALED_SUFFIX}) but received ${basename(input)}`,
    );
  const sealed = await openSealedFile(input, options.keys);
  const written: string[] = [];
  try {
    sealedModelFormat(sealed, input);
    await mkdir(outputDir, { recursive: true, mode: 0o700 });
    for (const file of sealed.files) {
      // Names were checked as the file was decrypted: relative, no empty, . or .. part.
      const target = join(outputDir, file.name);
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      try {
        await writeFile(target, file.bytes, { flag: 'wx', mode: 0o600 });
      } catch (e) {
        if ((e as { code?: string }).code === 'EEXIST')
          throw new MaasError('MAAS_ERR_ARG_RANGE', `${target} exists; decrypt writes no file over another`);
        await rm(target, { force: true }); // what a failed write left of its own file
        throw e;
      }
      written.push(target);
    }
  } catch (e) {
    await Promise.all(written.map((p) => rm(p, { force: true })));
    throw e;
  } finally {
    for (const file of sealed.files) file.bytes.fill(0);
  }
  return { keyId: sealed.keyId, files: written };
}
