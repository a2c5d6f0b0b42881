/**
 * What the fuzzer found on the gRPC port, pinned: a message that is not valid protobuf, and fields
 * a message leaves out, answer INVALID_ARGUMENT with their maas-error-code (they were grpc-js's
 * INTERNAL "Error deserializing request", and a TypeError), on unary calls and on the stream.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/core/package-root.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 4;
let server: RunningServer;
let client: grpc.Client;

beforeAll(async () => {
  const root = await tempRepository();
  await addVersion(root, 'm', 1, smallModel(WIDTH, 2, 5));
  server = await startServer(root, { modelControlMode: 'explicit', loadModels: ['*'] });
  client = new grpc.Client(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const proto = new protobuf.Root();
proto.resolvePath = (_origin, target) => join(packageRoot(), 'proto', target.replace(/.*[\\/]/, ''));
proto.loadSync('grpc_service.proto', { keepCase: true });
const protoType = (name: string) => proto.lookupType(`inference.${name}`);

/** A unary call with raw bytes; resolves with its status and maas-error-code. */
function unary(method: string, bytes: Buffer): Promise<{ code: grpc.status; details: string; maas?: unknown }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/inference.GRPCInferenceService/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (error) =>
        resolve(
          error
            ? { code: error.code, details: error.details, maas: error.metadata.get('maas-error-code')[0] }
            : { code: grpc.status.OK, details: '' },
        ),
    );
  });
}

function encode(type: string, message: object): Buffer {
  const t = protoType(type);
  return Buffer.from(t.encode(t.fromObject(message)).finish());
}

describe('gRPC: malformed messages answer INVALID_ARGUMENT with their code', () => {
  it('a message that is not valid protobuf (it was grpc-js INTERNAL "Error deserializing request")', async () => {
    // Field 7 (raw_input_contents) declaring 2^32-1 bytes that are not there.
    const truncated = Buffer.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    for (const method of ['ModelInfer', 'ModelMetadata', 'RepositoryModelLoad']) {
      const answer = await unary(method, truncated);
      expect(answer).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, maas: 'MAAS_ERR_GRPC_MESSAGE' });
      expect(answer.details).toMatch(new RegExp(`Expected a ${method} request message in protobuf encoding`));
    }
  });

  it('an input without a datatype, or a load without a model name (once a TypeError: INTERNAL)', async () => {
    const raw = Buffer.alloc(4 * WIDTH);
    const noDatatype = encode('ModelInferRequest', {
      model_name: 'm',
      inputs: [{ name: 'input', shape: [1, WIDTH] }],
      raw_input_contents: [raw],
    });
    expect(await unary('ModelInfer', noDatatype)).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      maas: 'MAAS_ERR_INFER_DATATYPE',
    });
    expect(await unary('RepositoryModelLoad', encode('RepositoryModelLoadRequest', {}))).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      maas: 'MAAS_ERR_MODEL_UNKNOWN',
    });
  });

  it('on the stream, an undecodable message is an error answer, and the stream goes on', async () => {
    const call = client.makeBidiStreamRequest(
      '/inference.GRPCInferenceService/ModelStreamInfer',
      (b: Buffer) => b,
      (b: Buffer) => b,
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
    );
    const answers: string[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (b: Buffer) =>
      answers.push(
        (protoType('ModelStreamInferResponse').decode(b) as unknown as { error_message: string }).error_message,
      ),
    );
    call.on('error', () => {});
    call.write(Buffer.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    const x = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
    call.write(
      encode('ModelInferRequest', {
        model_name: 'm',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH] }],
        raw_input_contents: [x],
      }),
    );
    call.end();
    expect((await ended).code).toBe(grpc.status.OK);
    expect(answers).toHaveLength(2);
    expect(
      answers.filter((m) => /Expected a ModelStreamInfer request message in protobuf encoding/.test(m)),
    ).toHaveLength(1);
    expect(answers.filter((m) => m === '')).toHaveLength(1);
  });
});
