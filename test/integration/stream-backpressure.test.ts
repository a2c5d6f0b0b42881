/**
 * ModelStreamInfer under a client that writes faster than it reads: a real grpc-js client writes
 * 10 000 requests without reading an answer; the server's requests in flight on the stream stay at
 * its cap and it stops serving the stream (it no longer reads it) until the client reads, and then
 * every answer arrives. Errors, including requests refused on the wire, are answers on the stream.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeInferRequest } from '../../src/client/grpc.js';
import { inferenceService } from '../../src/protocol/grpc.js';
import type { RunningServer } from '../../src/serving/server.js';
import type { Sequential } from '../../src/index.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 8;
const CAP = 16;
const REQUESTS = 10_000;
let server: RunningServer;
let model: Sequential;

interface StreamAnswer {
  error_message: string;
  infer_response: { id: string; raw_output_contents: Buffer[] };
}

beforeAll(async () => {
  const root = await tempRepository();
  model = smallModel(WIDTH, 2, 31);
  await addVersion(root, 'm', 1, model, { max_batch_size: 64, dynamic_batching: {} });
  server = await startServer(root, { maxInFlightPerStream: CAP });
});
afterAll(() => server?.close());

/** One value of the server's /metrics, summed over its label sets. */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(' ').pop());
  return sum;
}

function openRawStream(): { client: grpc.Client; call: grpc.ClientDuplexStream<object, StreamAnswer> } {
  const Service = inferenceService();
  const client = new Service(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
  const call = (
    client as unknown as { ModelStreamInfer: () => grpc.ClientDuplexStream<object, StreamAnswer> }
  ).ModelStreamInfer();
  return { client, call };
}

const request = (id: string, x: Float32Array) =>
  encodeInferRequest({ model: 'm', id, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x }] });

describe('ModelStreamInfer backpressure', () => {
  it(
    'holds at most the cap in flight while the client reads nothing, then answers all 10 000',
    { timeout: 120_000 },
    async () => {
      const { client, call } = openRawStream();
      try {
        const xs = Array.from({ length: 8 }, (_, i) => inputs(1, WIDTH, 900 + i));
        const answers = new Map<string, StreamAnswer>();
        const ended = new Promise<void>((resolve, reject) => {
          call.on('end', () => resolve());
          call.on('error', reject);
        });
        // A reader that has stopped: grpc-js reads ahead 16 answers, then leaves the rest to HTTP/2
        // flow control. (A call nobody ever reads is different: grpc-js then takes every answer into
        // the client's memory, and the server cannot tell it from a fast reader.)
        call.on('data', (answer: StreamAnswer) => answers.set(answer.infer_response.id, answer));
        call.pause();
        // The client's own buffer takes what the server does not read: write() is not waited on here.
        for (let i = 0; i < REQUESTS; i++) call.write(request(`r${i}`, xs[i % xs.length]!));
        call.end();

        // Sample until the server stops making progress on the stream (it stopped reading it).
        let maxInFlight = 0;
        let served = -1;
        let unchanged = 0;
        while (unchanged < 8) {
          await new Promise((r) => setTimeout(r, 100));
          maxInFlight = Math.max(maxInFlight, await metric('maas_grpc_stream_requests_in_flight'));
          const now = await metric('nv_inference_request_success');
          unchanged = now === served && now > 0 ? unchanged + 1 : 0;
          served = now;
        }
        expect(maxInFlight).toBeGreaterThan(0);
        expect(maxInFlight).toBeLessThanOrEqual(CAP);
        // Without backpressure the server would read and serve all of them, buffering the answers.
        expect(served).toBeLessThan(REQUESTS / 2);

        expect(answers.size).toBe(0);
        call.resume();
        await ended;
        expect(answers.size).toBe(REQUESTS);
        for (let i = 0; i < REQUESTS; i += 997) {
          const answer = answers.get(`r${i}`)!;
          expect(answer.error_message).toBe('');
          const raw = answer.infer_response.raw_output_contents[0]!;
          const y = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
          const want = model.predict(xs[i % xs.length]!.slice()).values;
          for (let j = 0; j < want.length; j++) expect(Math.abs(y[j]! - want[j]!)).toBeLessThanOrEqual(1e-6);
        }
        expect(await metric('maas_grpc_stream_requests_in_flight')).toBe(0);
      } finally {
        client.close();
      }
    },
  );

  it('answers refused and failing requests on the stream and keeps serving it', async () => {
    const { client, call } = openRawStream();
    try {
      const answers: StreamAnswer[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on('data', (answer: StreamAnswer) => answers.push(answer));
        call.on('end', () => resolve());
        call.on('error', reject);
      });
      // Thirteen bools for a [1, 8] tensor: refused while still bytes (the model is not even looked up).
      call.write({
        model_name: 'no-such-model',
        id: 'counted',
        inputs: [
          { name: 'input', datatype: 'BOOL', shape: [1, WIDTH], contents: { bool_contents: Array(13).fill(true) } },
        ],
      });
      call.write(
        encodeInferRequest({
          model: 'm',
          id: 'shape',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: new Float32Array(3) }],
        }),
      );
      call.write(request('good', inputs(1, WIDTH, 5)));
      call.end();
      await ended;
      const byId = new Map(answers.map((a) => [a.infer_response.id, a.error_message]));
      expect(byId.get('counted')).toBe("unexpected number of elements 13 for input 'input', expecting 8");
      expect(byId.get('shape')).toMatch(/unexpected shape for input 'input'/);
      expect(byId.get('good')).toBe('');
    } finally {
      client.close();
    }
  });
});
