/**
 * Model configuration: Triton's model_config in its JSON form (the names of config.pbtxt and of
 * the ModelConfig RPC), read from `<repo>/<model>/config.json`, completed from the model when
 * fields are absent (like Triton's auto-complete), and checked against the model it describes.
 */
import type { CanaryBounds } from '../canary-guard.js';
import { MaasError } from '../../core/errors.js';
import { SEALED_SUFFIX } from '../../io/sealed.js';
import type { BatchingPolicy } from '../batcher.js';
import { DENSE_PRECISIONS, type DensePrecision } from '../../model/packed.js';
import { EXPLAIN_METHODS, EXPLAIN_OPTION_NAMES, type ExplainMethod } from '../../explain/explanation.js';
import { isPlainObject } from '../../core/validation.js';
import { parseUpdatePolicy, type UpdatePolicy } from '../../lifecycle/update.js';

/** An input or output of config.json: its name, Triton data type and dims (without the batch dimension). */
export interface TensorConfig {
  name: string;
  data_type: string;
  dims: number[];
  /** An output's class names, one per line, in a file of the model's directory (Triton's classification extension). */
  label_filename?: string;
}

/** Triton's queue policy: queue size, default timeout and whether a request may override it. */
export interface QueuePolicyConfig {
  timeout_action: 'REJECT' | 'DELAY';
  default_timeout_microseconds: number;
  allow_timeout_override: boolean;
  max_queue_size: number;
}

/** Triton's dynamic_batching block: preferred sizes, queue delay, priority levels and queue policies. */
export interface DynamicBatchingConfig {
  preferred_batch_size: number[];
  max_queue_delay_microseconds: number;
  preserve_ordering: boolean;
  priority_levels: number;
  default_priority_level: number;
  default_queue_policy: QueuePolicyConfig;
}

/** Which versions to serve: the latest n, all, or a list (Triton's version_policy). */
export type VersionPolicyConfig =
  { latest: { num_versions: number } } | { all: Record<string, never> } | { specific: { versions: number[] } };

/** A complete model configuration (every field present after completion). */
export interface ModelConfig {
  name: string;
  platform: string;
  backend: string;
  version_policy: VersionPolicyConfig;
  max_batch_size: number;
  input: TensorConfig[];
  output: TensorConfig[];
  instance_group: { name: string; kind: 'KIND_CPU'; count: number }[];
  default_model_filename: string;
  dynamic_batching?: DynamicBatchingConfig;
  parameters: Record<string, { string_value: string }>;
}

/** What the loaded model says about itself, used to complete and check the config. */
export interface ModelFacts {
  inputSize: number;
  outputSize: number;
  platform: string;
  fileName: string;
  /** What the model says about itself in the config's parameters (precision, kernel, quantization). */
  parameters: Record<string, string>;
  /** The instance count when the config names none: the pool's workers (a lone model may use them all). */
  defaultInstances?: number;
}

/** The plaintext model files a version directory may hold, in the order they are looked for. */
export const PLAIN_MODEL_FILE_NAMES = ['model.json', 'model.h5', 'model.keras.h5', 'model.onnx'] as const;

/**
 * The files a version directory may hold, in the order they are looked for: encrypted ones
 * (io/sealed.ts) first, so a plaintext copy left beside an encrypted file is not what serves.
 */
export const MODEL_FILE_NAMES = [
  ...PLAIN_MODEL_FILE_NAMES.map((name) => `${name}${SEALED_SUFFIX}`),
  ...PLAIN_MODEL_FILE_NAMES,
];

/** max_batch_size when a config leaves it out. */
export const DEFAULT_MAX_BATCH_SIZE = 256;

const KNOWN_KEYS = new Set([
  'name',
  'platform',
  'backend',
  'version_policy',
  'max_batch_size',
  'input',
  'output',
  'instance_group',
  'default_model_filename',
  'dynamic_batching',
  'parameters',
]);

function bad(model: string, field: string, expected: string, received: unknown): MaasError {
  return new MaasError(
    'MAAS_ERR_MODEL_CONFIG',
    `Expected ${expected} for ${field} in the config of model '${model}' but received ${JSON.stringify(received)}`,
  );
}

/**
 * Upper bounds of the config's integers: each sizes an allocation or a timer, so a config (or a
 * load request's override) cannot make the server allocate or wait without limit. A priority_levels
 * of 1e8 used to stall the server for 42 s and add 4.8 GB.
 */
