/**
 * `maas encrypt IN OUT`, `maas decrypt IN DIR` and `maas keygen`: models at rest from the command
 * line. Keys come from MAAS_MODEL_KEY (+ MAAS_MODEL_KEY_ID), a key file or a key command, the
 * same sources `maas serve` reads; no command prints a key except keygen, whose job it is.
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { MaasError } from '../core/errors.js';
import { decryptModel, encryptModel } from '../io/encryption.js';
import { DEFAULT_KEY_ID, ModelKeyring, checkKeyId, generateModelKey, readKeyFile } from '../io/model-keys.js';

/** The key sources a command takes: its flags, and the environment. */
export interface KeySourceOptions {
  /** A key file of "<key id> <key>" lines. */
  keyFile?: string;
  /** A key command, its words separated by spaces (no shell, no quoting); {keyId} is replaced. */
  keyCommand?: string;
}

/** The command's words: split on whitespace, as no shell would run it anyway. */
export function commandWords(command: string): string[] {
  const words = command
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  if (words.length === 0)
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      'Expected a key command (a program and its arguments) but received nothing',
    );
  return words;
}

/** A keyring over the environment and the key file and command the flags name. */
export function keyringFrom(options: KeySourceOptions): ModelKeyring {
  return new ModelKeyring({
    ...(options.keyFile !== undefined ? { keyFile: options.keyFile } : {}),
    ...(options.keyCommand !== undefined ? { keyCommand: commandWords(options.keyCommand) } : {}),
  });
}

/** The encrypt command's options. */
export interface EncryptCommandOptions extends KeySourceOptions {
  keyId?: string;
  print: (line: string) => void;
}

/** Encrypts IN (a model.json or its directory, an .onnx, an .h5) into OUT (*.enc). */
export async function runEncrypt(input: string, output: string, options: EncryptCommandOptions): Promise<void> {
  const result = await encryptModel(input, output, {
    keys: keyringFrom(options),
    ...(options.keyId !== undefined ? { keyId: options.keyId } : {}),
  });
  options.print(`encrypted ${input} (${result.files.join(', ')}) with key id '${result.keyId}': ${result.path}`);
}

/** The decrypt command's options. */
export interface DecryptCommandOptions extends KeySourceOptions {
  print: (line: string) => void;
}

/** Decrypts IN (*.enc) into the directory DIR. */
export async function runDecrypt(input: string, outputDir: string, options: DecryptCommandOptions): Promise<void> {
  const result = await decryptModel(input, outputDir, { keys: keyringFrom(options) });
  options.print(`decrypted ${input} (key id '${result.keyId}') into ${outputDir}: ${result.files.join(', ')}`);
  options.print('  these files hold the plaintext weights: delete them when you are done');
}

/** The keygen command's options. */
export interface KeygenCommandOptions {
  keyId?: string;
  /** A key file to add the key to (made 0600 if missing); without it the line is printed. */
  out?: string;
  print: (line: string) => void;
}

/**
 * Makes a new random key and writes it as a key file line "<key id> <key>": printed, or added
 * to a key file (made 0600, or checked as a key file is and refused if the key id is taken).
 */
export async function runKeygen(options: KeygenCommandOptions): Promise<void> {
  const keyId = checkKeyId(options.keyId ?? DEFAULT_KEY_ID, '--key-id');
  const line = `${keyId} ${generateModelKey()}\n`;
  if (options.out === undefined) {
    options.print(line.trimEnd());
    return;
  }
  try {
    await writeFile(options.out, line, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
    if ((await readKeyFile(options.out)).has(keyId))
      throw new MaasError(
        'MAAS_ERR_KEY_FILE',
        `The model key file ${options.out} has a key with the key id '${keyId}' already`,
      );
    const endsLine = (await readFile(options.out)).subarray(-1).toString() === '\n';
    await appendFile(options.out, endsLine ? line : `\n${line}`);
  }
  options.print(`added a new key with key id '${keyId}' to ${options.out}`);
}
