/**
 * The gRPC adapter: inference.GRPCInferenceService over @grpc/grpc-js. Each handler decodes,
 * calls the DataPlane once, encodes, and always answers; `toGrpcError` is the one error mapping.
 */
import {
  DEFAULT_CONNECTION_IDLE_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_STREAMS_PER_CONNECTION,
} from '../../protocol/limits.js';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { MaasError, messageOf, type ErrorKind } from '../../core/errors.js';
import {
  CONTENTS_FIELD,
  fromWireParameters,
  inferenceService,
  type WireContents,
  type WireParameter,
} from '../../protocol/grpc.js';

import { Cancellation, type DataPlane, type InferInput, type InferRequest, type InferResponse } from '../dataplane.js';

/** gRPC status per error kind. */
const STATUS: Record<ErrorKind, grpc.status> = {
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  NotFound: grpc.status.NOT_FOUND,
  Unavailable: grpc.status.UNAVAILABLE,
  ResourceExhausted: grpc.status.RESOURCE_EXHAUSTED,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  Unauthenticated: grpc.status.UNAUTHENTICATED,
  PermissionDenied: grpc.status.PERMISSION_DENIED,
  Cancelled: grpc.status.CANCELLED,
  Internal: grpc.status.INTERNAL,
};

/**
 * Longest status message sent. grpc-message travels in a trailer, and a message echoing a
 * client's 200 KB model name would pass HTTP/2's header limit: the call would never be answered.
 */
export const MAX_STATUS_MESSAGE_CHARS = 4096;

function clip(message: string): string {
  return message.length > MAX_STATUS_MESSAGE_CHARS ? `${message.slice(0, MAX_STATUS_MESSAGE_CHARS - 1)}…` : message;
}

/** The one mapping from maas errors to gRPC statuses; the code travels in `maas-error-code`. */
export function toGrpcError(error: unknown): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (error instanceof MaasError) {
    metadata.set('maas-error-code', error.code);
    return { code: STATUS[error.kind], details: clip(error.message), metadata };
  }
  return {
    code: grpc.status.INTERNAL,
    details: clip(`internal error: ${messageOf(error)}`),
    metadata,
  };
}

/** Where a request message that did not decode carries its error to the handler. */
const UNDECODABLE = Symbol('undecodable request');

/**
 * The service with every request decoder made total: a message that is not valid protobuf
 * becomes a coded INVALID_ARGUMENT its handler answers, not grpc-js's uncoded INTERNAL.
 */
function withCodedDecodeErrors(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const methods = Object.entries(definition).map(([name, method]) => {
    const requestDeserialize = (bytes: Buffer): unknown => {
      try {
        return method.requestDeserialize(bytes);
      } catch (error) {
        return {
          [UNDECODABLE]: new MaasError(
            'MAAS_ERR_GRPC_MESSAGE',
            `Expected a ${name} request message in protobuf encoding but decoding its ${bytes.length} bytes failed: ${messageOf(error)}`,
          ),
        };
      }
    };
    return [name, { ...method, requestDeserialize }];
  });
  return Object.fromEntries(methods) as grpc.ServiceDefinition;
}

/** The request a handler works on; throws the decode error for one that did not decode. */
function decoded<Request>(request: Request): Request {
  const failure = (request as { [UNDECODABLE]?: MaasError } | null)?.[UNDECODABLE];
  if (failure) throw failure;
  return request;
}

/** A ModelInferRequest as proto-loader decodes it: a field the message left out is absent. */
interface WireInferRequest {
  model_name?: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, WireParameter>;
  inputs?: {
    name?: string;
    datatype?: string;
    shape?: number[];
    parameters?: Record<string, WireParameter>;
    contents?: WireContents;
  }[];
  outputs?: { name?: string; parameters?: Record<string, WireParameter> }[];
  raw_input_contents?: Buffer[];
}

