/**
 * maas: train, quantize and serve dense neural networks from Node.js. The public API mirrors
 * tfjs-layers; the hot paths run in the native addon.
 */
export { sequential, Sequential, type SequentialArgs } from './model/sequential.js';
export { InferenceModel, type SavedModel, type BackgroundOptions } from './model/shell.js';
export type { EpochLog } from './model/carried.js';
export {
  selectModel,
  type CandidateSpec,
  type CandidateResult,
  type FoldScores,
  type Selection,
  type SelectionMetric,
  type SelectOptions,
} from './lifecycle/select.js';
export {
  federatedAverage,
  dpEpsilon,
  rdpEpsilon,
  localUpdate,
  trainAndSubmit,
  type TrainAndSubmitOptions,
  type RoundServer,
  deltaNorm,
  type ClientUpdate,
  type FedAvgOptions,
  type FedAvgResult,
  type RefusedUpdate,
} from './lifecycle/federated.js';
export {
  publishVersion,
  stageVersion,
  commitVersion,
  VERSION_RECORD_FILE,
  type VersionRecord,
  type StagedFileName,
} from './lifecycle/publish.js';
export type { PackedModel, PackedFormat, DensePrecision } from './model/packed.js';
export type { Backend, CudaOptions } from './model/cuda.js';
export type { NativeModelHandle as ModelHandle } from './native/index.js';
export { dense, Dense, type DenseLayerArgs } from './layers/dense.js';
export {
  initializers,
  type Initializer,
  type InitializerIdentifier,
  type InitializerName,
} from './layers/initializers.js';
export { ACTIVATIONS, type ActivationName } from './layers/activations.js';
export { tensor, tensor2d, Tensor, type TensorLike, type NestedArray } from './core/tensor.js';
export { MaasError, ERRORS, type ErrorCode, type ErrorKind } from './core/errors.js';
export { Random } from './core/random.js';
export { backendInfo, setMaxIsa, setThreads, getThreads, type BackendInfo } from './runtime.js';
export { regularizers, type Regularizer } from './layers/regularizers.js';
export { sgd, adam, adamw, rmsprop, Optimizer, type OptimizerName } from './train/optimizers.js';
export {
  Callback,
  History,
  EarlyStopping,
  earlyStopping,
  type CustomCallbackArgs,
  type Logs,
} from './train/callbacks.js';
export { METRIC_NAMES, type MetricName } from './train/metrics.js';
export {
  LOSS_NAMES,
  type CompileArgs,
  type CompiledConfig,
  type FitArgs,
  type FitDatasetArgs,
  type BatchSource,
  type BatchLike,
  type DatasetLike,
} from './train/engine.js';
export {
  csvDataset,
  CsvDataset,
  type CsvDatasetOptions,
  type CsvDatasetSource,
  type DatasetBatch,
} from './data/csv-dataset.js';
export type { LossName } from './native/index.js';
export { loadModel } from './model/load.js';
export {
  integratedGradients,
  kernelShap,
  exactShap,
  lime,
  byColumn,
  EXPLAIN_METHODS,
  type Explanation,
  type ExplainMethod,
  type ColumnAttribution,
  type IntegratedGradientsOptions,
  type IntegrationRule,
  type KernelShapOptions,
  type ExactShapOptions,
  type LimeOptions,
} from './explain/index.js';
/**
 * For .onnx graphs that are not a chain of dense layers (broadcasting MatMul/Add, Gemm with
 * transA, softmax over another axis): loadOnnxGraph(path).run({ name: { data, shape } }).
 * Use loadModel for dense chains (they become a trainable, servable Sequential).
 */
