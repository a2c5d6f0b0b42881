/**
 * Secure serving: a token file with a token limited to one model, TLS from certificate files,
 * and both clients calling with the token over TLS; a call without the token is refused.
 * (Bring your own certificate and key: `openssl req -x509 -newkey ec -pkeyopt
 * ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost
 * -keyout key.pem -out cert.pem -days 30` makes a self-signed pair that is its own CA.)
 *
 *   npx tsx docs/examples/secure-serving.ts CERT.pem KEY.pem
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import {
  GrpcInferenceClient,
  HttpInferenceClient,
  type InferenceServerError,
  addTokenRecord,
  createToken,
  dense,
  sequential,
  serve,
} from 'maas';

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) throw new Error('usage: secure-serving.ts CERT.pem KEY.pem');
const OUT = 'docs/examples/out/secure';
await rm(OUT, { recursive: true, force: true });
await mkdir(OUT, { recursive: true });

// A model to serve.
const model = sequential({ layers: [dense({ units: 1, activation: 'sigmoid', inputShape: [3] })] });
await model.save(`${OUT}/repo/scores/1`);

// What `maas token create --scope infer --scope metadata --models scores --token-file …` does.
const { token, record } = await createToken({ name: 'reporting', scopes: ['infer', 'metadata'], models: ['scores'] });
await addTokenRecord(`${OUT}/tokens.json`, record);

const server = await serve({
  modelRepository: `${OUT}/repo`,
  grpcPort: 0,
  httpPort: 0,
  metricsPort: 0,
  tls: { certFile, keyFile },
  tokenFile: `${OUT}/tokens.json`,
  auditLog: `${OUT}/audit.jsonl`,
  logLevel: 'warn',
});
const ca = await readFile(certFile); // self-signed: the certificate is its own CA
const request = {
  model: 'scores',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: new Float32Array([0.2, -0.4, 0.9]) }],
};

const grpc = new GrpcInferenceClient(`localhost:${server.grpcPort}`, { tls: { ca }, token });
const rest = new HttpInferenceClient(`https://localhost:${server.httpPort}`, { tls: { ca }, token });
console.log('gRPC', (await grpc.infer(request)).outputs[0]!.data);
console.log('REST', (await rest.infer(request)).outputs[0]!.data);

const anonymous = new HttpInferenceClient(`https://localhost:${server.httpPort}`, { tls: { ca } });
console.log('live without a token:', await anonymous.serverLive());
await anonymous
  .infer(request)
  .catch((e: InferenceServerError) => console.log('infer without a token:', e.status, e.message));
await rest
  .modelMetadata('another')
  .catch((e: InferenceServerError) => console.log('another model:', e.status, e.message));

grpc.close();
await rest.close();
await anonymous.close();
await server.close();
console.log((await readFile(`${OUT}/audit.jsonl`, 'utf8')).trim());