export const CONFIG_LIMITS = {
  max_batch_size: 65_536,
  preferred_batch_sizes: 64,
  priority_levels: 256,
  max_queue_delay_microseconds: 60_000_000,
  default_timeout_microseconds: 3_600_000_000,
  max_queue_size: 1_000_000,
  versions: 1_000,
  version_number: Number.MAX_SAFE_INTEGER,
  /** Instances (concurrent executions) of one model; more than the workers run as many as the workers. */
  instances: 1_024,
} as const;

function nonNegativeInt(model: string, field: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  // protobuf's JSON form writes 64-bit integers as strings
  const n = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max)
    throw bad(model, field, `an integer in [0, ${max}]`, value);
  return n;
}

function tensorList(model: string, field: string, value: unknown): TensorConfig[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length !== 1)
    throw bad(model, field, 'a list of exactly one tensor (maas models have one input and one output)', value);
  const t = value[0] as Record<string, unknown>;
  if (typeof t !== 'object' || t === null || typeof t.name !== 'string' || t.name.length === 0)
    throw bad(model, `${field}[0].name`, 'a tensor name', t?.name);
  const dataType = t.data_type ?? 'TYPE_FP32';
  if (dataType !== 'TYPE_FP32')
    throw bad(model, `${field}[0].data_type`, "'TYPE_FP32' (other input types are converted per request)", dataType);
  const dims = t.dims;
  if (dims !== undefined && (!Array.isArray(dims) || dims.some((d) => !Number.isInteger(Number(d)))))
    throw bad(model, `${field}[0].dims`, 'a list of integers', dims);
  const labels = t.label_filename;
  // A name inside the model directory: no separator, no '.' or '..'.
  if (labels !== undefined && (field !== 'output' || typeof labels !== 'string' || !/^\w[\w.-]{0,254}$/.test(labels)))
    throw bad(model, `${field}[0].label_filename`, "a file name in the model's directory (outputs only)", labels);
  return [
    {
      name: t.name,
      data_type: 'TYPE_FP32',
      dims: dims ? (dims as unknown[]).map(Number) : [],
      ...(labels !== undefined ? { label_filename: labels } : {}),
    },
  ];
}

function versionPolicy(model: string, value: unknown): VersionPolicyConfig {
  if (value === undefined) return { latest: { num_versions: 1 } };
  const v = value as Record<string, Record<string, unknown>>;
  if (v && typeof v === 'object') {
    if (v.latest)
      return {
        latest: {
          num_versions: Math.max(
            1,
            nonNegativeInt(
              model,
              'version_policy.latest.num_versions',
              v.latest.num_versions,
              1,
              CONFIG_LIMITS.versions,
            ),
          ),
        },
      };
    if (v.all) return { all: {} };
    if (
      v.specific &&
      Array.isArray(v.specific.versions) &&
      v.specific.versions.length > 0 &&
      v.specific.versions.length <= CONFIG_LIMITS.versions
    ) {
      return {
        specific: {
          versions: v.specific.versions.map((n, i) =>
            nonNegativeInt(model, `version_policy.specific.versions[${i}]`, n, 0, CONFIG_LIMITS.version_number),
          ),
        },
      };
    }
  }
  throw bad(model, 'version_policy', '{latest: {num_versions}}, {all: {}} or {specific: {versions: [...]}}', value);
}

