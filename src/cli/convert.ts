/**
 * `maas convert IN OUT`: opens any format openModelFile reads (model.json or its directory, .h5,
 * .onnx) once and writes OUT by its extension: .onnx for ONNX, anything else as a maas/tfjs model
 * directory. A quantized maas model converted to .onnx is written as an int8 ONNX graph.
 */
import { openModelFile } from '../io/open.js';
import { sequentialFromOpened } from '../model/load.js';
import { quantizedFromOpened } from '../quant/load.js';

/** Options of the convert command. */
export interface ConvertOptions {
  /** Architecture JSON for a Keras weights-only .h5. */
  architecture?: string;
  print: (line: string) => void;
}

/** Converts IN to OUT; returns what was written. */
export async function runConvert(input: string, output: string, options: ConvertOptions): Promise<string> {
  const opened = await openModelFile(input, options.architecture ? { architecture: options.architecture } : {});
  if (output.endsWith('.onnx') && opened.precision === 'int8') {
    const q = quantizedFromOpened(opened);
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
  const model = sequentialFromOpened(opened);
  const shape = `${model.inputShape![1]} → ${model.layers.map((l) => `${l.units}${l.activation === 'linear' ? '' : ` ${l.activation}`}`).join(' → ')}`;
  if (output.endsWith('.onnx')) {
    await model.saveOnnx(output);
    options.print(`converted ${input} (${shape}) to ONNX: ${output}`);
    return output;
  }
  const saved = await model.save(output);
  if (saved.h5 !== undefined) {
    options.print(`converted ${input} (${shape}) to a Keras HDF5 file: ${saved.h5}`);
    return saved.h5;
  }
  options.print(`converted ${input} (${shape}) to a tfjs-layers model: ${saved.modelJson}`);
  return saved.modelJson;
}
