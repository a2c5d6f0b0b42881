/**
 * The KServe v2 gRPC service definition (proto/grpc_service.proto, Triton's numbering), loaded
 * once for the server and the client with the same decoding options.
 */
import { wireTable } from './datatypes.js';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../core/package-root.js';

/** snake_case fields as in the .proto; 64-bit integers as numbers; enums as their names. */
export const PROTO_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
  includeDirs: [join(packageRoot(), 'proto')],
};

const services = new Map<string, grpc.ServiceClientConstructor>();

/** A service's client constructor from a .proto of proto/, loaded once; `.service` is its definition. */
function loadService(file: string, pkg: string, name: string): grpc.ServiceClientConstructor {
  let service = services.get(`${pkg}.${name}`);
  if (!service) {
    const definition = protoLoader.loadSync(file, PROTO_OPTIONS);
    service = (grpc.loadPackageDefinition(definition)[pkg] as grpc.GrpcObject)[name] as grpc.ServiceClientConstructor;
    services.set(`${pkg}.${name}`, service);
  }
  return service;
}

/** The `inference.GRPCInferenceService` client constructor; `.service` is its definition. */
export function inferenceService(): grpc.ServiceClientConstructor {
  return loadService('grpc_service.proto', 'inference', 'GRPCInferenceService');
}

/** The `maas.ExplainService` client constructor (proto/maas_explain.proto); `.service` is its definition. */
export function explainService(): grpc.ServiceClientConstructor {
  return loadService('maas_explain.proto', 'maas', 'ExplainService');
}

/** The `maas.UpdateService` client constructor (proto/maas_update.proto); `.service` is its definition. */
export function updateService(): grpc.ServiceClientConstructor {
  return loadService('maas_update.proto', 'maas', 'UpdateService');
}

/** The `maas.FederatedService` client constructor (proto/maas_federated.proto); `.service` is its definition. */
export function federatedService(): grpc.ServiceClientConstructor {
  return loadService('maas_federated.proto', 'maas', 'FederatedService');
}

/** The wire shape of an InferParameter (oneof parameter_choice). */
export interface WireParameter {
  bool_param?: boolean;
  int64_param?: number;
  string_param?: string;
  double_param?: number;
  uint64_param?: number;
  parameter_choice?: string;
}

/** A parameter map from the wire into plain values. */
export function fromWireParameters(
  map: Record<string, WireParameter> | undefined,
): Record<string, boolean | number | string> | undefined {
  if (!map) return undefined;
  const out: Record<string, boolean | number | string> = {};
  let any = false;
  for (const [key, p] of Object.entries(map)) {
    const choice = (p.parameter_choice ?? Object.keys(p).find((k) => k.endsWith('_param'))) as
      keyof WireParameter | undefined;
    if (!choice) continue;
    out[key] = p[choice] as boolean | number | string;
    any = true;
  }
  return any ? out : undefined;
}

/** Plain parameter values onto the wire (integers as int64, other numbers as double). */
export function toWireParameters(
  map: Record<string, boolean | number | string> | undefined,
): Record<string, WireParameter> {
  const out: Record<string, WireParameter> = {};
  for (const [key, v] of Object.entries(map ?? {})) {
    if (typeof v === 'boolean') out[key] = { bool_param: v };
    else if (typeof v === 'string') out[key] = { string_param: v };
    else if (Number.isInteger(v)) out[key] = { int64_param: v };
    else out[key] = { double_param: v };
  }
  return out;
}

/** The wire shape of InferTensorContents. */
export interface WireContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

/** Which typed-contents field carries each datatype (FP16 and BF16 have none: raw only). */
export const CONTENTS_FIELD: Readonly<Record<string, keyof WireContents>> = wireTable({
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
});
