/** Typed clients for the KServe v2 / Open Inference Protocol: gRPC and REST. */
export { GrpcInferenceClient, InferStream, type GrpcClientOptions } from './grpc.js';
export { HttpInferenceClient } from './http.js';
export {
  InferenceServerError,
  type ClientSecurity,
  type ClientTensor,
  type ClientTls,
  type ExplainOptions,
  type InferOptions,
  type InferResult,
  type RequestedOutput,
  type ResultTensor,
  type TypedArray,
  type UpdateOptions,
  type UpdateOutcome,
  type UpdateProgress,
  type UpdateRowsBatch,
  type FederatedRound,
  type FederatedRoundResult,
  type RoundOptions,
} from './types.js';
export type { ModelExplainResponse, ExplanationMessage, ColumnAttributionMessage } from '../protocol/explain.js';
