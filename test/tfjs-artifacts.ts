/** Writes a tfjs model as tfjs-node does, so tests can load what tfjs itself saved. */
import * as tf from '@tensorflow/tfjs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Saves `model` as `dir/model.json` + `dir/weights.bin` through tfjs's own save handler. */
export async function saveTfjs(model: tf.LayersModel, dir: string, weightsPath = './weights.bin'): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      await writeFile(join(dir, 'weights.bin'), new Uint8Array(a.weightData as ArrayBuffer));
      await writeFile(
        join(dir, 'model.json'),
        JSON.stringify({
          modelTopology: a.modelTopology,
          format: a.format,
          generatedBy: a.generatedBy,
          weightsManifest: [{ paths: [weightsPath], weights: a.weightSpecs }],
        }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}
