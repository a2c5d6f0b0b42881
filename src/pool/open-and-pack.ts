/**
 * One model file opened and packed exactly as the repository loads it, into a shared-memory
 * region tagged with the load (or into a packed cache file, mapped from there). A plaintext
 * tfjs-layers model is streamed: read a layer at a time and packed as it is read, so a model
 * larger than memory's comfort (a billion parameters) never exists whole outside its packed
 * layout. Other formats are read, checked and folded by openModelFile, then packed. The load
 * thread runs it; `maas pack` and the fuzzer's file phase call it too.
 */
import { MaasError } from '../core/errors.js';
import { savedCarried, type Carried } from '../io/artifacts.js';
import { backgroundFromJSON, historyFromJSON } from '../model/carried.js';
import { openModelFile } from '../io/open.js';
import { isSealedPath } from '../io/sealed.js';
import { streamablePath, streamTfjsModel, type StreamedModel } from '../io/tfjs-stream.js';
import {
  denseLayerPacker,
  int8LayerPacker,
  packDenseStackRegion,
  packInt8StackRegion,
  packIntoRegion,
  packRoundTripRegion,
  type DensePrecision,
  type LayerPacker,
  type PackedRegion,
  type RegionTarget,
} from '../model/packed.js';
import { checkSpec, int8WeightsOf, readInt8 } from '../quant/load.js';
import { describeQuantization, int8PackLayer, int8PackLayers, type QuantizationSpec } from '../quant/model.js';
import type { ModelKeys } from '../io/model-keys.js';
import type { LoadRequest, LoadedModel } from './messages.js';
import { PackedCache } from './packed-cache.js';
import { native } from '../native/index.js';

function refuseBf16OfInt8(path: string): MaasError {
  return new MaasError(
    'MAAS_ERR_MODEL_CONFIG',
    `The config asks for precision bf16 but ${path} is an int8 model: serve it as it is, or serve its fp32 source in bf16`,
  );
}

/** A loaded model and whether a digest the file records was verified on the way. */
interface Packed {
  model: LoadedModel;
  digestVerified: boolean;
}

/** Streams a tfjs-layers model into a region, a layer at a time. */
async function streamAndPack(
  stream: StreamedModel,
  precision: DensePrecision | undefined,
  tag: number,
  target: RegionTarget,
): Promise<Packed> {
  let packer: LayerPacker;
  let spec: QuantizationSpec | null = null;
  if (stream.precision === 'int8') {
    if (precision === 'bf16') throw refuseBf16OfInt8(stream.path);
    const checked = checkSpec(stream.quantization, stream.shapes, stream.path);
    spec = checked;
    const shapes = checked.layers.map((info, i) => ({ ...int8PackLayer(checked, i, null), int8: info.int8 }));
    packer = int8LayerPacker(stream.shapes, shapes, checked.mode === 'dynamic');
  } else {
    packer = denseLayerPacker(stream.shapes, precision ?? 'fp32');
  }
  const region = await packIntoRegion(
    packer,
    async (view) => {
      let kernel = '';
      let scratch: Int8Array | undefined;
      await stream.readLayers((index, layer) => {
        if (spec && scratch?.length !== layer.kernel.length) scratch = new Int8Array(layer.kernel.length);
        const int8 = spec ? int8PackLayer(spec, index, int8WeightsOf(spec, index, layer, scratch)) : undefined;
        kernel = packer.packLayer(view, index, layer, int8);
        // A cache file's packed pages are on their way to the disk: out of this process's
        // resident set until a worker maps them, so packing holds one layer, not the model.
        if (target.file) native.dropRegionPages(view);
      });
      return kernel;
    },
    tag,
    target,
  );
  const { inputSize, outputSize } = stream;
  return {
    model: {
      region,
      inputSize,
      outputSize,
      ...(spec ? { quantization: describeQuantization(spec) } : {}),
      ...carriedOf(stream, stream.path, inputSize),
    },
    digestVerified: stream.weightsDigestRecorded,
  };
}

/** Any model file read whole by openModelFile, then packed. */
async function openWholeAndPack(
  { path, tag, strictIntegrity, precision }: LoadRequest,
  keys: ModelKeys | undefined,
  target: RegionTarget,
): Promise<Packed> {
  const opened = await openModelFile(path, { strictIntegrity: strictIntegrity === true, ...(keys ? { keys } : {}) });
  const { inputSize, outputSize } = opened;
  const keyId = opened.encryption ? { keyId: opened.encryption.keyId } : {};
  let region: PackedRegion;
  let quantization: string | undefined;
  if (opened.precision === 'int8') {
    if (precision === 'bf16') throw refuseBf16OfInt8(path);
    const { spec, int8Weights } = readInt8(opened);
    region = await packInt8StackRegion(
      opened.layers,
      int8PackLayers(spec, int8Weights),
      spec.mode === 'dynamic',
      tag,
      target,
    );
    quantization = describeQuantization(spec);
  } else {
    region = await packDenseStackRegion(opened.layers, tag, precision ?? 'fp32', target);
  }
  return {
    model: {
      region,
      inputSize,
      outputSize,
      ...(quantization ? { quantization } : {}),
      ...keyId,
      ...carriedOf(opened, opened.path, inputSize),
    },
    // Only a strict load is known to have verified a digest (a lenient one may have found none).
    digestVerified: strictIntegrity === true,
  };
}

