/**
 * Keras HDF5 import with h5wasm (HDF5 compiled to WebAssembly, installed from npm): whole-model
 * files (`model.save`: the model_config attribute and model_weights) and weights-only files
 * (`save_weights`) paired with the architecture JSON (`to_json`). Returns the topology, each
 * layer's weights by layer name, and the training_config when the file has one.
 */
import { readFile } from 'node:fs/promises';
import h5wasm from 'h5wasm/node';
import { MaasError } from '../core/errors.js';

/** What a Keras file holds, in the shape loadModel consumes. */
export interface KerasModelData {
  topology: unknown;
  /** Weights by layer name, in the layer's weight_names order (kernel, bias, ...). */
  weights: Map<string, Float32Array[]>;
  trainingConfig: unknown | null;
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

/** Reads a Keras .h5; `architecture` is the to_json file for weights-only saves. */
export async function readKerasH5(path: string, architecture?: string): Promise<KerasModelData> {
  await h5wasm.ready;
  let file: InstanceType<typeof h5wasm.File>;
  try {
    file = new h5wasm.File(path, 'r');
  } catch (e) {
    throw new MaasError('MAAS_ERR_MODEL_NOT_FOUND', `Cannot open ${path} as HDF5: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const root = file as unknown as H5Entity;
    const configAttr = root.attrs?.model_config?.value;
    let topology: unknown;
    if (configAttr !== undefined) {
      topology = JSON.parse(asString(configAttr));
    } else if (architecture) {
      topology = JSON.parse(await readFile(architecture, 'utf8'));
    } else {
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `${path} holds weights only (save_weights): pass the architecture JSON (to_json) as { architecture }`,
      );
    }
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
      trainingConfig: training === undefined ? null : JSON.parse(asString(training)),
      kerasVersion: version === undefined ? null : asString(version),
    };
  } finally {
    file.close();
  }
}
