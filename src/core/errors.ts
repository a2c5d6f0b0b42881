/**
 * The one error registry. Every error maas raises has a code (MAAS_ERR_AREA_WHAT), a message that
 * names the parameter, what was expected and what was received, and a transport-neutral kind that
 * each protocol adapter maps to its own status in one function.
 */

/** Transport-neutral error kinds (gRPC-like); adapters map these, never codes. */
export type ErrorKind =
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'NotFound'
  | 'Unavailable'
  | 'ResourceExhausted'
  | 'Unimplemented'
  | 'Unauthenticated'
  | 'PermissionDenied'
  | 'Cancelled'
  | 'Internal';

/** One registry entry: the kind, what it means, and a protocol status where the kind is too coarse. */
export interface ErrorEntry {
  readonly kind: ErrorKind;
  readonly doc: string;
  /** HTTP's own status for this error where it has one more precise than its kind's (413). */
  readonly httpStatus?: number;
}

/** Every code maas raises, from TypeScript or from the addon, with its kind and meaning. */
export const ERRORS = {
  MAAS_ERR_ARG_TYPE: { kind: 'InvalidArgument', doc: 'An argument has the wrong type.' },
  MAAS_ERR_ARG_RANGE: { kind: 'InvalidArgument', doc: 'An argument is outside its allowed range.' },
  MAAS_ERR_SHAPE_MISMATCH: {
    kind: 'InvalidArgument',
    doc: 'A tensor does not have the shape the model or call expects.',
  },
  MAAS_ERR_ACTIVATION_UNKNOWN: { kind: 'InvalidArgument', doc: 'An activation name is not one maas implements.' },
  MAAS_ERR_INITIALIZER_UNKNOWN: { kind: 'InvalidArgument', doc: 'An initializer name is not one maas implements.' },
  MAAS_ERR_LAYER_CONFIG: { kind: 'InvalidArgument', doc: 'A layer configuration is invalid (units, inputShape, ...).' },
  MAAS_ERR_MODEL_EMPTY: { kind: 'FailedPrecondition', doc: 'The model has no layers, or its input shape is unknown.' },
  MAAS_ERR_MODEL_DISPOSED: { kind: 'FailedPrecondition', doc: 'The model (or its native handle) was disposed.' },
  MAAS_ERR_TENSOR_DISPOSED: { kind: 'FailedPrecondition', doc: "A tensor's values were read after dispose()." },
  MAAS_ERR_LOSS_OUTPUT_MISMATCH: {
    kind: 'InvalidArgument',
    doc: 'The loss does not fit the output layer (categorical losses need softmax).',
  },
  MAAS_ERR_TARGETS_INVALID: {
    kind: 'InvalidArgument',
    doc: 'Training targets are not finite, or not class indices for a sparse loss.',
  },
  MAAS_ERR_MODEL_NOT_COMPILED: {
    kind: 'FailedPrecondition',
    doc: 'fit, evaluate or trainOnBatch was called before compile.',
  },
  MAAS_ERR_MODEL_NOT_FOUND: { kind: 'NotFound', doc: 'No model directory or model.json at the given path.' },
  MAAS_ERR_MODEL_FORMAT: {
    kind: 'InvalidArgument',
    doc: 'A model file is malformed, corrupt, or uses a layer or feature maas does not support.',
  },
  MAAS_ERR_DATA_FORMAT: { kind: 'InvalidArgument', doc: 'A data file or table is malformed (columns, fields, types).' },
  MAAS_ERR_DATA_MISSING: {
    kind: 'InvalidArgument',
    doc: 'A value is missing where the preparation pipeline cannot fill it.',
  },
  MAAS_ERR_DATA_UNKNOWN_CATEGORY: {
    kind: 'InvalidArgument',
    doc: 'A categorical value was not seen when the encoder was fitted.',
  },
  MAAS_ERR_DATA_COLUMNS: {
    kind: 'InvalidArgument',
    doc: 'Records at prediction lack a column the model takes (without allowMissing) or name one it does not know.',
  },
  MAAS_ERR_WEIGHTS_MISMATCH: { kind: 'InvalidArgument', doc: 'Weights given to setWeights do not match the layers.' },
  MAAS_ERR_ISA_INVALID: {
    kind: 'InvalidArgument',
    doc: "An ISA name is not 'scalar', 'avx2', 'avxvnni', 'avx512', 'avx512vnni', 'avx512bf16' or 'amx'.",
  },
  MAAS_ERR_ISA_UNSUPPORTED: { kind: 'Unimplemented', doc: 'The kernel or ISA is not available on this CPU or OS.' },
  MAAS_ERR_CUDA_UNAVAILABLE: {
    kind: 'Unimplemented',
    doc: 'The CUDA backend cannot run here: no CUDA build, no driver or device, or no cuBLASLt (backendInfo().cuda says which).',
  },
  MAAS_ERR_THREADS_INVALID: { kind: 'InvalidArgument', doc: 'A thread count is not an integer in [1, 64].' },
  MAAS_ERR_KERNEL_UNKNOWN: { kind: 'InvalidArgument', doc: 'A kernel name is not in the kernel list.' },
  MAAS_ERR_EXPLAIN_SINGULAR: {
    kind: 'FailedPrecondition',
    doc: "An explanation's linear fit has no unique solution (its samples do not vary a feature).",
  },
  MAAS_ERR_EXPLAIN_OFF: {
    kind: 'FailedPrecondition',
    doc: 'Explanations are not enabled for the model: its config.json has no explain_method parameter.',
  },
  MAAS_ERR_TRAIN_DIVERGED: {
    kind: 'FailedPrecondition',
    doc: "Training diverged: every candidate's score is NaN (a smaller learning rate usually helps).",
  },
  MAAS_ERR_FEDERATED_ROUND: {
    kind: 'FailedPrecondition',
    doc: "A federated round cannot do that now: no round is open (or the round id is not the open one's), one is open already, too few clients submitted, or no update was valid.",
  },
  MAAS_ERR_UPDATE_PARAMETER: {
    kind: 'InvalidArgument',
    doc: 'An update parameter is unknown or out of range (epochs, batch_size, learning_rate, optimizer, loss, seed, architecture).',
  },
  MAAS_ERR_UPDATE_DATA: {
    kind: 'InvalidArgument',
    doc: "An update's rows are malformed: a batch of the wrong width or set, non-finite values, or no training or held-out rows.",
  },
  MAAS_ERR_UPDATE_TOO_LARGE: {
    kind: 'ResourceExhausted',
    doc: "An update sent more bytes of rows than its model's update_max_bytes (default 256 MiB).",
    httpStatus: 413,
  },
  MAAS_ERR_UPDATE_BUSY: {
    kind: 'FailedPrecondition',
    doc: 'An update of this model is already running (one per model at a time): wait for it to end, or cancel it.',
    httpStatus: 409,
  },
  MAAS_ERR_UPDATE_REFUSED: {
    kind: 'FailedPrecondition',
    doc: 'This version cannot be updated here (int8, encrypted, a file format maas cannot write, or saved without a loss); the message says which.',
  },
  MAAS_ERR_FEDERATED_UPDATE: {
    kind: 'InvalidArgument',
    doc: "A federated client's update is refused: its delta's tensors, values or norm, its sample count, its client name, or a second update from the same client in a round.",
  },
  MAAS_ERR_REPOSITORY_URL: {
    kind: 'InvalidArgument',
    doc: 'The model repository cannot be used as given: a URL maas does not read (only a local directory or s3://BUCKET/PREFIX), or an s3:// repository cache that holds other files or is in use by another server.',
  },
  MAAS_ERR_REPOSITORY_STORE: {
    kind: 'Unavailable',
    doc: 'The object store of an s3:// repository cannot be read: no credentials, access denied, no such bucket, unreachable, or an object changed while fetched.',
  },
  MAAS_ERR_UI_ASSETS: {
    kind: 'Internal',
    doc: "The /ui page's files (the package's ui/ folder, d3 and @observablehq/plot) cannot be read: reinstall maas.",
  },
  MAAS_ERR_EXPLAIN_BACKGROUND: {
    kind: 'FailedPrecondition',
    doc: 'An explanation method needs background rows (SHAP, LIME) and none were given or configured.',
  },
  MAAS_ERR_PACKED_CORRUPT: { kind: 'InvalidArgument', doc: 'A packed weight buffer failed its header checks.' },
  MAAS_ERR_PACKED_MAP_FAILED: {
    kind: 'ResourceExhausted',
    doc: 'Packed weights (a shared region or a packed cache file) could not be mapped into memory.',
  },
  MAAS_ERR_PACKED_CACHE_UNSAFE: {
    kind: 'PermissionDenied',
    doc: 'A packed cache directory or file is not private to this user (owner, mode or a symbolic link).',
  },
  MAAS_ERR_PACKED_ISA_ABOVE_CAP: {
    kind: 'FailedPrecondition',
    doc: "A packed buffer targets an ISA above this thread's cap.",
  },
  MAAS_ERR_PEER_FAILED: {
    kind: 'Internal',
    doc: 'A load or unload ran in this serving process but failed in another of the group (maas serve --processes).',
  },
  // Serving. Unknown models keep Triton's message text and status (clients match on them).
  MAAS_ERR_MODEL_UNKNOWN: {
    kind: 'InvalidArgument',
    doc: "No model of that name (or version) is in the repository: Triton's 'Request for unknown model' error.",
  },
  MAAS_ERR_MODEL_UNAVAILABLE: {
    kind: 'Unavailable',
    doc: 'The model exists but no version of it is ready (loading, unloading, or its load failed).',
  },
  MAAS_ERR_MODEL_CONFIG: {
    kind: 'InvalidArgument',
    doc: "A model's config.json (or a load request's config override) is invalid.",
  },
  MAAS_ERR_INFER_INPUT: {
    kind: 'InvalidArgument',
    doc: 'An inference request names, shapes, types or sizes its input tensors wrongly.',
  },
  MAAS_ERR_INFER_OUTPUT: {
    kind: 'InvalidArgument',
    doc: 'An inference request asks for an output the model does not have.',
  },
  MAAS_ERR_INFER_PARAMETER: {
    kind: 'InvalidArgument',
    doc: 'An inference request parameter (priority, timeout, binary_data...) is invalid.',
  },
  MAAS_ERR_INFER_DATATYPE: {
    kind: 'InvalidArgument',
    doc: "An input's datatype is not the model's (FP32), and the model does not opt in to conversion.",
  },
  MAAS_ERR_DATATYPE_UNSUPPORTED: {
    kind: 'Unimplemented',
    doc: 'A tensor datatype the model cannot take (BYTES into a numeric model).',
  },
  MAAS_ERR_QUEUE_FULL: {
    kind: 'Unavailable',
    doc: "The model's queue is at max_queue_size; the request was rejected.",
  },
  MAAS_ERR_REQUEST_TIMEOUT: { kind: 'Unavailable', doc: 'The request waited in the queue past its timeout.' },
  MAAS_ERR_REQUEST_CANCELLED: { kind: 'Cancelled', doc: 'The client went away (or cancelled) before the request ran.' },
  MAAS_ERR_REPOSITORY_CONTROL: {
    kind: 'Unavailable',
    doc: 'Load or unload was asked for while the model control mode is not explicit.',
  },
  MAAS_ERR_SERVER_STOPPING: { kind: 'Unavailable', doc: 'The server (or its inference pool) is shutting down.' },
  MAAS_ERR_UNAUTHENTICATED: {
    kind: 'Unauthenticated',
    doc: 'The request carries no valid credentials (a missing, malformed, unknown, expired or revoked token).',
  },
  MAAS_ERR_PERMISSION_DENIED: {
    kind: 'PermissionDenied',
    doc: 'The credentials are valid but their scopes or models do not cover this call.',
  },
  MAAS_ERR_TOKEN_FILE: { kind: 'InvalidArgument', doc: 'The token file cannot be read or is not a valid token file.' },
  MAAS_ERR_RATE_LIMITED: {
    kind: 'ResourceExhausted',
    doc: 'The caller (a token, a certificate or an address) is over its request rate or its concurrent requests; retry after the time the answer names (Retry-After).',
  },
  MAAS_ERR_TLS_CONFIG: {
    kind: 'InvalidArgument',
    doc: 'A TLS certificate, key or CA file cannot be read, does not parse, or the key does not match the certificate.',
  },
  MAAS_ERR_AUTH_CONFIG: {
    kind: 'InvalidArgument',
    doc: 'The access settings contradict each other (a client certificate mode without a CA, a rate limit out of range).',
  },
  MAAS_ERR_WORKER_DIED: {
    kind: 'Unavailable',
    doc: 'The inference worker running the request stopped (a crash or out of memory); it is replaced, so a retry can succeed.',
  },
  MAAS_ERR_DATA_THREAD: {
    kind: 'Internal',
    doc: 'The thread reading a data file for fitDataset stopped without an answer (a crash or out of memory).',
  },
  MAAS_ERR_HTTP_ROUTE: { kind: 'NotFound', doc: 'No REST route matches the method and path.' },
  MAAS_ERR_MODEL_LOAD_TIMEOUT: {
    kind: 'Unavailable',
    doc: 'Opening and packing a model file took longer than the load timeout; the load thread was stopped.',
  },
  // Integrity: FailedPrecondition, not InvalidArgument: the request (load this path) is sound; the
  // file on disk is not in the state a load needs, and the same request succeeds once it is.
  MAAS_ERR_MODEL_INTEGRITY: {
    kind: 'FailedPrecondition',
    doc: "A model file's contents do not match the SHA-256 digest recorded in it (a damaged, edited or mixed file), or the recorded digest is malformed.",
  },
  MAAS_ERR_MODEL_DIGEST_MISSING: {
    kind: 'FailedPrecondition',
    doc: 'strictIntegrity (config parameter strict_integrity, maas serve --strict-model-integrity) is on and the model file records no digest to verify.',
  },
  // Models at rest (docs/security.md): the file, or the server's keys, are not in the state a load
  // needs; the same request succeeds once they are (FailedPrecondition, like integrity). A key
  // command that fails may succeed on a retry (a KMS that was down): Unavailable.
  MAAS_ERR_MODEL_DECRYPT: {
    kind: 'FailedPrecondition',
    doc: 'An encrypted model file cannot be decrypted: the key its key id names is not the key it was encrypted with, or the file was damaged, truncated or tampered with (AES-256-GCM authentication failed).',
  },
  MAAS_ERR_MODEL_KEY_UNKNOWN: {
    kind: 'FailedPrecondition',
    doc: 'An encrypted model file names a key id that none of the configured key sources (MAAS_MODEL_KEY, the key file, the key command) holds.',
  },
  MAAS_ERR_KEY_INVALID: {
    kind: 'InvalidArgument',
    doc: 'A model key is not 32 bytes written as 64 hex digits or base64, or a key id is not 1 to 128 characters of A-Z a-z 0-9 . _ : / - starting with a letter or digit, without "..".',
  },
  MAAS_ERR_KEY_FILE: {
    kind: 'FailedPrecondition',
    doc: 'A model key file cannot be used: missing, not a regular file, too large, readable or writable by others, owned by another user, or not lines of "<key id> <key>".',
  },
  MAAS_ERR_KEY_COMMAND: {
    kind: 'Unavailable',
    doc: 'The model key command could not be run, failed, timed out, or printed more than a key.',
  },
  MAAS_ERR_MODEL_FILE: {
    kind: 'InvalidArgument',
    doc: 'A model file is not a regular file (a symbolic link, FIFO, device or directory), is larger than its cap, or lies outside its directory.',
  },
  MAAS_ERR_MESSAGE_TOO_LARGE: {
    kind: 'ResourceExhausted',
    httpStatus: 413,
    doc: 'A request body or message is larger than --max-message-bytes (default 64 MiB).',
  },
  MAAS_ERR_TOO_MANY_ELEMENTS: {
    kind: 'ResourceExhausted',
    httpStatus: 413,
    doc: 'A request carries more typed tensor elements (gRPC contents, REST JSON data) than --max-message-bytes / 4, a JSON body opens more than 100 000 objects and arrays, a large one holds more than 10 000 values besides its numeric data, or its parse outgrows the heap of the thread that parses it; refused before the values reach the event loop.',
  },
  MAAS_ERR_HTTP_PATH: { kind: 'InvalidArgument', doc: 'A REST path segment holds a malformed %-escape.' },
  MAAS_ERR_HTTP_REQUEST: {
    kind: 'InvalidArgument',
    doc: 'A REST request is not well-formed HTTP/1.1: the HTTP parser refused its request line, headers or body framing, it has no Host header, or it asks for an Upgrade with a chunked body.',
  },
  MAAS_ERR_HTTP_HEADERS_TOO_LARGE: {
    kind: 'ResourceExhausted',
    httpStatus: 431,
    doc: "A REST request's request line and headers are larger than the HTTP parser allows (Node's --max-http-header-size).",
  },
  MAAS_ERR_HTTP_EXPECTATION: {
    kind: 'InvalidArgument',
    httpStatus: 417,
    doc: "A REST request's Expect header asks for something other than 100-continue.",
  },
  MAAS_ERR_HTTP_REQUEST_TIMEOUT: {
    kind: 'Unavailable',
    httpStatus: 408,
    doc: "A REST request's headers or body did not arrive within the server's request timeout.",
  },
  MAAS_ERR_GRPC_MESSAGE: {
    kind: 'InvalidArgument',
    doc: "A gRPC request message is not a valid protobuf encoding of its RPC's request type.",
  },
  MAAS_ERR_HTTP_BODY: {
    kind: 'InvalidArgument',
    doc: 'A REST body is not valid JSON, or its binary part does not match its header.',
  },
  // Quantization.
  MAAS_ERR_CALIBRATION_MISSING: {
    kind: 'InvalidArgument',
    doc: 'Static quantization needs calibration data and none was given.',
  },
  MAAS_ERR_CALIBRATION_EMPTY: { kind: 'InvalidArgument', doc: 'The calibration data has no rows.' },
  MAAS_ERR_CALIBRATION_NOT_FINITE: { kind: 'InvalidArgument', doc: 'The calibration data holds NaN or an infinity.' },
  MAAS_ERR_QUANT_UNREPRESENTABLE: {
    kind: 'Unimplemented',
    doc: "A quantized model's scheme has no exact form in maas's int8 path (u8 or asymmetric weights, the weight -128, blocked or per-row parameters, mixed static and dynamic layers).",
  },
  MAAS_ERR_NATIVE_INVALID_ARGUMENT: {
    kind: 'InvalidArgument',
    doc: 'The addon rejected an argument (a bug above it).',
  },
  MAAS_ERR_NATIVE_OUT_OF_MEMORY: { kind: 'ResourceExhausted', doc: 'The addon could not allocate scratch memory.' },
  MAAS_ERR_NATIVE_INTERNAL: { kind: 'Internal', doc: 'The addon reported an unexpected status.' },
} as const satisfies Record<string, ErrorEntry>;

