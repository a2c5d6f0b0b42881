/**
 * A tfjs-layers model read one weight tensor at a time: the model.json and the layer shapes
 * first, then the weights in file order, each layer handed on (checked, any BatchNormalization
 * folded, exactly as openModelFile gives it) as soon as its tensors are in and dropped after.
 * A model far larger than any single buffer (a billion parameters in fp32 is 4.8 GB) loads this
 * way holding one layer's weights at a time. The weights' digest is computed as they are read
 * and verified at the end: a caller discards what it packed when readLayers rejects.
 * Plain data only (no addon), so it runs in the load thread.
 */
import { createHash, type Hash } from 'node:crypto';
import { MaasError } from '../core/errors.js';
import { openTfjsManifest, resolveModelJson, type TfjsManifest } from './artifacts.js';
import { asLoader, exists, readAt } from './files.js';
import { formatOfFileName } from './formats.js';
import {
  checkedLayer,
  extrasOf,
  openedShape,
  planTfjsLayers,
  tfjsLayerWeights,
  type Located,
  type OpenedLayer,
  type OpenedModel,
  type OpenedShape,
  type OpenOptions,
  type TfjsLayerSources,
} from './open.js';
import { isSealedPath } from './sealed.js';
import { fromTopology, type ParsedDense } from './topology.js';

/** A streamed model before its weights are read: what OpenedModel says, with shapes for layers. */
export interface StreamedModel extends Omit<OpenedModel, 'layers'> {
  /** Each layer's shape and activation, in order (what a packer sizes its region with). */
  shapes: OpenedShape[];
  /** Whether the file records a digest of its weights (verified as readLayers reads them). */
  weightsDigestRecorded: boolean;
  /**
   * Reads every weight once, in file order, and calls onLayer(index, layer) for each layer as
   * soon as its tensors are read (not necessarily in layer order); verifies the weights digest
   * after the last. The layer's arrays are reused once onLayer returns: consume them before. Closes the files whether it resolves or rejects; call it once.
   */
  readLayers(onLayer: (index: number, layer: OpenedLayer) => void | Promise<void>): Promise<void>;
  /** Closes the files without reading (when the caller gives up before readLayers). */
  close(): Promise<void>;
}

/**
 * The model.json `path` resolves to when it is a plaintext tfjs-layers model that can be
 * streamed (not an encrypted file, an .onnx or an .h5, and present), else null.
 */
export async function streamablePath(path: string): Promise<string | null> {
  if (isSealedPath(path) || formatOfFileName(path) !== 'tfjs-layers') return null;
  const json = await resolveModelJson(path).catch(() => null);
  return json && (await exists(json)) ? json : null;
}

/** Opens a tfjs-layers model for streaming (see streamablePath); every error is a coded MaasError. */
export function streamTfjsModel(path: string, options: OpenOptions = {}): Promise<StreamedModel> {
  return asLoader(path, async () => {
    const manifest = await openTfjsManifest(path, options);
    try {
      const parsed = fromTopology(manifest.modelTopology);
      const plan = planTfjsLayers(parsed, manifest.weightSpecs);
      const shapes = chainedShapes(parsed);
      return {
        path: manifest.jsonPath,
        format: 'tfjs-layers',
        precision: manifest.maas?.quantization ? 'int8' : 'fp32',
        shapes,
        inputSize: shapes[0]!.inputDim,
        outputSize: shapes[shapes.length - 1]!.units,
        training: null,
        preparation: undefined,
        quantization: undefined,
        history: undefined,
        background: undefined,
        ...extrasOf(manifest.maas),
        weightsDigestRecorded: manifest.weightsDigestRecorded,
        readLayers: (onLayer) =>
          asLoader(path, () => readInOrder(manifest, parsed, plan, shapes, onLayer)).finally(() => manifest.close()),
        close: () => manifest.close(),
      };
    } catch (e) {
      await manifest.close();
      throw e;
    }
  });
}

function chainedShapes(parsed: ParsedDense[]): OpenedShape[] {
  let inputDim = parsed[0]!.inputDim!;
  return parsed.map((p) => {
    const shape = openedShape(p, inputDim);
    inputDim = p.units;
    return shape;
  });
}

