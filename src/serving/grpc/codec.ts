/**
 * The gRPC adapter's conversions: ModelInferRequest off the wire into the DataPlane's request (with
 * typed contents counted before they are decoded), its response onto the wire, and `toGrpcError`,
 * the one mapping from maas errors to gRPC statuses.
 */
import * as grpc from '@grpc/grpc-js';
import { MaasError, messageOf, type ErrorKind } from '../../core/errors.js';
import { CONTENTS_FIELD, fromWireParameters, type WireContents } from '../../protocol/grpc.js';
import {
  decodeModelInferRequest,
  ElementsRefused,
  encodeModelInferResponse,
  type WireRequest,
  type WireResponse,
} from '../../protocol/infer-wire.js';
import { outputBytes, type InferInput, type InferRequest, type InferResponse } from '../dataplane.js';

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

/** A status or stream error message cut to MAX_STATUS_MESSAGE_CHARS. */
export function clip(message: string): string {
  return message.length > MAX_STATUS_MESSAGE_CHARS ? `${message.slice(0, MAX_STATUS_MESSAGE_CHARS - 1)}…` : message;
}

/** The one mapping from maas errors to gRPC statuses; the code travels in `maas-error-code`. */
export function toGrpcError(error: unknown): { code: grpc.status; details: string; metadata: grpc.Metadata } {
  const metadata = new grpc.Metadata();
  if (error instanceof MaasError) {
    metadata.set('maas-error-code', error.code);
    if (error.retryAfterMs !== undefined) {
      // HTTP's header for people and proxies, gRPC's pushback for clients that retry by policy.
      metadata.set('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
      metadata.set('grpc-retry-pushback-ms', String(error.retryAfterMs));
    }
    return { code: STATUS[error.kind], details: clip(error.message), metadata };
  }
  return {
    code: grpc.status.INTERNAL,
    details: clip(`internal error: ${messageOf(error)}`),
    metadata,
  };
}

/** A ModelInferRequest off the wire, as the DataPlane takes it. */
export function decodeInferRequest(message: WireRequest): InferRequest {
  const raw = message.raw_input_contents;
  const inputs = message.inputs;
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `expected ${inputs.length} raw_input_contents (one per input) but received ${raw.length}`,
    );
  }
  const decoded = inputs.map((input, i): InferInput => {
    const tensor: InferInput = {
      // proto3: an absent string is the empty string (the decoder leaves it undefined).
      name: input.name ?? '',
      datatype: input.datatype ?? '',
      shape: input.shape,
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
    inputs: decoded,
    outputs: message.outputs.map((o) => ({ name: o.name ?? '', parameters: fromWireParameters(o.parameters) })),
  };
}

/** A response onto the wire: outputs in raw_output_contents, as Triton (and tritonclient) do. */
export function encodeInferResponse(response: InferResponse): WireResponse {
  return {
    model_name: response.model,
    model_version: response.version,
    id: response.id ?? '',
    outputs: response.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
    raw_output_contents: response.outputs.map((o) => {
      const bytes = outputBytes(o);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }),
  };
}

/** A ModelInferRequest refused while still bytes: a stream answers it by id, a unary call with its status. */
export interface RefusedInferRequest {
  refused: MaasError;
  model_name: string;
  id: string;
}

/** The refusal a decoder left in place of a request (any method), if it did. */
export function refusalOf(request: unknown): MaasError | undefined {
  const refused = (request as { refused?: unknown } | null)?.refused;
  return refused instanceof MaasError ? refused : undefined;
}

/** Whether the decoder refused this request instead of decoding it. */
export function isRefused(message: WireRequest | RefusedInferRequest): message is RefusedInferRequest {
  return (message as RefusedInferRequest).refused !== undefined;
}

/**
 * Decodes a request message, or answers the refusal its handler sends: a message that is not
 * valid protobuf is a coded INVALID_ARGUMENT (MAAS_ERR_GRPC_MESSAGE), not grpc-js's uncoded
 * INTERNAL "Error deserializing request".
 */
export function decodeOrRefuse(decode: (bytes: Buffer) => unknown, bytes: Buffer, method: string): unknown {
  try {
    return decode(bytes);
  } catch (error) {
    return {
      model_name: '',
      id: '',
      refused: new MaasError(
        'MAAS_ERR_GRPC_MESSAGE',
        `Expected a ${method} request message in protobuf encoding but decoding its ${bytes.length} bytes failed: ${messageOf(error)}`,
      ),
    };
  }
}

/**
 * ModelInfer's request and response, and ModelStreamInfer's request, through the codec written
 * for them (protocol/infer-wire.ts): one pass over the request, raw contents as views into it,
 * typed contents counted and bounded by `maxElements` as they are read (a request refused for its
 * counts keeps its model name and id), the response in one allocation. The other RPCs keep the
 * generic codec.
 */
export function withInferCodec(service: grpc.ServiceDefinition, maxElements: number): grpc.ServiceDefinition {
  const decode = inferRequestDecoder(maxElements);
  return {
    ...service,
    ModelInfer: { ...service.ModelInfer!, requestDeserialize: decode, responseSerialize: encodeModelInferResponse },
    ModelStreamInfer: { ...service.ModelStreamInfer!, requestDeserialize: decode },
  };
}

/** ModelInferRequest's purpose-written decoder, a request over the element cap answered as refused. */
function inferRequestDecoder(maxElements: number) {
  return (bytes: Buffer): WireRequest | RefusedInferRequest => {
    try {
      return decodeModelInferRequest(bytes, maxElements);
    } catch (error) {
      if (!(error instanceof ElementsRefused)) throw error;
      return { refused: error.refusal, model_name: error.modelName, id: error.id };
    }
  };
}

/** maas.ExplainService with ModelExplain's request (a ModelInferRequest) read by ModelInfer's decoder. */
export function withExplainCodec(service: grpc.ServiceDefinition, maxElements: number): grpc.ServiceDefinition {
  return {
    ...service,
    ModelExplain: { ...service.ModelExplain!, requestDeserialize: inferRequestDecoder(maxElements) },
  };
}

/** Every method's decoder made total (decodeOrRefuse); handlers check isRefused. */
export function withCodedDecodeErrors(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => [
      name,
      { ...method, requestDeserialize: (bytes: Buffer) => decodeOrRefuse(method.requestDeserialize, bytes, name) },
    ]),
  );
}
