/**
 * `maas convert IN OUT`: loads any format loadModel reads (model.json or its directory, .h5,
 * .onnx) and writes OUT by its extension: .onnx for ONNX, anything else as a maas/tfjs model
 * directory.
 */
import { loadModel } from '../model/load.js';

/** Options of the convert command. */
export interface ConvertOptions {
  /** Architecture JSON for a Keras weights-only .h5. */
  architecture?: string;
  print: (line: string) => void;
}

/** Converts IN to OUT; returns what was written. */
export async function runConvert(input: string, output: string, options: ConvertOptions): Promise<string> {
  const model = await loadModel(input, options.architecture ? { architecture: options.architecture } : {});
  const shape = `${model.inputShape![1]} → ${model.layers.map((l) => `${l.units}${l.activation === 'linear' ? '' : ` ${l.activation}`}`).join(' → ')}`;
  if (output.endsWith('.onnx')) {
    await model.saveOnnx(output);
    options.print(`converted ${input} (${shape}) to ONNX: ${output}`);
    return output;
  }
  const { modelJson } = await model.save(output);
  options.print(`converted ${input} (${shape}) to a tfjs-layers model: ${modelJson}`);
  return modelJson;
}