/** A ModelInferRequest off the wire, as the DataPlane takes it. */
export function decodeInferRequest(message: WireInferRequest): InferRequest {
  const raw = message.raw_input_contents ?? [];
  const inputs = message.inputs ?? [];
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `expected ${inputs.length} raw_input_contents (one per input) but received ${raw.length}`,
    );
  }
  const tensors = inputs.map((input, i): InferInput => {
    const tensor: InferInput = {
      // proto3: an absent string is the empty string (proto-loader leaves it undefined).
      name: input.name ?? '',
      datatype: input.datatype ?? '',
      shape: input.shape ?? [],
      parameters: fromWireParameters(input.parameters),
    };
    const contents = input.contents;
    const typedFields = contents
      ? (Object.keys(contents) as (keyof WireContents)[]).filter((k) => (contents[k]?.length ?? 0) > 0)
      : [];
    if (raw.length > 0) {
      if (typedFields.length > 0)
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `input '${tensor.name}' has both raw_input_contents and typed contents (${typedFields.join(', ')}); send one of them`,
        );
      tensor.raw = raw[i]!;
    } else if (typedFields.length > 0) {
      const field = CONTENTS_FIELD[tensor.datatype];
      if (typedFields.length !== 1 || typedFields[0] !== field) {
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `Expected ${tensor.datatype} data in ${field ?? 'raw_input_contents'} for input '${tensor.name}' but received ${typedFields.join(', ')}`,
        );
      }
      tensor.values = contents![field!]!;
    } else {
      // An input with no typed values: zero elements of typed contents (checked against the shape by the DataPlane).
      tensor.values = [];
    }
    return tensor;
  });
  return {
    model: message.model_name ?? '',
    version: message.model_version || undefined,
    id: message.id || undefined,
    parameters: fromWireParameters(message.parameters),
    inputs: tensors,
    outputs: (message.outputs ?? []).map((o) => ({ name: o.name ?? '', parameters: fromWireParameters(o.parameters) })),
  };
}

/** A response onto the wire: outputs in raw_output_contents, as Triton (and tritonclient) do. */
export function encodeInferResponse(response: InferResponse): object {
  return {
    model_name: response.model,
    model_version: response.version,
    id: response.id ?? '',
    outputs: response.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
    raw_output_contents: response.outputs.map((o) => Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength)),
  };
}

/** The request messages of the unary RPCs, as proto-loader decodes them (a field left out is absent). */
interface ModelRef {
  name?: string;
  version?: string;
}
interface RepositoryIndexRequest {
  ready?: boolean;
}
interface RepositoryModelRequest {
  model_name?: string;
  parameters?: Record<string, WireParameter>;
}

/** A unary handler that always answers, with a mapped error when the work throws. */
function unary<Request>(work: (request: Request) => unknown): grpc.handleUnaryCall<Request, unknown> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => work(decoded(call.request)))
      .then(
        (reply) => callback(null, reply),
        (error: unknown) => callback(toGrpcError(error)),
      );
  };
}

/** A cancelled or deadline-exceeded call cancels its request while it is still queued. */
function cancelOnCancel(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
): Cancellation {
  const cancellation = new Cancellation();
  call.once('cancelled', () => cancellation.abort());
  return cancellation;
}

