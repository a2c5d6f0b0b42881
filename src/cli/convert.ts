/**
 * `maas convert IN OUT`: loads any format loadModel reads (model.json or its directory, .h5,
 * .onnx) and writes OUT by its extension: .onnx for ONNX, anything else as a maas/tfjs model
 * directory. A quantized maas model converted to .onnx is written as an int8 ONNX graph.
 */
import { readArtifacts } from '../io/artifacts.js';
import { loadModel } from '../model/load.js';
import { loadQuantizedModel } from '../quant/quantize.js';

/** Options of the convert command. */
export interface ConvertOptions {
  /** Architecture JSON for a Keras weights-only .h5. */
  architecture?: string;
  print: (line: string) => void;
}

/** Converts IN to OUT; returns what was written. */
export async function runConvert(input: string, output: string, options: ConvertOptions): Promise<string> {
  if (output.endsWith('.onnx') && (await isQuantizedModel(input))) {
    const q = await loadQuantizedModel(input);
    try {
      await q.saveOnnx(output);
    } finally {
      q.dispose();
    }
    options.print(
      `converted ${input} (${q.spec.mode} int8, ${q.spec.layers.filter((l) => l.int8).length}/${q.spec.layers.length} layers) to int8 ONNX: ${output}`,
    );
    return output;
  }
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

/** Whether IN is a maas model directory (or model.json) carrying maas.quantization. */
async function isQuantizedModel(input: string): Promise<boolean> {
  if (/\.(h5|hdf5|onnx)$/i.test(input)) return false;
  try {
    return Boolean((await readArtifacts(input)).maas?.quantization);
  } catch {
    return false; // not a tfjs model: loadModel reports what it is
  }
}
