/**
 * gRPC message cases: a valid request of each RPC, encoded with protobufjs from the service's
 * .proto, then mutated at the wire level (or, for ModelInfer, in its fields' values) and sent as
 * raw bytes through a real @grpc/grpc-js client (unary, and ModelStreamInfer as a stream). An
 * error must carry its maas-error-code and must not be INTERNAL or UNKNOWN. Under access control
 * (`--auth valid`) the call carries the token in its `authorization` metadata.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { packageRoot } from '../../src/core/package-root.js';
import { mutateMessage } from '../protobuf.js';
import { type Rng } from '../random.js';
import type { NetworkClass, Verdict } from '../report.js';
import {
  GRPC_SERVICE,
  OPEN_RPCS,
  UNAUTHENTICATED_CODE,
  noAccessSeen,
  type AccessSeen,
  type AccessVerdict,
} from './auth.js';
import { PROBE_INPUT, PROBE_MODEL, PROBE_WIDTH } from './models.js';
import { mutateConfig } from './config.js';

const SERVICE = GRPC_SERVICE;

let root: protobuf.Root | null = null;

/** The .proto's message types, loaded once. */
export function protoType(name: string): protobuf.Type {
  if (!root) {
    root = new protobuf.Root();
    const dir = join(packageRoot(), 'proto');
    root.resolvePath = (_origin, target) => join(dir, target.replace(/.*[\\/]/, ''));
    root.loadSync('grpc_service.proto', { keepCase: true });
  }
  return root.lookupType(`inference.${name}`);
}

/** A gRPC case: the RPC and the request messages (several only for the stream). */
export interface GrpcCase {
  target: 'grpc-message';
  description: string;
  method: string;
  messages: Buffer[];
  /** A model load: slow work by nature, given the load deadline instead of the request deadline. */
  loads: boolean;
  /** The `authorization` metadata the call carries (absent: none). */
  authorization?: string;
}

interface Seed {
  method: string;
  type: string;
  message: Record<string, unknown>;
}

const RAW = Buffer.from(PROBE_INPUT.buffer, PROBE_INPUT.byteOffset, PROBE_INPUT.byteLength);
const INFER: Record<string, unknown> = {
  model_name: PROBE_MODEL,
  model_version: '1',
  id: 'fuzz',
  parameters: { priority: { int64_param: 1 }, binary_data_output: { bool_param: true } },
  inputs: [{ name: 'input', datatype: 'FP32', shape: [2, PROBE_WIDTH], parameters: { x: { string_param: 'y' } } }],
  outputs: [{ name: 'output' }],
  raw_input_contents: [RAW],
};
const TYPED_INFER: Record<string, unknown> = {
  model_name: PROBE_MODEL,
  inputs: [
    { name: 'input', datatype: 'FP32', shape: [2, PROBE_WIDTH], contents: { fp32_contents: Array.from(PROBE_INPUT) } },
  ],
};
const CONVERT_INFER: Record<string, unknown> = {
  model_name: 'convert',
  inputs: [{ name: 'input', datatype: 'INT64', shape: [1, PROBE_WIDTH], contents: { int64_contents: [1, -2, 3, 4] } }],
};

const SEEDS: readonly (readonly [Seed, number])[] = [
  [{ method: 'ModelInfer', type: 'ModelInferRequest', message: INFER }, 8],
  [{ method: 'ModelInfer', type: 'ModelInferRequest', message: TYPED_INFER }, 4],
  [{ method: 'ModelInfer', type: 'ModelInferRequest', message: CONVERT_INFER }, 3],
  [{ method: 'ModelStreamInfer', type: 'ModelInferRequest', message: INFER }, 4],
  [{ method: 'ModelMetadata', type: 'ModelMetadataRequest', message: { name: PROBE_MODEL, version: '1' } }, 1],
  [{ method: 'ModelReady', type: 'ModelReadyRequest', message: { name: PROBE_MODEL, version: '1' } }, 1],
  [{ method: 'ModelConfig', type: 'ModelConfigRequest', message: { name: PROBE_MODEL, version: '1' } }, 1],
  [{ method: 'ModelStatistics', type: 'ModelStatisticsRequest', message: { name: PROBE_MODEL, version: '1' } }, 1],
  [{ method: 'RepositoryIndex', type: 'RepositoryIndexRequest', message: { ready: true } }, 1],
  [
    {
      method: 'RepositoryModelLoad',
      type: 'RepositoryModelLoadRequest',
      message: { model_name: 'scratch', parameters: { config: { string_param: '{"max_batch_size":4}' } } },
    },
    1,
  ],
  [{ method: 'RepositoryModelUnload', type: 'RepositoryModelUnloadRequest', message: { model_name: 'scratch' } }, 1],
  [{ method: 'ServerMetadata', type: 'ServerMetadataRequest', message: {} }, 1],
  [{ method: 'ServerReady', type: 'ServerReadyRequest', message: {} }, 1],
];