/** Every RPC of the service, bound to one DataPlane. */
export function grpcHandlers(dataplane: DataPlane, logger: Logger): grpc.UntypedServiceImplementation {
  return {
    ServerLive: unary(() => ({ live: dataplane.live() })),
    ServerReady: unary(() => ({ ready: dataplane.ready() })),
    ModelReady: unary((r: ModelRef) => ({ ready: dataplane.modelReady(r.name ?? '', r.version || undefined) })),
    ServerMetadata: unary(() => dataplane.serverMetadata()),
    ModelMetadata: unary((r: ModelRef) => dataplane.modelMetadata(r.name ?? '', r.version || undefined)),
    ModelConfig: unary((r: ModelRef) => ({ config: dataplane.modelConfig(r.name ?? '', r.version || undefined) })),
    ModelStatistics: unary((r: ModelRef) => ({
      model_stats: dataplane.modelStatistics(r.name || undefined, r.version || undefined),
    })),
    RepositoryIndex: unary(async (r: RepositoryIndexRequest) => ({
      models: await dataplane.repositoryIndex(Boolean(r.ready)),
    })),
    RepositoryModelLoad: unary(async (r: RepositoryModelRequest) => {
      // ModelRepositoryParameter is a oneof like InferParameter (plus bytes_param): read the same way.
      await dataplane.loadModel(r.model_name ?? '', fromWireParameters(r.parameters) ?? {});
      return {};
    }),
    RepositoryModelUnload: unary(async (r: RepositoryModelRequest) => {
      await dataplane.unloadModel(r.model_name ?? '');
      return {};
    }),
    ModelInfer: (call: grpc.ServerUnaryCall<WireInferRequest, object>, callback: grpc.sendUnaryData<object>) => {
      let answer: Promise<InferResponse>;
      try {
        answer = dataplane.infer(decodeInferRequest(decoded(call.request)), cancelOnCancel(call));
      } catch (error) {
        callback(toGrpcError(error));
        return;
      }
      answer.then(
        (response) => callback(null, encodeInferResponse(response)),
        (error: unknown) => callback(toGrpcError(error)),
      );
    },
    // Each request answers in order of completion; an error is a message on the stream, not its end.
    ModelStreamInfer: (call: grpc.ServerDuplexStream<WireInferRequest, object>) => {
      const cancellation = cancelOnCancel(call);
      let pending = 0;
      let ended = false;
      const finish = () => {
        if (ended && pending === 0) call.end();
      };
      call.on('data', (message: WireInferRequest) => {
        pending++;
        Promise.resolve()
          .then(() => dataplane.infer(decodeInferRequest(decoded(message)), cancellation))
          .then(
            (response) => call.write({ error_message: '', infer_response: encodeInferResponse(response) }),
            (error: unknown) =>
              call.write({
                // The unary mapping's text: a bug reads "internal error: …" here too.
                error_message: toGrpcError(error).details,
                infer_response: { id: message.id ?? '', model_name: message.model_name ?? '' },
              }),
          )
          .catch((error: unknown) => logger.warn({ err: error }, 'stream write failed'))
          .finally(() => {
            pending--;
            finish();
          });
      });
      call.on('end', () => {
        ended = true;
        finish();
      });
      call.on('error', (error) => logger.debug({ err: error }, 'stream error'));
    },
  };
}

export interface GrpcServerOptions {
  host?: string;
  port: number;
  /** Largest message accepted and sent (default DEFAULT_MAX_MESSAGE_BYTES, 64 MiB). */
  maxMessageBytes?: number;
  /** A connection with no call in flight for this long gets GOAWAY (default 65 s). */
  connectionIdleMs?: number;
}

/** Starts the gRPC server; resolves with it and the port it bound (port 0 picks one). */
export async function startGrpcServer(
  dataplane: DataPlane,
  logger: Logger,
  options: GrpcServerOptions,
): Promise<{ server: grpc.Server; port: number }> {
  const limit = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  // channelz bookkeeping costs a few percent per call and nothing here reads it.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': limit,
    'grpc.max_send_message_length': limit,
    'grpc.enable_channelz': 0,
    'grpc.max_connection_idle_ms': options.connectionIdleMs ?? DEFAULT_CONNECTION_IDLE_MS,
    'grpc.max_concurrent_streams': DEFAULT_MAX_STREAMS_PER_CONNECTION,
    // Pings find peers that vanished without closing (a dead client's streams are then freed).
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
  });
  server.addService(withCodedDecodeErrors(inferenceService().service), grpcHandlers(dataplane, logger));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${options.host ?? '0.0.0.0'}:${options.port}`,
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    );
  });
  return { server, port };
}
