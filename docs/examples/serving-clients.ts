/**
 * Serving: the two Node clients against a server started in explicit control mode on the
 * getting-started repository (train.ts and quantize.ts first, then
 * `maas serve --model-repository docs/examples/out/repo --model-control-mode explicit --load-model orders`).
 * Loads the int8 model through the repository API, sends requests over REST (binary tensors),
 * a gRPC stream, a request with priority and timeout, and reads the statistics.
 *
 *   npx tsx docs/examples/serving-clients.ts
 */
import { GrpcInferenceClient, HttpInferenceClient, InferenceServerError } from 'maas';

const http = new HttpInferenceClient('http://localhost:8000');
const grpc = new GrpcInferenceClient('localhost:8001');
const row = new Float32Array([1.9, 0, 1, 0, 0, 1.2, -0.8]);
const input = { name: 'input', datatype: 'FP32', shape: [1, 7], data: row };

try {
  console.log('index:', await http.repositoryIndex());
  try {
    await grpc.infer({ model: 'orders_int8', inputs: [input] });
  } catch (e) {
    if (!(e instanceof InferenceServerError)) throw e;
    console.log(`before loading: status ${e.status}, ${e.code}: ${e.message}`);
  }
  await grpc.loadModel('orders_int8');
  console.log('orders_int8 ready:', await grpc.modelReady('orders_int8'));

  // REST, tensors in the binary extension.
  const viaRest = await http.infer({ model: 'orders_int8', inputs: [input] });
  console.log('REST  int8:', viaRest.outputs[0]!.data[0]);

  // gRPC with request parameters: priority (1 is highest) and a queue timeout in µs.
  const urgent = await grpc.infer({ model: 'orders', inputs: [input], parameters: { priority: 1, timeout: 20000 } });
  console.log('gRPC  fp32:', urgent.outputs[0]!.data[0]);

  // A bidirectional stream: answers are matched to requests by id.
  const stream = grpc.openStream();
  const answers = await Promise.all([1, 2, 3].map(() => stream.send({ model: 'orders', inputs: [input] })));
  stream.end();
  console.log(
    'stream:',
    answers.map((a) => a.outputs[0]!.data[0]),
  );

  // Triton's statistics: inference_count counts rows, execution_count the batches they ran in.
  for (const s of await grpc.modelStatistics('orders'))
    console.log(`orders v${s.version}: ${s.inference_count} rows in ${s.execution_count} executions`);
  await grpc.unloadModel('orders_int8');
} finally {
  grpc.close();
}
