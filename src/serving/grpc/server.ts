/**
 * The gRPC adapter: inference.GRPCInferenceService over @grpc/grpc-js. Each handler decodes,
 * calls the DataPlane once, encodes, and always answers; `toGrpcError` (codec.ts) is the one error
 * mapping, and ModelStreamInfer's flow control lives in stream.ts.
 */
import {
  DEFAULT_CONNECTION_IDLE_MS,
  DEFAULT_MAX_IN_FLIGHT_PER_STREAM,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_STREAMS_PER_CONNECTION,
  maxRequestElements,
} from '../../protocol/limits.js';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  explainService,
  fromWireParameters,
  inferenceService,
  federatedService,
  updateService,
  type WireParameter,
} from '../../protocol/grpc.js';
import { Cancellation, explainMessage, type DataPlane, type InferResponse } from '../dataplane.js';
import {
  decodeInferRequest,
  encodeInferResponse,
  isRefused,
  refusalOf,
  withCodedDecodeErrors,
  withInferCodec,
  withExplainCodec,
  toGrpcError,
  type RefusedInferRequest,
} from './codec.js';
import { serveInferStream, StreamLoad, type StreamOptions } from './stream.js';
import type { WireRequest, WireResponse } from '../../protocol/infer-wire.js';
import type { AccessControl } from '../auth/access.js';
import type { CertificateSource, ClientCertificates } from '../auth/tls.js';
import { accessInterceptor } from './access.js';
import { serveUpdateStream } from './update.js';
import { deltaOf, roundInfoMessage, roundResultMessage, type WireSubmitUpdate } from './federated.js';

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
      .then(() => {
        const refused = refusalOf(call.request);
        if (refused) throw refused;
        return work(call.request);
      })
      .then(
        (reply) => callback(null, reply),
        (error: unknown) => callback(toGrpcError(error)),
      );
  };
}

/** A cancelled or deadline-exceeded call cancels its request while it is still queued. */
function cancelOnCancel(call: grpc.ServerUnaryCall<unknown, unknown>): Cancellation {
  return new Cancellation((abort) => {
    if (call.cancelled) abort();
    else call.once('cancelled', abort);
  });
}

/** Every RPC of the service, bound to one DataPlane. */
export function grpcHandlers(
  dataplane: DataPlane,
  logger: Logger,
  stream: StreamOptions,
  load: StreamLoad,
): grpc.UntypedServiceImplementation {
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
    ModelInfer: (
      call: grpc.ServerUnaryCall<WireRequest | RefusedInferRequest, object>,
      callback: grpc.sendUnaryData<WireResponse>,
    ) => {
      const message = call.request;
      let answer: Promise<InferResponse>;
      try {
        if (isRefused(message)) throw message.refused;
        answer = dataplane.infer(decodeInferRequest(message), cancelOnCancel(call));
      } catch (error) {
        callback(toGrpcError(error));
        return;
      }
      answer.then(
        (response) => callback(null, encodeInferResponse(response)),
        (error: unknown) => callback(toGrpcError(error)),
      );
    },
    ModelStreamInfer: (call: grpc.ServerDuplexStream<WireRequest | RefusedInferRequest, object>) =>
      serveInferStream(call, dataplane, logger, stream, load),
  };
}

export interface GrpcServerOptions {
  host?: string;
  port: number;
  /** Largest message accepted and sent (default DEFAULT_MAX_MESSAGE_BYTES, 64 MiB). */
  maxMessageBytes?: number;
  /** A connection with no call in flight for this long gets GOAWAY (default 65 s). */
  connectionIdleMs?: number;
  /** A connection older than this gets GOAWAY, its calls then have 30 s to finish (default 0: no limit). */
  connectionMaxAgeMs?: number;
  /** Requests read from one ModelStreamInfer stream and not yet answered (default 128). */
  maxInFlightPerStream?: number;
  /** Access control, enforced by a server interceptor on every RPC (default: none). */
  access?: AccessControl;
  /** A metadata key that carries a bare token, besides `authorization`. */
  tokenHeader?: string;
  /** TLS from certificate files that may change; absent: plain text. */
  tls?: { certificates: CertificateSource; clientCertificates: ClientCertificates };
}

/** The server's credentials: TLS that follows the certificate files, or plain text. */
function credentialsOf(tls: GrpcServerOptions['tls']): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const { certificates, clientCertificates } = tls;
  // grpc-js's first argument is the identity (certificate and key) provider, despite its typing's
  // name; the second, the CA one, is what asks clients for certificates.
  return grpc.experimental.createCertificateProviderServerCredentials(
    certificates,
    clientCertificates === 'none' ? null : certificates,
    clientCertificates === 'required',
  );
}

/** A started gRPC endpoint. */
export interface GrpcEndpoint {
  server: grpc.Server;
  /** The bound port. */
  port: number;
  /** Requests its streams have read and not yet answered. */
  streamLoad: StreamLoad;
}

/** Starts the gRPC server; resolves with it and the port it bound (port 0 picks one). */
export async function startGrpcServer(
  dataplane: DataPlane,
  logger: Logger,
  options: GrpcServerOptions,
): Promise<GrpcEndpoint> {
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
    ...(options.connectionMaxAgeMs
      ? { 'grpc.max_connection_age_ms': options.connectionMaxAgeMs, 'grpc.max_connection_age_grace_ms': 30_000 }
      : {}),
    ...(options.access?.active
      ? { interceptors: [accessInterceptor(options.access, { tokenHeader: options.tokenHeader })] }
      : {}),
  });
  const streamLoad = new StreamLoad();
  const stream = { maxInFlight: options.maxInFlightPerStream ?? DEFAULT_MAX_IN_FLIGHT_PER_STREAM };
  server.addService(
    withCodedDecodeErrors(withInferCodec(inferenceService().service, maxRequestElements(limit))),
    grpcHandlers(dataplane, logger, stream, streamLoad),
  );
  server.addService(withCodedDecodeErrors(withExplainCodec(explainService().service, maxRequestElements(limit))), {
    // The request is a ModelInferRequest, read by the same codec as ModelInfer.
    ModelExplain: unary(async (message: WireRequest) =>
      explainMessage(await dataplane.explain(decodeInferRequest(message))),
    ),
  });
  server.addService(withCodedDecodeErrors(updateService().service), {
    Update: (call: Parameters<typeof serveUpdateStream>[0]) => serveUpdateStream(call, dataplane, logger),
  });
  server.addService(withCodedDecodeErrors(federatedService().service), {
    OpenRound: unary(async (r: RepositoryModelRequest & { model_version?: string }) =>
      roundInfoMessage(
        await dataplane.openRound(
          r.model_name ?? '',
          r.model_version || undefined,
          fromWireParameters(r.parameters) ?? {},
        ),
      ),
    ),
    GetRound: unary((r: { model_name?: string; round_id?: string }) =>
      roundInfoMessage(dataplane.getRound(r.model_name ?? '', r.round_id || undefined)),
    ),
    SubmitUpdate: unary((r: WireSubmitUpdate) =>
      dataplane.submitRoundUpdate(
        r.model_name ?? '',
        r.round_id ?? '',
        r.client ?? '',
        r.samples ?? 0,
        deltaOf(r.delta),
      ),
    ),
    CloseRound: unary(async (r: { model_name?: string; round_id?: string }) =>
      roundResultMessage(await dataplane.closeRound(r.model_name ?? '', r.round_id ?? '')),
    ),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host ?? '0.0.0.0'}:${options.port}`, credentialsOf(options.tls), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return { server, port, streamLoad };
}