function dynamicBatching(model: string, value: unknown, maxBatchSize: number): DynamicBatchingConfig | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') throw bad(model, 'dynamic_batching', 'an object', value);
  const d = value as Record<string, unknown>;
  const preferred = (d.preferred_batch_size ?? []) as unknown[];
  if (!Array.isArray(preferred))
    throw bad(model, 'dynamic_batching.preferred_batch_size', 'a list of batch sizes', preferred);
  if (preferred.length > CONFIG_LIMITS.preferred_batch_sizes)
    throw bad(
      model,
      'dynamic_batching.preferred_batch_size',
      `at most ${CONFIG_LIMITS.preferred_batch_sizes} sizes`,
      preferred,
    );
  const sizes = preferred.map((n, i) =>
    nonNegativeInt(model, `dynamic_batching.preferred_batch_size[${i}]`, n, 0, maxBatchSize),
  );
  for (const size of sizes) {
    if (size < 1 || size > maxBatchSize)
      throw bad(model, 'dynamic_batching.preferred_batch_size', `sizes in [1, max_batch_size=${maxBatchSize}]`, size);
  }
  const levels = nonNegativeInt(
    model,
    'dynamic_batching.priority_levels',
    d.priority_levels,
    0,
    CONFIG_LIMITS.priority_levels,
  );
  const defaultLevel = nonNegativeInt(
    model,
    'dynamic_batching.default_priority_level',
    d.default_priority_level,
    levels > 0 ? 1 : 0,
    CONFIG_LIMITS.priority_levels,
  );
  if (levels > 0 && (defaultLevel < 1 || defaultLevel > levels))
    throw bad(model, 'dynamic_batching.default_priority_level', `a level in [1, ${levels}]`, defaultLevel);
  const q = (d.default_queue_policy ?? {}) as Record<string, unknown>;
  const action = q.timeout_action ?? 'REJECT';
  if (action !== 'REJECT')
    throw bad(
      model,
      'dynamic_batching.default_queue_policy.timeout_action',
      "'REJECT' (maas rejects timed-out requests)",
      action,
    );
  return {
    preferred_batch_size: sizes,
    max_queue_delay_microseconds: nonNegativeInt(
      model,
      'dynamic_batching.max_queue_delay_microseconds',
      d.max_queue_delay_microseconds,
      0,
      CONFIG_LIMITS.max_queue_delay_microseconds,
    ),
    preserve_ordering: Boolean(d.preserve_ordering ?? false),
    priority_levels: levels,
    default_priority_level: defaultLevel,
    default_queue_policy: {
      timeout_action: 'REJECT',
      default_timeout_microseconds: nonNegativeInt(
        model,
        'dynamic_batching.default_queue_policy.default_timeout_microseconds',
        q.default_timeout_microseconds,
        0,
        CONFIG_LIMITS.default_timeout_microseconds,
      ),
      allow_timeout_override: q.allow_timeout_override === undefined ? true : Boolean(q.allow_timeout_override),
      max_queue_size: nonNegativeInt(
        model,
        'dynamic_batching.default_queue_policy.max_queue_size',
        q.max_queue_size,
        0,
        CONFIG_LIMITS.max_queue_size,
      ),
    },
  };
}

/**
 * Checks a raw config (from config.json or a load request's override) and fills what is absent.
 * `facts` come from the loaded model; dims that disagree with it are refused.
 */
export function completeConfig(modelName: string, raw: unknown, facts?: ModelFacts): ModelConfig {
  const c = (raw ?? {}) as Record<string, unknown>;
  if (typeof c !== 'object' || Array.isArray(c)) throw bad(modelName, 'the config', 'a JSON object', raw);
  for (const key of Object.keys(c)) {
    if (!KNOWN_KEYS.has(key))
      throw bad(modelName, key, `one of the supported fields (${[...KNOWN_KEYS].join(', ')})`, key);
  }
  if (c.name !== undefined && c.name !== modelName)
    throw bad(modelName, 'name', `the model directory's name '${modelName}'`, c.name);
  // Dense models always take a batch dimension, so an absent max_batch_size means batches up to 256.
  const maxBatchSize = nonNegativeInt(
    modelName,
    'max_batch_size',
    c.max_batch_size,
    DEFAULT_MAX_BATCH_SIZE,
    CONFIG_LIMITS.max_batch_size,
  );
  const input = tensorList(modelName, 'input', c.input) ?? [{ name: 'input', data_type: 'TYPE_FP32', dims: [] }];
  const output = tensorList(modelName, 'output', c.output) ?? [{ name: 'output', data_type: 'TYPE_FP32', dims: [] }];
  const batching = dynamicBatching(modelName, c.dynamic_batching, maxBatchSize);
  if (batching && maxBatchSize === 0)
    throw bad(modelName, 'dynamic_batching', 'no dynamic_batching when max_batch_size is 0', c.dynamic_batching);
  if (facts) {
    for (const [list, size, field] of [
      [input, facts.inputSize, 'input'],
      [output, facts.outputSize, 'output'],
    ] as const) {
      const dims = list[0]!.dims;
      if (dims.length === 0) list[0]!.dims = [size];
      else if (dims.length !== 1 || dims[0] !== size)
        throw bad(modelName, `${field}[0].dims`, `[${size}] (the model's ${field} width)`, dims);
    }
  }
  const fileName = c.default_model_filename;
  // A name inside the version directory: no separator, no '.' or '..'.
  if (fileName !== undefined && (typeof fileName !== 'string' || !/^\w[\w.-]{0,254}$/.test(fileName)))
    throw bad(modelName, 'default_model_filename', 'a file name', fileName);
  const groups = (c.instance_group ?? [{ kind: 'KIND_CPU', count: facts?.defaultInstances ?? 1 }]) as {
    name?: string;
    kind?: string;
    count?: number;
  }[];
  if (
    !Array.isArray(groups) ||
    groups.some((g) => g.kind !== undefined && g.kind !== 'KIND_CPU' && g.kind !== 'KIND_AUTO')
  ) {
    throw bad(modelName, 'instance_group', 'CPU instance groups (the worker pool runs every model)', c.instance_group);
  }
  groups.forEach((g, i) =>
    nonNegativeInt(modelName, `instance_group[${i}].count`, g.count, 1, CONFIG_LIMITS.instances),
  );
  const parameters = (c.parameters ?? {}) as Record<string, { string_value: string }>;
  if (typeof parameters !== 'object' || Array.isArray(parameters))
    throw bad(modelName, 'parameters', 'a map of {string_value}', parameters);
  return {
    name: modelName,
    platform: facts?.platform ?? (typeof c.platform === 'string' ? c.platform : 'maas_dense'),
    backend: 'maas',
    version_policy: versionPolicy(modelName, c.version_policy),
    max_batch_size: maxBatchSize,
    input,
    output,
    instance_group: groups.map((g, i) => ({
      name: g.name ?? `${modelName}_${i}`,
      kind: 'KIND_CPU' as const,
      count: Number(g.count ?? 1) || 1,
    })),
    default_model_filename: typeof fileName === 'string' ? fileName : (facts?.fileName ?? ''),
    ...(batching ? { dynamic_batching: batching } : {}),
    parameters: {
      ...parameters,
      ...Object.fromEntries(Object.entries(facts?.parameters ?? {}).map(([k, v]) => [k, { string_value: v }])),
    },
  };
}