export { loadOnnxGraph, OnnxGraph, ONNX_GRAPH_OPS, type GraphInput, type GraphTensor } from './io/onnx-graph.js';
export { openPackedModel, openPackedRegion, type PackedRegion, type RegionTarget } from './model/packed.js';
export { quantize, type QuantizeOptions } from './quant/quantize.js';
export {
  QuantizedModel,
  type QuantizationSpec,
  type QuantizedLayerInfo,
  type PackedQuantizedModel,
} from './quant/model.js';
export { loadQuantizedModel, type QuantizedLoadOptions } from './quant/load.js';
export type { IntegrityOptions } from './io/integrity.js';
export type { DecryptionOptions } from './io/sealed.js';
export { ModelKeyring, generateModelKey, type ModelKeys, type ModelKeyringOptions } from './io/model-keys.js';
export {
  encryptModel,
  decryptModel,
  type EncryptOptions,
  type EncryptResult,
  type DecryptResult,
} from './io/encryption.js';
export {
  openModelFile,
  type OpenedModel,
  type OpenedLayer,
  type ModelFileFormat,
  type ModelPrecision,
  type OpenOptions,
} from './io/open.js';
export {
  compareQuantized,
  formatReport,
  QUANT_ACCURACY_WARNING,
  type CompareOptions,
  type QuantizationReport,
  type MetricChange,
} from './quant/report.js';
export { CALIBRATION_METHODS, type CalibrationMethod } from './quant/calibrate.js';
export {
  loadCsv,
  parseCsv,
  readCsv,
  csvRecords,
  type CsvData,
  type CsvOptions,
  type CsvSource,
  type ReadCsvOptions,
} from './data/csv.js';
export {
  DataFrame,
  COLUMN_KINDS,
  inferKind,
  type ColumnKind,
  type FrameOptions,
  type SplitFrameOptions,
} from './data/frame.js';
export { type DataWarning, type DataWarningCode, type WarningSink } from './data/warnings.js';
export {
  Pipeline,
  prepare,
  type ColumnForm,
  type PreparationOptions,
  type PreparationReport,
  type MissingStrategy,
  type PredictedLabel,
  type RankedClass,
  type RawRows,
  type TransformOptions,
} from './data/pipeline.js';
export { StandardScaler, MinMaxScaler, LabelEncoder, OneHotEncoder } from './data/transforms.js';
export { trainTestSplit, type SplitOptions } from './data/split.js';
export { isMissing, type Table, type Cell, type ColumnType } from './data/table.js';
export { serve, type ServeOptions, type RunningServer } from './serving/server.js';
export {
  AccessControl,
  ALL_MODELS,
  ANONYMOUS,
  type AccessOptions,
  type CallInfo,
  type Caller,
  type Credentials,
} from './serving/auth/access.js';
export { AuditLog, type AuditAction, type AuditCaller, type AuditDenial } from './serving/auth/audit.js';
export { RateLimiter, type RateLimits, type Release } from './serving/auth/rate-limit.js';
export {
  SCOPES,
  TokenVerifier,
  createToken,
  type Refusal,
  type CertificateGrant,
  type Identity,
  type NewToken,
  type Scope,
  type TokenFile,
  type TokenRecord,
} from './serving/auth/tokens.js';
export { TokenStore, addTokenRecord, readTokenFile, revokeTokenRecord } from './serving/auth/token-store.js';
export type { ClientCertificates, TlsSettings } from './serving/auth/tls.js';
export {
  DataPlane,
  EXTENSIONS,
  type InferRequest,
  type InferResponse,
  type InferInput,
  type InferOutput,
  type ControlOperation,
  type ServingPeers,
  type UpdateBatch,
  type UpdateEvent,
  type UpdateResult,
  type UpdateSession,
  type UpdateSet,
  type RoundInfo,
  type RoundResult,
  type RoundTensor,
} from './serving/dataplane.js';
export {
  runUpdate,
  judge,
  parseUpdateTraining,
  parseUpdatePolicy,
  type UpdateJob,
  type UpdateEpoch,
  type UpdateMetric,
  type UpdatePolicy,
  type UpdateRows,
  type UpdateTraining,
  type UpdateVerdict,
} from './lifecycle/update.js';
export { runFederatedRound, type FederatedRoundJob, type FederatedVerdict } from './lifecycle/federated-round.js';
export type { BackgroundResults, BackgroundTask } from './pool/messages.js';
export { joinProcessGroup, runProcessGroup, type GroupEvents, type ProcessGroup } from './serving/process-group.js';
export {
  PackedCache,
  defaultPackedCacheDir,
  type CachedPrecision,
  type PendingEntry,
  type PruneReport,
} from './pool/packed-cache.js';
export { Cancellation } from './serving/cancellation.js';
export type { ModelConfig } from './serving/repository/config.js';
export {
  InferencePool,
  type PoolOptions,
  type SharedWeights,
  type WorkerExit,
  type WorkerIsolation,
  type WorkerFault,
} from './pool/pool.js';
export type { LoadedModel } from './pool/messages.js';
export {
  GrpcInferenceClient,
  HttpInferenceClient,
  InferStream,
  InferenceServerError,
  type GrpcClientOptions,
  type ClientSecurity,
  type ClientTls,
  type ClientTensor,
  type InferOptions,
  type InferResult,
  type ExplainOptions,
  type ModelExplainResponse,
  type ExplanationMessage,
  type ColumnAttributionMessage,
  type RequestedOutput,
  type ResultTensor,
  type UpdateOptions,
  type UpdateOutcome,
  type UpdateProgress,
  type UpdateRowsBatch,
  type FederatedRound,
  type FederatedRoundResult,
  type RoundOptions,
} from './client/index.js';

// Types that the exports above take or return, named so that callers can spell them and the API
// reference can link them.
export type { SeedArgs } from './layers/initializers.js';
export type { AdamArgs, CommonOptimizerArgs } from './train/optimizers.js';
export type { EarlyStoppingArgs, Stoppable } from './train/callbacks.js';
export type { LoadOptions } from './model/load.js';
export type { OnnxConstant } from './io/onnx.js';
export type {
  IsaName,
  NativeCpuInfo,
  NativeCpuFeatures,
  NativeCudaInfo,
  NativeCudaLibrary,
  NativeCudaStackHandle,
  NativeModelHandle,
  NativeKernelInfo,
  NativeF32KernelInfo,
  NativeInt8KernelInfo,
  CpuClassName,
  NativeInputGradientHandle,
} from './native/index.js';
export type {
  DataPlaneOptions,
  ExplainResponse,
  ModelCard,
  ModelMetadata,
  VersionRouting,
  ServerMetadata,
  TensorMetadata,
  ParameterValue,
  Parameters as InferParameters,
} from './serving/dataplane.js';
export type { DurationStat, ModelStatisticsEntry } from './protocol/statistics.js';
export type { ControlMode, IndexEntry, VersionState } from './serving/repository/repository.js';
export type {
  TensorConfig,
  DynamicBatchingConfig,
  QueuePolicyConfig,
  VersionPolicyConfig,
} from './serving/repository/config.js';
export type { TypedArray, ParameterValues } from './client/types.js';
