/** The metadata messages' shapes, the same in gRPC and JSON: shared by the server and the clients. */

/** A tensor's name, datatype and shape (-1 for the batch dimension) in model metadata. */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

/** ModelMetadata's answer: the model's versions, platform and tensors. */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** ServerMetadata's answer: the server's name, version and protocol extensions. */
export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}
