/**
 * Import: Keras .h5 files. A whole model written by model.save() (Dense(3) then an
 * Activation('softmax') layer, which folds into the Dense), and a model kept as two files: the
 * architecture from model.to_json() and the weights from model.save_weights().
 *
 *   npx tsx docs/examples/import-keras.ts
 */
import { loadModel } from 'maas';

const dir = 'test/fixtures/keras_h5';

// 1. model.save('model.h5'): the architecture, the weights and the training configuration.
const whole = await loadModel(`${dir}/dl4j_simple_sparse_xent_mlp/simple_sparse_xent_mlp_keras_2_model.h5`);
whole.summary();
const p = whole.predict([[0.6917601, 0.0054922, 0.3506804, 0.6537917]]).dataSync();
console.log(
  'class probabilities:',
  Array.from(p, (v) => v.toFixed(4)),
);

// 2. to_json() + save_weights(): name the architecture file.
const split = await loadModel(`${dir}/hls4ml_KERAS_3layer/KERAS_3layer_weights.h5`, {
  architecture: `${dir}/hls4ml_KERAS_3layer/KERAS_3layer.json`,
});
console.log(
  'layers:',
  split.layers.map((l) => `${l.units} ${l.activation}`),
);
