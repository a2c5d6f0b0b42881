/**
 * Import: ONNX. A dense chain (MatMul + Add, Relu, …, Softmax, exported from Keras by onnxmltools)
 * becomes a Sequential with loadModel; a graph that is not a chain (a MatMul broadcasting over
 * batch dimensions) is refused by loadModel, with the node and the reason, and runs with
 * loadOnnxGraph instead.
 *
 *   npx tsx docs/examples/import-onnx.ts
 */
import { loadModel, loadOnnxGraph, MaasError } from 'maas';

const dir = 'test/fixtures/onnx';

const chain = await loadModel(`${dir}/hls4ml_three_layer_keras/model.onnx`);
console.log(
  'chain:',
  chain.layers.map((l) => `${l.units} ${l.activation}`),
);

const bcast = `${dir}/onnx_node/test_matmul_bcast/model.onnx`;
try {
  await loadModel(bcast);
} catch (e) {
  if (!(e instanceof MaasError)) throw e;
  console.log(`${e.code}: ${e.message}`);
}

const graph = await loadOnnxGraph(bcast);
console.log('inputs', graph.inputNames, 'outputs', graph.outputNames);
const a = { data: new Float32Array(3 * 1 * 3 * 4).fill(1), shape: [3, 1, 3, 4] };
const b = { data: new Float32Array(1 * 2 * 4 * 2).fill(0.5), shape: [1, 2, 4, 2] };
const { c } = graph.run({ a, b }); // inputs and outputs by their names in the graph
if (!c) throw new Error('the graph has no output c');
console.log('shape', c.shape, 'first values', Array.from(c.data.slice(0, 4)));
