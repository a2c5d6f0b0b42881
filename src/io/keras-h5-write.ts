/**
 * Keras HDF5 export: `model.save('model.h5')` writes the layout Keras 2's `model.save` writes and
 * its `load_model`, tfjs's converter (`--input_format keras`) and readKerasH5 read: the root
 * attributes model_config (the Keras model JSON), keras_version and backend, and the group
 * model_weights with layer_names, one group per layer with weight_names, and each weight at
 * model_weights/<layer>/<layer>/<name>:0. The root also records maas_sha256 (see keras-h5.ts), so
 * a file maas wrote can be loaded with `requireDigest`.
 *
 * The file is built in h5wasm's in-memory file system under a private name and its bytes are
 * written by the caller: HDF5 never opens a real path.
 */
import { randomUUID } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { ModelArtifacts } from './artifacts.js';
import type { H5Contents } from './keras-h5-thread.js';
import { kerasDigest } from './keras-h5.js';
import { syncDirectory, writeDurably } from './files.js';
import { MaasError } from '../core/errors.js';

/**
 * The Keras version the layout follows. Keras 2 loaders read it only to convert Keras 1 files;
 * the configs toTopology writes are Keras 2's (snake_case, batch_input_shape).
 */
const KERAS_LAYOUT_VERSION = '2.15.0';

interface KerasTopology {
  class_name: string;
  config: { name?: string; layers: { class_name: string; config: { name: string } }[] };
}

function topologyOf(artifacts: ModelArtifacts): KerasTopology {
  const t = artifacts.modelTopology as Partial<KerasTopology> | null;
  if (!t || typeof t.class_name !== 'string' || !t.config || !Array.isArray(t.config.layers))
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'The model has no Keras topology to write as HDF5');
  return { class_name: t.class_name, config: t.config };
}

/** Each layer's weights in the artifacts' order, as Keras names and float32 values. */
function layerWeights(artifacts: ModelArtifacts): H5Contents['layers'] {
  const layers = new Map<string, H5Contents['layers'][number]>();
  let offset = 0;
  for (const spec of artifacts.weightSpecs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype !== 'float32')
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Weight ${spec.name} is ${spec.dtype}: HDF5 export writes float32`);
    // A view of the weights where they lie 4-byte aligned (they do as toArtifacts builds them): a
    // copy would double a large model's memory for the length of the save.
    const at = artifacts.weightData.byteOffset + offset;
    const values =
      at % 4 === 0
        ? new Float32Array(artifacts.weightData.buffer, at, count)
        : new Float32Array(artifacts.weightData.slice(offset, offset + count * 4).buffer);
    offset += count * 4;
    const cut = spec.name.lastIndexOf('/');
    const layer = cut < 0 ? spec.name : spec.name.slice(0, cut);
    const weight = cut < 0 ? spec.name : spec.name.slice(cut + 1);
    let entry = layers.get(layer);
    if (!entry) layers.set(layer, (entry = { name: layer, weights: [] }));
    entry.weights.push({ name: `${layer}/${weight}:0`, dims: [...spec.shape], values });
  }
  return [...layers.values()];
}

/** The bytes of a Keras HDF5 file holding the model the artifacts describe. */
export async function kerasH5Bytes(artifacts: ModelArtifacts): Promise<Uint8Array> {
  if (artifacts.maas?.quantization !== undefined)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      'Keras HDF5 holds fp32 models and has no int8 layers: save an int8 model into a directory, or as ONNX with saveOnnx',
    );
  const topology = topologyOf(artifacts);
  const layers = layerWeights(artifacts);
  const modelConfig = JSON.stringify(topology);
  const digest = kerasDigest({ modelConfig, layers });
  const library = await import('h5wasm');
  const h5 = library.default;
  await h5.ready;
  const FS = library.FS!;
  const name = `/maas-${randomUUID()}.h5`;
  try {
    const file = new h5.File(name, 'w');
    try {
      file.create_attribute('model_config', modelConfig);
      file.create_attribute('keras_version', KERAS_LAYOUT_VERSION);
      file.create_attribute('backend', 'tensorflow');
      file.create_attribute('maas_sha256', digest);
      const weights = file.create_group('model_weights');
      const byName = new Map(layers.map((l) => [l.name, l]));
      const layerNames = topology.config.layers.map((l) => l.config.name);
      weights.create_attribute('layer_names', layerNames);
      weights.create_attribute('keras_version', KERAS_LAYOUT_VERSION);
      weights.create_attribute('backend', 'tensorflow');
      for (const layerName of layerNames) {
        const group = weights.create_group(layerName);
        const layer = byName.get(layerName);
        // A layer without weights (an activation layer) keeps an empty weight_names, as Keras writes.
        group.create_attribute('weight_names', layer ? layer.weights.map((w) => w.name) : [], layer ? null : [0]);
        if (!layer) continue;
        const inner = group.create_group(layerName);
        for (const w of layer.weights)
          inner.create_dataset({
            name: w.name.slice(layerName.length + 1),
            data: w.values,
            shape: w.dims,
            dtype: '<f',
          });
      }
    } finally {
      file.close();
    }
    return FS.readFile(name);
  } finally {
    try {
      FS.unlink(name);
    } catch {
      // never created: the error that stopped the write is the one to report
    }
  }
}

/**
 * Writes the model as a Keras HDF5 file at `path`; returns the absolute path. Atomic: the bytes go
 * to a new file beside it, synced, then renamed over `path`, so a crash leaves the old file whole.
 */
export async function writeKerasH5(path: string, artifacts: ModelArtifacts): Promise<string> {
  const bytes = await kerasH5Bytes(artifacts);
  const target = resolve(path);
  const temp = `${target}.${randomUUID()}.tmp`;
  try {
    await writeDurably(temp, bytes);
    await rename(temp, target);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
  await syncDirectory(dirname(target));
  return target;
}