function encode(type: string, message: Record<string, unknown>): Buffer {
  const t = protoType(type);
  return Buffer.from(t.encode(t.fromObject(message)).finish());
}

/** Value-level edits of an inference request: what a decodable but wrong request looks like. */
const INFER_EDITS: readonly ((rng: Rng, m: Record<string, unknown>, input: Record<string, unknown>) => string)[] = [
  (rng, _m, input) => {
    input.datatype = rng.pick([
      '',
      'fp32',
      'FP16',
      'BF16',
      'BOOL',
      'INT64',
      'UINT64',
      'BYTES',
      'constructor',
      'toString',
      'X'.repeat(10_000),
    ]);
    return `datatype ${String(input.datatype).slice(0, 12)}`;
  },
  (rng, _m, input) => {
    input.shape = rng.pick([
      [],
      [0, 4],
      [-1, 4],
      [2],
      [8],
      [2, 4, 1],
      [2 ** 40, 4],
      ['9223372036854775807', 4],
      [2, -4],
      new Array<number>(5000).fill(1),
    ]);
    return `shape ${JSON.stringify(input.shape).slice(0, 30)}`;
  },
  (rng, _m, input) => {
    delete input[rng.pick(['name', 'datatype', 'shape'])];
    return 'a field of the input left out';
  },
  (rng, m) => {
    m.parameters = {
      [rng.pick(['priority', 'timeout', 'binary_data_output', 'sequence_id'])]: rng.pick([
        { int64_param: -1 },
        { int64_param: '9223372036854775807' },
        { uint64_param: '18446744073709551615' },
        { double_param: 1.5 },
        { double_param: NaN },
        { string_param: 'x' },
        { string_param: '99999999999999999999' },
        { bool_param: true },
        {},
      ]),
    };
    return 'request parameter';
  },
  (rng, m) => {
    m.raw_input_contents = rng.pick([
      [],
      [Buffer.alloc(0)],
      [RAW, RAW],
      [RAW.subarray(0, 31)],
      [Buffer.alloc(2 * 2 ** 20)],
    ]);
    return `raw_input_contents ×${(m.raw_input_contents as Buffer[]).length}`;
  },
  (rng, _m, input) => {
    input.contents = rng.pick([
      { fp32_contents: [1, 2] },
      { int64_contents: [1, 2, 3, 4, 5, 6, 7, 8] },
      { bool_contents: new Array<boolean>(8).fill(true), fp32_contents: [1] },
      { bytes_contents: [Buffer.from('abc')] },
      { fp32_contents: new Array<number>(2 * 2 ** 18).fill(0) },
    ]);
    return 'typed contents';
  },
  (rng, m) => {
    m.model_name = rng.pick([
      '',
      'nope',
      '..',
      '../probe',
      'probe\u0000',
      'P'.repeat(100_000),
      'constructor',
      '__proto__',
    ]);
    m.model_version = rng.pick(['', '0', '-1', '1.0', '99999999999999999999', 'x']);
    return `model '${String(m.model_name).slice(0, 10)}' version '${String(m.model_version)}'`;
  },
  (rng, m) => {
    const count = rng.pick([0, 2, 1000]);
    m.inputs = new Array<unknown>(count).fill((m.inputs as unknown[])[0]);
    m.outputs = rng.pick([[], [{ name: 'nope' }], new Array<unknown>(1000).fill({ name: 'output' })]);
    return `${count} inputs`;
  },
];

/** The model name a request names in a load or unload, so no case unloads the probe model. */
function namesProbe(seed: Seed, bytes: Buffer): boolean {
  if (!seed.method.startsWith('RepositoryModel')) return false;
  try {
    return (protoType(seed.type).decode(bytes) as unknown as { model_name?: string }).model_name === PROBE_MODEL;
  } catch {
    return false;
  }
}

/** grpc-message: one RPC's request, mutated; the call carries `authorization` when given. */
export function grpcMessageCase(rng: Rng, authorization?: string): GrpcCase {
  const seed = rng.weighted(SEEDS);
  const count = seed.method === 'ModelStreamInfer' ? rng.between(1, 3) : 1;
  const messages: Buffer[] = [];
  const steps: string[] = [];
  for (let i = 0; i < count; i++) {
    let bytes: Buffer;
    let what: string;
    do {
      if (seed.method === 'RepositoryModelLoad' && rng.chance(0.5)) {
        const config = mutateConfig(rng);
        bytes = encode(seed.type, { model_name: 'scratch', parameters: { config: { string_param: config.text } } });
        what = `config ${config.what}`;
      } else if (seed.type === 'ModelInferRequest' && rng.chance(0.35)) {
        const message = structuredClone(seed.message);
        const input = ((message.inputs as Record<string, unknown>[])[0] ??= {});
        what = rng.pick(INFER_EDITS)(rng, message, input);
        bytes = encode(seed.type, message);
      } else {
        const mutated = mutateMessage(rng, encode(seed.type, seed.message));
        bytes = mutated.data;
        what = mutated.what;
      }
    } while (namesProbe(seed, bytes));
    messages.push(bytes);
    steps.push(what);
  }
  return {
    target: 'grpc-message',
    description: `${seed.method}: ${steps.join(' / ')}`,
    method: seed.method,
    messages,
    loads: seed.method === 'RepositoryModelLoad',
    ...(authorization === undefined ? {} : { authorization }),
  };
}