/** A registry code. */
export type ErrorCode = keyof typeof ERRORS;

/** The error every maas API throws. */
export class MaasError extends Error {
  /** The MAAS_ERR_* code, a key of ERRORS. */
  readonly code: ErrorCode;
  /** The transport-neutral kind, which each protocol maps to its status. */
  readonly kind: ErrorKind;
  /** For a refusal that passes (a rate limit): when a retry may succeed, in milliseconds. */
  readonly retryAfterMs?: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MaasError';
    this.code = code;
    this.kind = ERRORS[code].kind;
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** True when `code` is in the registry. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** Re-raises an addon error as a MaasError with the same code (unknown ones become Internal). */
export function fromNative(error: unknown): MaasError {
  if (error instanceof MaasError) return error;
  const err = error as { code?: unknown; message?: unknown };
  const code = isErrorCode(err?.code) ? err.code : 'MAAS_ERR_NATIVE_INTERNAL';
  return new MaasError(code, String(err?.message ?? error), { cause: error });
}

/** The message of something thrown, whatever was thrown. */
export function messageOf(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  return describeValue(thrown);
}

/** Describes a received value for a message: its value when short, and its type. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value))
    return `${value.constructor.name} of length ${(value as unknown as ArrayLike<unknown>).length}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string') return `'${value.length > 40 ? value.slice(0, 40) + '…' : value}' of type string`;
  if (typeof value === 'object') return `an object of type ${value.constructor?.name ?? 'Object'}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return `${value.toString()} of type symbol`;
  return `${value as number | bigint | boolean | undefined} of type ${typeof value}`;
}

/** "Expected <expected> for <name> but received <value>": the one shape of argument errors. */
export function invalidParameter(
  name: string,
  expected: string,
  received: unknown,
  code: ErrorCode = 'MAAS_ERR_ARG_TYPE',
): MaasError {
  return new MaasError(code, `Expected ${expected} for ${name} but received ${describeValue(received)}`);
}
