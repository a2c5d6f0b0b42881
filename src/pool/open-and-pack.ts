/**
 * One model file opened and packed exactly as the repository loads it: read, checked and folded
 * by openModelFile, packed into a shared-memory region tagged with the load. The load thread runs
 * it; the fuzzer's file phase calls it too.
 */
import { MaasError } from '../core/errors.js';
import { openModelFile } from '../io/open.js';
import { packDenseStackRegion, packInt8StackRegion } from '../model/packed.js';
import { readInt8 } from '../quant/load.js';
import { describeQuantization, int8PackLayers } from '../quant/model.js';
import type { ModelKeys } from '../io/model-keys.js';
import type { LoadRequest, LoadedModel } from './messages.js';

export async function openAndPack(
  { path, tag, strictIntegrity, precision }: LoadRequest,
  keys?: ModelKeys,
): Promise<LoadedModel> {
  const opened = await openModelFile(path, { strictIntegrity: strictIntegrity === true, ...(keys ? { keys } : {}) });
  const { inputSize, outputSize } = opened;
  const keyId = opened.encryption ? { keyId: opened.encryption.keyId } : {};
  if (opened.precision === 'int8') {
    if (precision === 'bf16')
      throw new MaasError(
        'MAAS_ERR_MODEL_CONFIG',
        `The config asks for precision bf16 but ${path} is an int8 model: serve it as it is, or serve its fp32 source in bf16`,
      );
    const { spec, int8Weights } = readInt8(opened);
    const region = packInt8StackRegion(opened.layers, int8PackLayers(spec, int8Weights), spec.mode === 'dynamic', tag);
    return { region, inputSize, outputSize, quantization: describeQuantization(spec), ...keyId };
  }
  return { region: packDenseStackRegion(opened.layers, tag, precision ?? 'fp32'), inputSize, outputSize, ...keyId };
}