/** Reads the weights files front to back as one stream of bytes, hashing all of them. */
class WeightStream {
  private shard = 0;
  private position = 0;
  readonly hash: Hash = createHash('sha256');

  constructor(private readonly shards: TfjsManifest['shards']) {}

  /** Fills `into` with the next bytes, across file boundaries. */
  async read(into: Uint8Array): Promise<void> {
    let at = 0;
    while (at < into.length) {
      const file = this.shards[this.shard];
      if (!file) throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'The weights files end before the manifest does');
      const n = Math.min(file.size - this.position, into.length - at);
      await readAt(file.handle, into.subarray(at, at + n), this.position, file.path, 'the weights file');
      at += n;
      this.position += n;
      if (this.position === file.size) {
        this.shard++;
        this.position = 0;
      }
    }
    this.hash.update(into);
  }

  /** Reads and hashes `bytes` bytes that no layer takes. */
  async skip(bytes: number): Promise<void> {
    const chunk = new Uint8Array(Math.min(bytes, 1 << 22));
    for (let left = bytes; left > 0; left -= chunk.length)
      await this.read(chunk.subarray(0, Math.min(left, chunk.length)));
  }
}

/** The entries a planned layer takes. */
function entriesOf(sources: TfjsLayerSources): Located[] {
  const bn = sources.batchNorm;
  return [sources.kernel, sources.bias, bn?.gamma, bn?.beta, bn?.mean, bn?.variance].filter(
    (w): w is Located => w !== undefined && w !== null,
  );
}

async function readInOrder(
  manifest: TfjsManifest,
  parsed: ParsedDense[],
  plan: TfjsLayerSources[],
  shapes: OpenedShape[],
  onLayer: (index: number, layer: OpenedLayer) => void | Promise<void>,
): Promise<void> {
  // Which layers take each entry (converters' files can name one entry for two), and how many
  // entries each layer still waits for; an entry's values are dropped once its layers are done.
  const takers = new Map<Located, number[]>();
  const waiting = plan.map((sources, layer) => {
    const entries = [...new Set(entriesOf(sources))];
    for (const w of entries) takers.set(w, [...(takers.get(w) ?? []), layer]);
    return entries.length;
  });
  const uses = new Map([...takers].map(([w, layers]) => [w, layers.length]));
  const values = new Map<Located, Float32Array>();
  // A dropped entry's buffer is taken by the next entry of its length (a stack's layers are
  // often all one size), so a large model's load holds one layer's weights, not a heap of
  // garbage layers waiting for a collector.
  const spare = new Map<number, Float32Array[]>();
  const buffer = (floats: number) => spare.get(floats)?.pop() ?? new Float32Array(floats);
  const entries = [...takers.keys()].sort((a, b) => a.offset - b.offset);
  const stream = new WeightStream(manifest.shards);
  let offset = 0;
  for (const entry of entries) {
    if (entry.offset > offset) await stream.skip(entry.offset - offset);
    const data = buffer(entry.bytes / 4);
    await stream.read(new Uint8Array(data.buffer));
    offset = entry.offset + entry.bytes;
    values.set(entry, data);
    for (const layer of takers.get(entry)!) {
      if (--waiting[layer]! > 0) continue;
      const sources = plan[layer]!;
      const weights = tfjsLayerWeights(sources, (w) => values.get(w)!);
      await onLayer(layer, checkedLayer(manifest.jsonPath, parsed[layer]!, shapes[layer]!.inputDim, weights));
      for (const w of new Set(entriesOf(sources)))
        if (uses.set(w, uses.get(w)! - 1).get(w) === 0) {
          const dropped = values.get(w)!;
          values.delete(w);
          spare.set(dropped.length, [...(spare.get(dropped.length) ?? []), dropped]);
        }
    }
  }
  const total = manifest.shards.reduce((n, f) => n + f.size, 0);
  if (total > offset) await stream.skip(total - offset);
  manifest.verifyWeights(stream.hash.digest('hex'));
}
