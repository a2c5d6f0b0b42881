/**
 * Getting started, step 3: ask the running server about "orders" and score two new orders over
 * gRPC. The server takes the prepared numeric features, so the client prepares the raw rows with
 * the pipeline saved in model.json (reading it loads no native code).
 *
 *   npx tsx docs/examples/client-grpc.ts [host:port]
 */
import { readFile } from 'node:fs/promises';
import { GrpcInferenceClient, Pipeline } from 'maas';

const modelJson = JSON.parse(await readFile('docs/examples/out/repo/orders/1/model.json', 'utf8')) as {
  maas: { preparation: unknown };
};
const pipeline = Pipeline.fromJSON(modelJson.maas.preparation);

const orders = [
  { price: 120, category: 'clothing', shipping_days: 8, rating: 2 },
  { price: 9.5, category: 'books', shipping_days: 2, rating: null }, // a missing rating is filled
];
const x = pipeline.transform(orders);

const client = new GrpcInferenceClient(process.argv[2] ?? 'localhost:8001');
try {
  console.log('ready:', await client.modelReady('orders'));
  const result = await client.infer({
    model: 'orders',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [orders.length, pipeline.width], data: x }],
  });
  const p = result.outputs[0]!.data as Float32Array; // one probability per order
  orders.forEach((o, i) => console.log(`${o.category} at ${o.price}: P(returned) = ${p[i]!.toFixed(3)}`));
} finally {
  client.close();
}
