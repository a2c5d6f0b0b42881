/**
 * Keras HDF5 import with h5wasm (HDF5 compiled to WebAssembly, installed from npm): whole-model
 * files (`model.save`: the model_config attribute and model_weights) and weights-only files
 * (`save_weights`) paired with the architecture JSON (`to_json`). Returns the topology, each
 * layer's weights by layer name, and the training_config when the file has one.
 */
import { MAX_MODEL_FILE_BYTES, openRegularFile, readRegularFile } from './files.js';
import { MAX_MODEL_JSON_BYTES } from './artifacts.js';
import fs from 'node:fs';
import type h5wasmModule from 'h5wasm/node';
import { MaasError, messageOf } from '../core/errors.js';

type H5Wasm = typeof h5wasmModule;

/** What a Keras file holds, in the shape loadModel consumes. */
export interface KerasModelData {
  topology: unknown;
  /** Weights by layer name, in the layer's weight_names order (kernel, bias, ...). */
  weights: Map<string, Float32Array[]>;
  trainingConfig: unknown;
  /** The root's keras_version attribute ('2.12.0', '3.3.3'), or null when the file has none. */
  kerasVersion: string | null;
}

interface H5Entity {
  attrs?: Record<string, { value: unknown }>;
  keys?(): string[];
  get?(path: string): H5Entity | null;
  value?: unknown;
  shape?: number[];
}

function asString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return String(v);
}

/** An attribute's string list: h5wasm gives an array (empty layers give an empty numeric array). */
function asStrings(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(asString);
  return typeof v === 'string' ? [v] : [];
}

/** The HDF5 format signature; a file holds it at offset 0, 512, 1024, 2048, … (a user block may precede it). */
const HDF5_SIGNATURE = Uint8Array.of(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a);

/**
 * Checks that `path` is a readable file with the HDF5 signature where the format allows it, before
 * the library opens it: a missing file is NOT_FOUND, anything else that is not HDF5 is FORMAT.
 */