/** The config.json parameter that requires ("true") or waives ("false") a digest in a model's files. */
export const STRICT_INTEGRITY_PARAMETER = 'strict_integrity';

/**
 * Whether a model's files must record a digest (openModelFile's strictIntegrity): its
 * strict_integrity parameter when the config has one, else the server's default.
 */
export function strictIntegrityOf(config: ModelConfig, serverDefault: boolean): boolean {
  if (!Object.hasOwn(config.parameters, STRICT_INTEGRITY_PARAMETER)) return serverDefault;
  const entry: unknown = config.parameters[STRICT_INTEGRITY_PARAMETER];
  const value = (entry as { string_value?: unknown } | null)?.string_value;
  const word = typeof value === 'string' ? value.toLowerCase() : undefined;
  if (word === 'true' || word === 'false') return word === 'true';
  throw bad(
    config.name,
    `parameters.${STRICT_INTEGRITY_PARAMETER}`,
    '{"string_value": "true"} or {"string_value": "false"}',
    entry,
  );
}

/** The config.json parameter that serves an fp32 model in another precision ("bf16"). */
export const PRECISION_PARAMETER = 'precision';

/**
 * The precision a model's config asks its fp32 files to be served in: "fp32" or "bf16" (weights
 * and activations rounded to bf16, products summed in fp32), or undefined when the config says
 * nothing (served as the file is). An int8 model is made with `maas quantize`, not asked for here.
 */
export function requestedPrecisionOf(config: ModelConfig): DensePrecision | undefined {
  return choiceParameter(config, PRECISION_PARAMETER, DENSE_PRECISIONS, ' (int8 models are made with maas quantize)');
}

/** A parameter that names one of `choices` in its string_value (undefined when absent); anything else is refused. */
function choiceParameter<T extends string>(
  config: ModelConfig,
  name: string,
  choices: readonly T[],
  hint = '',
): T | undefined {
  if (!Object.hasOwn(config.parameters, name)) return undefined;
  const entry: unknown = config.parameters[name];
  const value = (entry as { string_value?: unknown } | null)?.string_value;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  const expected = choices.map((c) => `{"string_value": "${c}"}`);
  throw bad(
    config.name,
    `parameters.${name}`,
    `${expected.slice(0, -1).join(', ')} or ${expected[expected.length - 1]}${hint}`,
    entry,
  );
}