const identity = (b: Buffer) => b;

/** The verdict on a call's final status. */
function judgeStatus(error: grpc.ServiceError | null): Verdict<NetworkClass> | null {
  if (!error) return null;
  const code = error.metadata?.get('maas-error-code')[0];
  if (error.code === grpc.status.DEADLINE_EXCEEDED) return { class: 'hang', detail: 'no answer by the deadline' };
  if (error.code === grpc.status.INTERNAL || error.code === grpc.status.UNKNOWN)
    return { class: 'uncoded', detail: `${grpc.status[error.code]}: ${error.details}` };
  if (typeof code === 'string') return { class: 'refused' };
  // A status grpc-js set itself (UNAVAILABLE for a dropped connection, RESOURCE_EXHAUSTED past
  // the message limit): a refusal in the protocol's terms, before maas saw the request.
  return { class: error.code === grpc.status.UNAVAILABLE ? 'closed' : 'refused' };
}

/**
 * What a call's end shows about access: served (an OK status or any answer message, for an RPC
 * that is not open), or refused for its credentials (UNAUTHENTICATED, with its maas code or not).
 */
function grpcAccess(
  method: string,
  code: grpc.status,
  metadata: grpc.Metadata | undefined,
  answers: number,
): AccessSeen {
  const seen = noAccessSeen();
  if ((code === grpc.status.OK || answers > 0) && !OPEN_RPCS.has(method))
    seen.served.push(`${method}: status ${grpc.status[code] ?? code}, ${answers} answer message(s)`);
  if (code === grpc.status.UNAUTHENTICATED) {
    const maas = metadata?.get('maas-error-code')[0];
    if (maas === UNAUTHENTICATED_CODE) seen.denied++;
    else seen.uncoded = `UNAUTHENTICATED with maas-error-code ${typeof maas === 'string' ? maas : '(none)'}`;
  }
  return seen;
}

/** The call's metadata: the token, when the case carries one. */
function metadataOf(c: GrpcCase): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (c.authorization !== undefined) metadata.set('authorization', c.authorization);
  return metadata;
}

/** Sends a case through `client` and judges the answer (with what it showed about access control). */
export function runGrpcCase(client: grpc.Client, c: GrpcCase, deadlineMs: number): Promise<AccessVerdict> {
  const path = SERVICE + c.method;
  const deadline = Date.now() + deadlineMs;
  if (c.method !== 'ModelStreamInfer') {
    return new Promise((resolve) => {
      client.makeUnaryRequest(path, identity, identity, c.messages[0]!, metadataOf(c), { deadline }, (error, value) =>
        resolve({
          ...(judgeStatus(error) ?? { class: 'answered' }),
          access: grpcAccess(c.method, error ? error.code : grpc.status.OK, error?.metadata, value ? 1 : 0),
        }),
      );
    });
  }
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, identity, identity, metadataOf(c), { deadline });
    const answers: Buffer[] = [];
    call.on('data', (answer: Buffer) => answers.push(answer));
    call.on('error', () => {}); // the status says it
    call.on('status', (status: grpc.StatusObject) => {
      const access = grpcAccess(c.method, status.code, status.metadata, answers.length);
      const failed =
        status.code === grpc.status.OK ? null : judgeStatus(Object.assign(new Error(status.details), status));
      if (failed) return resolve({ ...failed, access });
      resolve({ ...judgeStreamAnswers(answers), access });
    });
    for (const m of c.messages) call.write(m);
    call.end();
  });
}

/** Stream answers: an error is a message on the stream; one from an uncaught bug reads "internal error". */
function judgeStreamAnswers(answers: Buffer[]): Verdict<NetworkClass> {
  const type = protoType('ModelStreamInferResponse');
  let refused = false;
  for (const answer of answers) {
    const { error_message: message } = type.decode(answer) as unknown as { error_message?: string };
    if (message?.startsWith('internal error')) return { class: 'uncoded', detail: `stream answer: ${message}` };
    if (message) refused = true;
  }
  return { class: refused ? 'refused' : 'answered' };
}
