/**
 * Keras HDF5 import against the fixtures in test/fixtures/keras_h5: whole-model files
 * (Sequential, old list form, tf.keras functional chains with Activation/ReLU/Softmax/Dropout
 * layers) and a weights-only file with its architecture JSON, each within the manifest's
 * tolerance; a training_config carries over to compile.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';

const KERAS = join(packageRoot(), 'test', 'fixtures', 'keras_h5');
/** MANIFEST.md's suggested tolerance; the analytic case is exact up to float32 rounding. */
const DEFAULT_TOL = 1e-5;

const cases: [string, string, string, string?][] = [
  ['dl4j ReLU layer', 'dl4j_activations/ReLU_0_model.h5', 'dl4j_activations/ReLU_0.expected.json'],
  ['dl4j Softmax layer', 'dl4j_activations/Softmax_0_model.h5', 'dl4j_activations/Softmax_0.expected.json'],
  [
    'dl4j sparse xent mlp',
    'dl4j_simple_sparse_xent_mlp/simple_sparse_xent_mlp_keras_2_model.h5',
    'dl4j_simple_sparse_xent_mlp/expected.json',
  ],
  [
    'Keras 2.1 old list form, known weights',
    'dl4j_dense_known_weights/dense_tensorflow_2.h5',
    'dl4j_dense_known_weights/expected.json',
  ],
  ...[0, 2, 4, 7, 8, 10, 14, 21, 26, 33, 44, 56].map((n): [string, string, string] => [
    `tf.keras functional mlp_${n}`,
    `dl4j_tfkeras_mlp/mlp_${n}.h5`,
    `dl4j_tfkeras_mlp/mlp_${n}.expected.json`,
  ]),
  [
    'hls4ml weights-only + architecture JSON',
    'hls4ml_KERAS_3layer/KERAS_3layer_weights.h5',
    'hls4ml_KERAS_3layer/expected.json',
    'hls4ml_KERAS_3layer/KERAS_3layer.json',
  ],
];

describe('Keras HDF5 import', () => {
  for (const [name, file, expectedFile, architecture] of cases) {
    it(`${name} reproduces its expected outputs`, async () => {
      const expected = JSON.parse(await readFile(join(KERAS, expectedFile), 'utf8'));
      const model = await loadModel(join(KERAS, file), architecture ? { architecture: join(KERAS, architecture) } : {});
      const got = model.predict(expected.inputs).values;
      const want = (expected.outputs as number[][]).flat();
      expect(got.length).toBe(want.length);
      const tol = expected.suggested_tolerance ?? DEFAULT_TOL;
      want.forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThanOrEqual(tol));
    });
  }

  it('carries a training_config over to compile (RMSprop + mse trains at once)', async () => {
    const model = await loadModel(join(KERAS, 'dl4j_activations/ReLU_0_model.h5'));
    const x = [Array.from({ length: 16 }, (_, i) => i / 16)];
    const y = [Array.from({ length: 32 }, () => 0.5)];
    expect(typeof model.trainOnBatch(x, y)).toBe('number');
  });

  it('asks for the architecture JSON when a file holds weights only', async () => {
    await expect(loadModel(join(KERAS, 'hls4ml_KERAS_3layer/KERAS_3layer_weights.h5'))).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_FORMAT',
      message: expect.stringMatching(/weights only .*architecture/),
    });
  });
});