/** The config.json parameter that says where a version's batches run: "auto", "inline" or "pool". */
export const PLACEMENT_PARAMETER = 'placement';

/** Where a config asks its batches to run; "auto" decides per batch from the measured costs. */
export type PlacementChoice = 'auto' | 'inline' | 'pool';
const PLACEMENT_CHOICES: readonly PlacementChoice[] = ['auto', 'inline', 'pool'];

/**
 * Where a model's config asks its batches to run: "inline" (on the serving thread), "pool" (in the
 * workers) or "auto" (the default: inline when a batch costs less than handing it to a worker).
 */
export function placementOf(config: ModelConfig): PlacementChoice {
  return choiceParameter(config, PLACEMENT_PARAMETER, PLACEMENT_CHOICES) ?? 'auto';
}

/** The batcher's view of a config. */
/** The executions a version may run at once: its instance groups' counts together. */
export function instanceCount(config: ModelConfig): number {
  return config.instance_group.reduce((sum, g) => sum + g.count, 0);
}

export function batchingPolicy(config: ModelConfig, maxQueueBytes: number): BatchingPolicy {
  const d = config.dynamic_batching;
  return {
    maxQueueBytes,
    maxBatchSize: config.max_batch_size,
    dynamic: d !== undefined,
    preferredBatchSizes: d?.preferred_batch_size ?? [],
    maxQueueDelayUs: d?.max_queue_delay_microseconds ?? 0,
    maxQueueSize: d?.default_queue_policy.max_queue_size ?? 0,
    defaultTimeoutUs: d?.default_queue_policy.default_timeout_microseconds ?? 0,
    allowTimeoutOverride: d?.default_queue_policy.allow_timeout_override ?? true,
    priorityLevels: d?.priority_levels ?? 0,
    defaultPriorityLevel: d?.default_priority_level ?? 0,
  };
}

/** The version numbers a policy serves, from those present on disk (ascending). */
export function selectVersions(policy: VersionPolicyConfig, available: number[]): number[] {
  const sorted = [...available].sort((a, b) => a - b);
  if ('all' in policy) return sorted;
  if ('specific' in policy) return sorted.filter((v) => policy.specific.versions.includes(v));
  return sorted.slice(-policy.latest.num_versions);
}

/** The config.json parameters of the explain extension. */
export const EXPLAIN_METHOD_PARAMETER = 'explain_method';
export const EXPLAIN_OPTIONS_PARAMETER = 'explain_options';
export const EXPLAIN_BACKGROUND_PARAMETER = 'explain_background';

/** What a model's config says of explanations: the default method, its options, the background file. */
export interface ExplainSettings {
  method: ExplainMethod;
  options: Record<string, unknown>;
  /** A JSON file in the model's directory: an array of feature rows, or of raw records. */
  backgroundFile?: string;
}

/**
 * A model's explain settings, or null when its config does not enable explanations (no
 * explain_method). explain_options is a JSON object of the method's options; explain_background
 * names a file in the model's directory.
 */
export function explainSettingsOf(config: ModelConfig): ExplainSettings | null {
  const method = choiceParameter(config, EXPLAIN_METHOD_PARAMETER, EXPLAIN_METHODS);
  if (method === undefined) {
    for (const name of [EXPLAIN_OPTIONS_PARAMETER, EXPLAIN_BACKGROUND_PARAMETER])
      if (Object.hasOwn(config.parameters, name))
        throw bad(config.name, `parameters.${name}`, `parameters.${EXPLAIN_METHOD_PARAMETER} beside it`, name);
    return null;
  }
  const text = stringParameter(config, EXPLAIN_OPTIONS_PARAMETER);
  let options: Record<string, unknown> = {};
  if (text !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!isPlainObject(parsed))
      throw bad(config.name, `parameters.${EXPLAIN_OPTIONS_PARAMETER}`, '{"string_value": "<a JSON object>"}', text);
    const known = EXPLAIN_OPTION_NAMES[method];
    for (const key of Object.keys(parsed))
      if (!known.includes(key))
        throw bad(
          config.name,
          `parameters.${EXPLAIN_OPTIONS_PARAMETER}.${key}`,
          `one of ${known.join(', ')} for ${method}`,
          key,
        );
    options = parsed;
  }
  const backgroundFile = stringParameter(config, EXPLAIN_BACKGROUND_PARAMETER);
  if (backgroundFile !== undefined && !/^\w[\w.-]{0,254}$/.test(backgroundFile))
    throw bad(
      config.name,
      `parameters.${EXPLAIN_BACKGROUND_PARAMETER}`,
      "a file name in the model's directory",
      backgroundFile,
    );
  return { method, options, ...(backgroundFile !== undefined ? { backgroundFile } : {}) };
}

