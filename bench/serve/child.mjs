/**
 * A server process for the serving bench, run from the built package (dist/) as `npm start` runs:
 * `echo` (a bare @grpc/grpc-js server answering ModelInfer with a response of the model's size:
 * the transport ceiling), `maas` (serve() on a repository, gRPC) or `maas-http` (the same, REST). Prints `READY <port>` when
 * listening; answers `rss` messages over IPC.
 */
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { inferenceService } from '../../dist/src/protocol/grpc.js';
import { serve } from '../../dist/src/serving/server.js';

const [mode, arg, workers] = process.argv.slice(2);

async function startEcho(outputFloats) {
  const response = {
    model_name: 'echo',
    model_version: '1',
    outputs: [{ name: 'output', datatype: 'FP32', shape: [1, outputFloats] }],
    raw_output_contents: [Buffer.alloc(outputFloats * 4)],
  };
  // The same server options as maas's gRPC endpoint.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 2 ** 31 - 1,
    'grpc.max_send_message_length': 2 ** 31 - 1,
    'grpc.enable_channelz': 0,
  });
  const handlers = {};
  for (const name of Object.keys(inferenceService().service))
    handlers[name] = (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED });
  // The request is decoded as maas decodes it; the answer has the size of maas's answer.
  handlers.ModelInfer = (call, callback) => callback(null, { ...response, id: call.request.id ?? '' });
  server.addService(inferenceService().service, handlers);
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) =>
      e ? reject(e) : resolve(port),
    ),
  );
}

let port;
if (mode === 'echo') port = await startEcho(Number(arg));
else {
  // `maas` serves gRPC; `maas-http` the same repository over REST.
  const rest = mode === 'maas-http';
  const server = await serve({
    modelRepository: arg,
    host: '127.0.0.1',
    grpcPort: rest ? null : 0,
    httpPort: rest ? 0 : null,
    metricsPort: null,
    workers: Number(workers),
    logger: pino({ level: 'warn' }),
  });
  port = rest ? server.httpPort : server.grpcPort;
}
// RSS as it is, and after a full GC (the loader's transient copies of the weights, the file's bytes
// and the layers' arrays, are garbage once the packed SharedArrayBuffer exists).
process.on('message', (message) => {
  if (message !== 'rss') return;
  const rss = process.memoryUsage().rss;
  globalThis.gc?.();
  globalThis.gc?.();
  process.send({ rss, rssAfterGc: process.memoryUsage().rss });
});
console.log(`READY ${port}`);