/**
 * What the model file carries besides weights, as LoadedModel does (each absent when the file has
 * none): the history and the background checked and decoded here, in the load thread, so the
 * serving thread never parses a file's megabytes of base64.
 */
function carriedOf(
  opened: Carried,
  path: string,
  inputSize: number,
): Pick<LoadedModel, 'preparation' | 'history' | 'background'> {
  const { preparation, history, background } = opened;
  return {
    ...(preparation !== undefined ? { preparation } : {}),
    ...(history !== undefined ? { history: historyFromJSON(history, path) } : {}),
    ...(background !== undefined ? { background: backgroundFromJSON(background, inputSize, path) } : {}),
  };
}

/** Opens and packs the model at request.path, streaming where it can. */
async function openAndPackUncached(request: LoadRequest, keys: ModelKeys | undefined, target: RegionTarget) {
  const json = await streamablePath(request.path);
  if (!json) return openWholeAndPack(request, keys, target);
  const stream = await streamTfjsModel(json, { strictIntegrity: request.strictIntegrity === true });
  try {
    return await streamAndPack(stream, request.precision, request.tag, target);
  } finally {
    await stream.close();
  }
}

/**
 * Opens and packs `request.path`. With request.packedCache, a plaintext model is mapped from its
 * cache entry when there is one, and otherwise packed straight into a new entry; an encrypted
 * model is never cached.
 */
export async function openAndPack(request: LoadRequest, keys?: ModelKeys): Promise<LoadedModel> {
  const model = await openAndPackWeights(request, keys);
  if (!request.roundTrip) return model;
  try {
    const { region, cached } = await roundTripOf(request, keys);
    return { ...model, roundTrip: region, ...(cached ? { roundTripCached: cached } : {}) };
  } catch (error) {
    native.closeRegion(model.region.fd);
    throw error;
  }
}

/**
 * The round-trip stack of the model at request.path (packRoundTripRegion), for a version whose
 * config enables explanations: from the packed cache like the weights (so N serving processes map
 * one copy), else packed from a second, whole read of the file (its fp32 weights, or an int8
 * model's dequantized ones, which the file stores).
 */
async function roundTripOf(
  request: LoadRequest,
  keys: ModelKeys | undefined,
): Promise<{ region: PackedRegion; cached?: 'hit' | 'written' }> {
  const cache = request.packedCache && !isSealedPath(request.path) ? new PackedCache(request.packedCache) : null;
  const key = cache ? await cache.keyOf(request.path, 'round-trip') : null;
  if (!cache || !key) return { region: (await packRoundTripOf(request, keys, {})).region };
  const hit = await cache.lookup(key, request.tag, request.strictIntegrity === true);
  if (hit) return { region: hit.region, cached: 'hit' };
  const entry = cache.begin(key, request.path, request.tag, 'round-trip');
  const { region, inputSize, outputSize } = await packRoundTripOf(request, keys, entry.target);
  // A strict load verified the digest the file records (openModelFile refuses one without).
  const published = await entry.commit(region, { inputSize, outputSize }, request.strictIntegrity === true);
  return { region: published, cached: 'written' };
}

async function packRoundTripOf(
  request: LoadRequest,
  keys: ModelKeys | undefined,
  target: RegionTarget,
): Promise<{ region: PackedRegion; inputSize: number; outputSize: number }> {
  const opened = await openModelFile(request.path, {
    strictIntegrity: request.strictIntegrity === true,
    ...(keys ? { keys } : {}),
  });
  const region = await packRoundTripRegion(opened.layers, request.tag, target);
  return { region, inputSize: opened.inputSize, outputSize: opened.outputSize };
}

async function openAndPackWeights(request: LoadRequest, keys?: ModelKeys): Promise<LoadedModel> {
  const cache = request.packedCache && !isSealedPath(request.path) ? new PackedCache(request.packedCache) : null;
  if (!cache) return (await openAndPackUncached(request, keys, {})).model;
  await cache.prepare();
  // fp32 asked of an fp32 file is the file as stored: one entry for both.
  const precision = request.precision === 'bf16' ? 'bf16' : 'as-stored';
  const key = await cache.keyOf(request.path, precision);
  if (!key) return (await openAndPackUncached(request, keys, {})).model;
  const hit = await cache.lookup(key, request.tag, request.strictIntegrity === true);
  // A hit opens no model file: the pipeline and the rest, small beside the weights, are read from model.json here.
  if (hit) {
    const json = await streamablePath(request.path);
    return { ...hit, ...(json ? carriedOf(await savedCarried(json), json, hit.inputSize) : {}), cached: 'hit' };
  }
  const entry = cache.begin(key, request.path, request.tag, precision);
  const { model, digestVerified } = await openAndPackUncached(request, keys, entry.target);
  return { ...model, region: await entry.commit(model.region, model, digestVerified), cached: 'written' };
}