/** The config.json parameters of version labels and the canary's share of unversioned requests. */
export const VERSION_LABELS_PARAMETER = 'version_labels';
export const CANARY_PERCENT_PARAMETER = 'canary_traffic_percent';

/** Labels naming versions ("stable", "canary", …), and the percent of unversioned requests the canary takes. */
export interface VersionRouting {
  labels: Record<string, number>;
  canaryPercent: number;
}

/** The config.json parameters of the canary's guard (any of the two bounds turns it on). */
export const CANARY_GUARD_PARAMETERS = {
  maxErrorIncrease: 'canary_max_error_increase',
  maxP99Ratio: 'canary_max_p99_ratio',
  windowSeconds: 'canary_window_seconds',
  minRequests: 'canary_min_requests',
} as const;

/**
 * When config.json says to roll the canary back by itself: its error rate above stable's by more
 * than canary_max_error_increase (a fraction), or its p99 above canary_max_p99_ratio × stable's,
 * over canary_window_seconds (default 60) once each side has canary_min_requests (default 50).
 * Null without either bound.
 */
export function canaryBoundsOf(config: ModelConfig): CanaryBounds | null {
  const number = (name: string, min: number, max: number): number | undefined => {
    const text = stringParameter(config, name);
    if (text === undefined) return undefined;
    const v = Number(text);
    if (!(Number.isFinite(v) && v >= min && v <= max))
      throw bad(config.name, `parameters.${name}`, `{"string_value": "<a number in [${min}, ${max}]>"}`, text);
    return v;
  };
  const p = CANARY_GUARD_PARAMETERS;
  const maxErrorIncrease = number(p.maxErrorIncrease, 0, 1);
  const maxP99Ratio = number(p.maxP99Ratio, 1, 1000);
  const windowSeconds = number(p.windowSeconds, 1, 86_400);
  const minRequests = number(p.minRequests, 1, 1_000_000);
  if (maxErrorIncrease === undefined && maxP99Ratio === undefined) {
    if (windowSeconds !== undefined || minRequests !== undefined)
      throw bad(
        config.name,
        `parameters.${p.windowSeconds}`,
        `parameters.${p.maxErrorIncrease} or ${p.maxP99Ratio} beside it`,
        windowSeconds ?? minRequests,
      );
    return null;
  }
  return {
    ...(maxErrorIncrease !== undefined ? { maxErrorIncrease } : {}),
    ...(maxP99Ratio !== undefined ? { maxP99Ratio } : {}),
    windowMs: (windowSeconds ?? 60) * 1000,
    minRequests: Math.round(minRequests ?? 50),
  };
}

const LABEL_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * Checks a routing (from config.json, or set at run time): labels are short lowercase names of
 * positive integer versions (a label cannot look like a version number), the percent is in
 * [0, 100], and a canary share needs both a "canary" and a "stable" label. `where` names it in errors.
 */
export function checkedRouting(model: string, labels: unknown, canaryPercent: unknown, where: string): VersionRouting {
  if (!isPlainObject(labels) || Object.keys(labels).length > 16)
    throw bad(model, `${where}labels`, 'an object of at most 16 labels, each naming a version', labels);
  for (const [label, version] of Object.entries(labels)) {
    if (!LABEL_PATTERN.test(label))
      throw bad(
        model,
        `${where}labels`,
        'labels of lowercase letters, digits, _ and - (starting with a letter)',
        label,
      );
    if (!Number.isInteger(version) || (version as number) < 1)
      throw bad(model, `${where}labels.${label}`, 'a version number', version);
  }
  const percent = canaryPercent === undefined ? 0 : canaryPercent;
  if (typeof percent !== 'number' || !(percent >= 0 && percent <= 100))
    throw bad(model, `${where}canary percent`, 'a number in [0, 100]', canaryPercent);
  if (percent > 0 && (!Object.hasOwn(labels, 'canary') || !Object.hasOwn(labels, 'stable')))
    throw bad(model, `${where}labels`, 'a "stable" and a "canary" label beside a canary share', labels);
  return { labels: { ...(labels as Record<string, number>) }, canaryPercent: percent };
}

