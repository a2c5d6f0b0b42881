/**
 * maas: train, quantize and serve dense neural networks from Node.js. The public API mirrors
 * tfjs-layers; the hot paths run in the native addon.
 */
export { sequential, Sequential, type SequentialArgs, type PackedModel } from './model/sequential.js';
export { dense, Dense, type DenseLayerArgs } from './layers/dense.js';
export { initializers, type Initializer, type InitializerIdentifier, type InitializerName } from './layers/initializers.js';
export { ACTIVATIONS, type ActivationName } from './layers/activations.js';
export { tensor, tensor2d, Tensor, type TensorLike, type NestedArray } from './core/tensor.js';
export { MaasError, ERRORS, type ErrorCode, type ErrorKind } from './core/errors.js';
export { Random } from './core/random.js';
export { backendInfo, setMaxIsa, setThreads, getThreads, type BackendInfo } from './runtime.js';