async function checkHdf5File(path: string): Promise<void> {
  const { handle, size } = await openRegularFile(path, MAX_MODEL_FILE_BYTES, 'a Keras HDF5 file');
  try {
    const probe = new Uint8Array(HDF5_SIGNATURE.length);
    for (let offset = 0; offset + probe.length <= size; offset = offset === 0 ? 512 : offset * 2) {
      const { bytesRead } = await handle.read(probe, 0, probe.length, offset);
      if (bytesRead === probe.length && probe.every((b, i) => b === HDF5_SIGNATURE[i])) return;
    }
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a Keras HDF5 file at ${path} but received ${size === 0 ? 'an empty file' : `${size} bytes without the HDF5 signature (at offset 0, 512, 1024, …)`}`,
    );
  } finally {
    await handle.close();
  }
}

let library: Promise<H5Wasm> | null = null;

/** h5wasm, loaded on first use (importing maas does not instantiate the HDF5 WebAssembly). */
function h5(): Promise<H5Wasm> {
  library ??= import('h5wasm/node').then(async (m) => {
    await m.default.ready;
    return m.default;
  });
  return library;
}

/**
 * Runs a synchronous h5wasm call with the HDF5 library's diagnostics collected rather than
 * printed. HDF5 prints an error stack (HDF5-DIAG, dozens of lines) for every failed call and
 * h5wasm offers no switch; its Node build writes file descriptor 2 with fs.writeSync, so that
 * (and process.stderr.write) is redirected for the duration of the call, which cannot yield.
 */
function quietly<T>(fn: () => T): { value?: T; error?: unknown; diagnostics: string[] } {
  const collected: string[] = [];
  const writeSync = fs.writeSync;
  const write = process.stderr.write.bind(process.stderr);
  fs.writeSync = (fd: number, buffer: string | NodeJS.ArrayBufferView, ...rest: unknown[]) => {
    if (fd !== 2) return (writeSync as (...a: unknown[]) => number)(fd, buffer, ...rest);
    const text =
      typeof buffer === 'string'
        ? buffer
        : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength).toString(
            'utf8',
            typeof rest[0] === 'number' ? rest[0] : 0,
            typeof rest[1] === 'number' ? (typeof rest[0] === 'number' ? rest[0] : 0) + rest[1] : undefined,
          );
    collected.push(text);
    return typeof buffer === 'string'
      ? Buffer.byteLength(buffer)
      : typeof rest[1] === 'number'
        ? rest[1]
        : buffer.byteLength;
  };
  process.stderr.write = (chunk: string | Uint8Array) => {
    collected.push(String(chunk));
    return true;
  };
  try {
    return { value: fn(), diagnostics: collected };
  } catch (error) {
    return { error, diagnostics: collected };
  } finally {
    fs.writeSync = writeSync;
    process.stderr.write = write;
  }
}

/** The HDF5 library's own reason (the innermost frame of its error stack), for a message. */
function hdf5Reason(lines: string[]): string {
  const frames = lines
    .join('')
    .split('\n')
    .map((l) => /#\d+: .* in [\w]+\(\): (.*)$/.exec(l)?.[1]?.trim())
    .filter((m): m is string => !!m);
  return frames.length ? ` (HDF5: ${frames[frames.length - 1]})` : '';
}

function parseJson(text: string, what: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Expected JSON in ${what} of ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Reads a Keras .h5; `architecture` is the to_json file for weights-only saves. */
export async function readKerasH5(path: string, architecture?: string): Promise<KerasModelData> {
  await checkHdf5File(path);
  const h5wasm = await h5();
  const opened = quietly(() => new h5wasm.File(path, 'r'));
  // h5wasm returns a File even when HDF5 failed to open it; the error stack tells.
  if (opened.error !== undefined || !opened.value || opened.diagnostics.length > 0) {
    if (opened.value) quietly(() => opened.value!.close());
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a Keras HDF5 file at ${path} but HDF5 cannot open it${opened.error !== undefined ? `: ${messageOf(opened.error)}` : ''}${hdf5Reason(opened.diagnostics)}`,
      { cause: opened.error },
    );
  }
  const file = opened.value;
  const read = quietly(() => readContents(file, path));
  quietly(() => file.close());
  if (read.error !== undefined) {
    if (read.error instanceof MaasError) throw read.error;
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `${path} is not a readable Keras model: ${messageOf(read.error)}${hdf5Reason(read.diagnostics)}`,
      { cause: read.error },
    );
  }
  const contents = read.value!;
  let topology = contents.topology;
  if (topology === undefined) {
    if (!architecture)
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `${path} holds weights only (save_weights): pass the architecture JSON (to_json) as { architecture }`,
      );
    let text: string;
    try {
      text = (await readRegularFile(architecture, MAX_MODEL_JSON_BYTES, 'the architecture JSON')).toString('utf8');
    } catch (e) {
      if (e instanceof MaasError) throw e;
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `Expected the architecture JSON at ${architecture} but it cannot be read: ${messageOf(e)}`,
        { cause: e },
      );
    }
    topology = parseJson(text, 'the architecture file', architecture);
  }
  return { ...contents, topology };
}

/** The model_config, weights and training_config of an open file (synchronous: run quietly). */
function readContents(file: unknown, path: string): KerasModelData & { topology: unknown } {
  const root = file as H5Entity;
  const configAttr = root.attrs?.model_config?.value;
  const topology = configAttr === undefined ? undefined : parseJson(asString(configAttr), 'model_config', path);
  const group = (root.keys?.().includes('model_weights') ? root.get?.('model_weights') : root) as H5Entity;
  const weights = new Map<string, Float32Array[]>();
  for (const layer of group.keys?.() ?? []) {
    const lg = group.get?.(layer);
    const names = asStrings(lg?.attrs?.weight_names?.value);
    if (names.length === 0) continue;
    weights.set(
      layer,
      names.map((n) => {
        const ds = lg?.get?.(n);
        const v = ds?.value;
        if (!ArrayBuffer.isView(v))
          throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Weight ${layer}/${n} in ${path} is not a numeric dataset`);
        return v instanceof Float32Array ? v.slice() : Float32Array.from(v as unknown as ArrayLike<number>);
      }),
    );
  }
  const training = root.attrs?.training_config?.value;
  const version = root.attrs?.keras_version?.value;
  return {
    topology,
    weights,
    trainingConfig: training === undefined ? null : parseJson(asString(training), 'training_config', path),
    kerasVersion: version === undefined ? null : asString(version),
  };
}