/** A model's routing from its config.json (version_labels, canary_traffic_percent), or null without labels. */
export function routingFromConfig(config: ModelConfig): VersionRouting | null {
  const text = stringParameter(config, VERSION_LABELS_PARAMETER);
  const percentText = stringParameter(config, CANARY_PERCENT_PARAMETER);
  if (text === undefined) {
    if (percentText !== undefined)
      throw bad(
        config.name,
        `parameters.${CANARY_PERCENT_PARAMETER}`,
        `parameters.${VERSION_LABELS_PARAMETER} beside it`,
        percentText,
      );
    return null;
  }
  let labels: unknown;
  try {
    labels = JSON.parse(text);
  } catch {
    labels = text;
  }
  const percent = percentText === undefined ? undefined : Number(percentText);
  return checkedRouting(config.name, labels, percent, 'parameters.version_labels: ');
}

/** A parameter's string_value (undefined when absent); any other shape is refused. */
function stringParameter(config: ModelConfig, name: string): string | undefined {
  if (!Object.hasOwn(config.parameters, name)) return undefined;
  const entry: unknown = config.parameters[name];
  const value = (entry as { string_value?: unknown } | null)?.string_value;
  if (typeof value !== 'string') throw bad(config.name, `parameters.${name}`, '{"string_value": "…"}', entry);
  return value;
}

/** What a model's config says about updates from new rows (the update extension). */
export interface UpdateSettings {
  /** The metric a candidate must improve and by how much (update_metric, default loss; update_margin, default 0). */
  policy: UpdatePolicy;
  /** Default epochs and rows per step (update_epochs, update_batch_size). */
  epochs?: number;
  batchSize?: number;
  /** A JSON file of held-out rows in the model's directory (update_holdout), used when an update sends none. */
  holdoutFile?: string;
  /** The share of the pool's workers an update trains on, kept from inference meanwhile (update_worker_share, default 0.5). */
  workerShare: number;
  /** The most bytes of rows one update may send (update_max_bytes, default 256 MiB). */
  maxBytes: number;
}

/** The config parameters that set UpdateSettings. */
export const UPDATE_PARAMETERS = {
  metric: 'update_metric',
  margin: 'update_margin',
  epochs: 'update_epochs',
  batchSize: 'update_batch_size',
  holdout: 'update_holdout',
  workerShare: 'update_worker_share',
  maxBytes: 'update_max_bytes',
} as const;

/** The most bytes of rows an update may send unless the config says otherwise. */
export const DEFAULT_UPDATE_MAX_BYTES = 256 * 1024 * 1024;

/** A model's update settings from its config's parameters, checked. */
export function updateSettingsOf(config: ModelConfig): UpdateSettings {
  const p = UPDATE_PARAMETERS;
  const number = (name: string, min: number, max: number, integer: boolean): number | undefined => {
    const text = stringParameter(config, name);
    if (text === undefined) return undefined;
    const v = Number(text);
    if (!(Number.isFinite(v) && v >= min && v <= max) || (integer && !Number.isInteger(v)))
      throw bad(
        config.name,
        `parameters.${name}`,
        `{"string_value": "<${integer ? 'an integer' : 'a number'} in [${min}, ${max}]>"}`,
        text,
      );
    return v;
  };
  const holdoutFile = stringParameter(config, p.holdout);
  if (holdoutFile !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(holdoutFile))
    throw bad(config.name, `parameters.${p.holdout}`, 'a file name in the model directory', holdoutFile);
  let policy: UpdatePolicy;
  try {
    policy = parseUpdatePolicy(stringParameter(config, p.metric), stringParameter(config, p.margin));
  } catch (error) {
    throw new MaasError('MAAS_ERR_MODEL_CONFIG', `Model '${config.name}': ${(error as Error).message}`);
  }
  const epochs = number(p.epochs, 1, 10_000, true);
  const batchSize = number(p.batchSize, 1, 65_536, true);
  return {
    policy,
    ...(epochs !== undefined ? { epochs } : {}),
    ...(batchSize !== undefined ? { batchSize } : {}),
    ...(holdoutFile !== undefined ? { holdoutFile } : {}),
    workerShare: number(p.workerShare, 0, 1, false) ?? 0.5,
    maxBytes: number(p.maxBytes, 1, 2 ** 40, true) ?? DEFAULT_UPDATE_MAX_BYTES,
  };
}
