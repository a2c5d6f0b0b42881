#!/usr/bin/env node
/**
 * The `maas` command line. `maas serve` runs the inference service (what `npm start` runs on the
 * bundled repository); `maas quantize` makes an int8 model and prints its accuracy report;
 * `maas demo` builds and times the example model; `maas convert IN OUT` converts between model
 * formats; `maas encrypt`, `maas decrypt` and `maas keygen` keep models encrypted at rest;
 * `maas info` shows the CPU, the selected kernels and the backends; `maas select` compares
 * candidate models by cross-validation and saves the winner; `maas rollback` serves an earlier
 * version again.
 */
import cluster from 'node:cluster';
import { Command, InvalidArgumentError } from 'commander';
import { runDemo } from './demo.js';
import { runConvert } from './convert.js';
import { runDecrypt, runEncrypt, runKeygen, type KeySourceOptions } from './encrypt.js';
import { runServe, type ServeCommandOptions } from './serve.js';
import type { ClientCertificates } from '../serving/auth/tls.js';
import { runQuantize } from './quantize.js';
import { runPack } from './pack.js';
import { runExplain } from './explain.js';
import { EXPLAIN_METHODS, type ExplainMethod } from '../explain/explanation.js';
import { runTokenCreate, runTokenList, runTokenRevoke, type TokenCreateOptions } from './token.js';
import { SCOPES } from '../serving/auth/tokens.js';
import { CALIBRATION_METHODS, type CalibrationMethod } from '../quant/calibrate.js';
import { backendInfo } from '../runtime.js';
import type { WorkerIsolation } from '../pool/pool.js';
import { runSelect, type SelectCommandOptions } from './select.js';
import { runRollback } from './rollback.js';
import type { SelectionMetric } from '../lifecycle/select.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer but received '${value}'`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`expected a port in [0, 65535] (0 picks a free one) but received '${value}'`);
  return n;
}

/** A port from the environment (KServe's PORT and GRPC_PORT), or `fallback`; a bad value stops the command. */
function envPort(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  try {
    return port(value);
  } catch (error) {
    console.error(`maas: $${name}: ${(error as Error).message}`);
    process.exit(2);
  }
}

/**
 * KServe's model servers take Python-style flags (--model_name=x, --http_port 8080): the same
 * flags with underscores are read as maas's dashed ones, so a KServe runtime's args work as is.
 */
const KSERVE_FLAGS: Record<string, string> = {
  '--model_name': '--model-name',
  '--model_dir': '--model-dir',
  '--http_port': '--http-port',
  '--grpc_port': '--grpc-port',
};
function kserveFlags(argv: string[]): string[] {
  return argv.map((arg) => {
    const [flag, ...rest] = arg.split('=');
    const dashed = KSERVE_FLAGS[flag!];
    return dashed ? [dashed, ...rest].join('=') : arg;
  });
}

function controlMode(value: string): string {
  if (!['none', 'poll', 'explicit'].includes(value))
    throw new InvalidArgumentError(`expected none, poll or explicit but received '${value}'`);
  return value;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive number but received '${value}'`);
  return n;
}

/** A size in bytes: a number, with K, M, G or T (powers of 1024; an optional "iB" or "B"). */
function byteSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(value.trim());
  const bytes = m ? Number(m[1]) * 1024 ** (m[2] ? 'kmgt'.indexOf(m[2].toLowerCase()) + 1 : 0) : NaN;
  if (!Number.isSafeInteger(Math.floor(bytes)) || bytes <= 0)
    throw new InvalidArgumentError(`expected a size such as 512M or 20G but received '${value}'`);
  return Math.floor(bytes);
}

function clientCerts(value: string): ClientCertificates {
  if (value !== 'none' && value !== 'optional' && value !== 'required')
    throw new InvalidArgumentError(`expected none, optional or required but received '${value}'`);
  return value;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function isolation(value: string): WorkerIsolation {
  if (value !== 'thread' && value !== 'process')
    throw new InvalidArgumentError(`expected thread or process but received '${value}'`);
  return value;
}

const program = new Command()
  .name('maas')
  .description('Model as a Service: train, quantize and serve dense neural networks')
  .showHelpAfterError();

program
  .command('serve')
  .description('serve a model repository over KServe v2 gRPC and REST, with Prometheus metrics')
  .option(
    '--model-repository <dir>',
    'the repository: <dir>/<model>/config.json and <dir>/<model>/<version>/model.json|.h5|.onnx; or s3://bucket/prefix',
  )
  .option(
    '--model-name <name>',
    "serve one model under this name from --model-dir (KServe's --model_name; instead of --model-repository)",
  )
  .option(
    '--model-dir <dir>',
    "with --model-name: the model's directory, its versions or its files (default /mnt/models, KServe's)",
  )
  .option(
    '--repository-cache <dir>',
    'where an s3:// repository is copied to (default ~/.cache/maas/repositories/<bucket>-<id>)',
  )
  .option(
    '--s3-endpoint <url>',
    'an S3-compatible store for s3:// (MinIO, Ceph, GCS; default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)',
  )
  .option(
    '--host <address>',
    'address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 once TLS or a token file is set)',
  )
  .option('--http-port <port>', 'REST port (default $PORT, else 8000)', port, envPort('PORT', 8000))
  .option('--grpc-port <port>', 'gRPC port (default $GRPC_PORT, else 8001)', port, envPort('GRPC_PORT', 8001))
  .option('--metrics-port <port>', 'Prometheus /metrics port', port, 8002)
  .option('--workers <n>', 'inference worker threads (default: one per core)', positiveInt)
  .option('--threads <n>', 'native threads per worker (default 1)', positiveInt)
  .option(
    '--worker-isolation <kind>',
    'thread (default: fastest) or process (a crashing worker fails only its own requests; Linux)',
    isolation,
  )
  .option(
    '--model-control-mode <mode>',
    'none (load all at start), poll (reload on change) or explicit (load/unload API)',
    controlMode,
    'none',
  )
  .option('--repository-poll-secs <n>', 'seconds between repository scans in poll mode', positiveInt, 15)
  .option('--load-model <name>', 'in explicit mode, a model to load at start (repeatable; * = all)', collect, [])
  .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace, silent', 'info')
  .option('--max-message-bytes <n>', 'largest gRPC message / REST body (default 64 MiB)', positiveInt)
  .option('--model-load-timeout-secs <n>', 'stop a model load that takes longer (default 300)', positiveInt)
  .option(
    '--max-queue-bytes <n>',
    'queued input bytes per model version before requests are rejected (default 256 MiB)',
    positiveInt,
  )
  .option(
    '--connection-max-age-secs <n>',
    'end gRPC and REST connections older than this (gRPC GOAWAY, REST after the next answer; default: no limit)',
    positiveInt,
  )
  .option(
    '--connection-idle-secs <n>',
    'close connections with nothing in flight for this long (default 65)',
    positiveInt,
  )
  .option(
    '--grpc-max-in-flight-per-stream <n>',
    'requests read from one ModelStreamInfer stream and not yet answered; beyond, the stream is not read (default 128)',
    positiveInt,
  )
  .option(
    '--http-max-in-flight-per-connection <n>',
    'REST requests of one connection running at once (pipelining); as many more may wait (default 32)',
    positiveInt,
  )
  .option(
    '--http-json-thread-bytes <n>',
    'REST JSON bodies of this size or more are parsed in a thread, off the event loop (default 1 MiB)',
    positiveInt,
  )
  .option(
    '--shutdown-grace-secs <n>',
    'on SIGTERM, seconds in-flight calls may finish before open streams and connections are closed (default 25)',
    positiveInt,
  )
  .option(
    '--strict-model-integrity',
    'refuse model files that record no digest, unless a model config sets strict_integrity to "false"',
  )
  .option(
    '--model-key-file <file>',
    'keys of encrypted model files (*.enc): lines of "<key id> <key>", no access for others (also: MAAS_MODEL_KEY)',
  )
  .option(
    '--model-key-command <command>',
    'a KMS-style hook printing the key of a key id: words split on spaces, no shell, {keyId} replaced',
  )
  .option(
    '--tls-cert <file>',
    'PEM certificate (chain) of the server: TLS on gRPC, REST and metrics; reloaded on change',
  )
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
  .option('--tls-ca <file>', 'PEM CA bundle client certificates must chain to (mutual TLS)')
  .option('--tls-client-certs <mode>', 'none, optional or required (default: required with --tls-ca)', clientCerts)
  .option(
    '--token-file <file>',
    'API tokens (maas token create): every call then needs a token or a mapped client certificate; reloaded on change',
  )
  .option(
    '--token-header <name>',
    "also accept a bare token in this header (Triton's restricted-API form for its clients), besides Authorization: Bearer",
  )
  .option('--no-open-health', 'server live/ready need credentials too (by default they answer anyone, for probes)')
  .option('--open-metrics', '/metrics answers without credentials (by default it needs the metadata scope)')
  .option('--rate-limit <n>', 'requests per second per token (or address without one)', positiveNumber)
  .option('--rate-burst <n>', 'requests at once above the rate (default: one second of it)', positiveInt)
  .option('--max-concurrent-per-client <n>', 'requests of one token (or address) running at once', positiveInt)
  .option(
    '--ui',
    'serve a page at /ui: models, statistics, a form that predicts and explains one row, training history',
  )
  .option('--audit-log <file>', 'JSON-lines audit trail: loads, unloads, refusals, inference counts (file made 0600)')
  .option(
    '--processes <n>',
    'serving processes (node:cluster) sharing the ports and one copy of the weights through the packed cache (default 1)',
    positiveInt,
  )
  .option(
    '--packed-cache <dir>',
    'where packed weights are kept and mapped from (made 0700; default $MAAS_PACKED_CACHE or ~/.cache/maas/packed)',
  )
  .option('--no-packed-cache', 'pack every model in memory at each load instead')
  .option(
    '--packed-cache-max-size <size>',
    'after each pack, remove stale and least recently used entries until the cache holds at most this (e.g. 20G)',
    byteSize,
  )
  .action((opts: Omit<ServeCommandOptions, 'print'>) => runServe({ ...opts, print: (line) => console.log(line) }));

program
  .command('demo')
  .description('build the example model (100 → 64 relu → 32 relu → 1 sigmoid), predict and time it')
  .option('--batch <n>', 'rows to predict', positiveInt, 8)
  .option('--seed <n>', 'seed of the weights and inputs', positiveInt, 42)
  .action((opts: { batch: number; seed: number }) => runDemo({ ...opts, print: (line) => console.log(line) }));

program
  .command('convert')
  .description('convert a model: IN is model.json (or its directory), .h5 or .onnx; OUT is .onnx, .h5 or a directory')
  .argument('<in>', 'the model to read')
  .argument('<out>', 'where to write it (.onnx, or a directory for model.json + weights)')
  .option('--architecture <json>', 'the to_json architecture for a Keras weights-only .h5')
  .action(async (input: string, output: string, opts: { architecture?: string }) => {
    await runConvert(input, output, { ...opts, print: (line) => console.log(line) });
  });

const KEY_FILE_HELP = 'a key file of "<key id> <key>" lines (also: MAAS_MODEL_KEY and MAAS_MODEL_KEY_ID)';
const KEY_COMMAND_HELP = 'a KMS-style hook that prints the key: words split on spaces, no shell, {keyId} replaced';

program
  .command('encrypt')
  .description(
    'encrypt a model (model.json or its directory with its weights, .onnx, .h5) into one file with AES-256-GCM',
  )
  .argument('<in>', 'the model to encrypt')
  .argument('<out>', 'the encrypted file, named after the model file plus .enc (model.json.enc, model.onnx.enc, …)')
  .option('--key-id <id>', 'the key to encrypt with, stored in the file (default: the one key the sources hold)')
  .option('--key-file <file>', KEY_FILE_HELP)
  .option('--key-command <command>', KEY_COMMAND_HELP)
  .action(async (input: string, output: string, opts: KeySourceOptions & { keyId?: string }) => {
    await runEncrypt(input, output, { ...opts, print: (line) => console.log(line) });
  });

program
  .command('decrypt')
  .description(
    'decrypt an encrypted model file into a directory (the plaintext weights land on disk: only when you need them)',
  )
  .argument('<in>', 'the encrypted model file (*.enc)')
  .argument('<dir>', 'the directory to write its files into (no file is overwritten)')
  .option('--key-file <file>', KEY_FILE_HELP)
  .option('--key-command <command>', KEY_COMMAND_HELP)
  .action(async (input: string, dir: string, opts: KeySourceOptions) => {
    await runDecrypt(input, dir, { ...opts, print: (line) => console.log(line) });
  });

program
  .command('keygen')
  .description('make a random 256-bit model key: prints "<key id> <key>", or adds it to a key file (made 0600)')
  .option('--key-id <id>', 'its key id', 'default')
  .option('--out <file>', 'the key file to add it to')
  .action(async (opts: { keyId: string; out?: string }) => {
    await runKeygen({ ...opts, print: (line) => console.log(line) });
  });

program
  .command('quantize')
  .description('quantize a model to int8 with calibration rows from a CSV, print the accuracy report, save it')
  .requiredOption('--model <dir>', 'the fp32 model (model.json or its directory, .h5, .onnx)')
  .requiredOption(
    '--calibration <csv>',
    'representative input rows (raw columns when the model has a preparation pipeline)',
  )
  .requiredOption('--out <dir>', 'where to save the quantized model')
  .option(
    '--method <method>',
    `activation ranges: ${CALIBRATION_METHODS.join(' | ')}`,
    (v: string) => {
      if (!CALIBRATION_METHODS.includes(v as CalibrationMethod))
        throw new InvalidArgumentError(`expected one of ${CALIBRATION_METHODS.join(', ')} but received '${v}'`);
      return v as CalibrationMethod;
    },
    'minmax',
  )
  .option('--keep-float <layers>', 'layers kept in fp32: first,last, indices or names')
  .option('--target <column>', 'a CSV column of targets: compares the compiled metrics too')
  .option('--per-tensor', 'one weight scale per layer instead of per output channel')
  .option('--min-agreement <fraction>', 'warn below this decision agreement (default 0.99)', Number)
  .action(
    async (opts: {
      model: string;
      calibration: string;
      out: string;
      method: CalibrationMethod;
      keepFloat?: string;
      target?: string;
      perTensor?: boolean;
      minAgreement?: number;
    }) => {
      await runQuantize({ ...opts, print: (line) => console.log(line) });
    },
  );

program
  .command('explain')
  .description("explain a model's predictions for rows in a JSON file: a ranked bar chart per row, and an HTML report")
  .requiredOption('--model <dir>', 'the model (model.json or its directory, .h5, .onnx)')
  .requiredOption(
    '--input <json>',
    'a row (numbers in input order, or a record when the model has a pipeline), or an array of them',
  )
  .option(
    '--method <method>',
    `${EXPLAIN_METHODS.join(' | ')} (default kernelShap with --background, else integratedGradients)`,
    (v: string) => {
      if (!EXPLAIN_METHODS.includes(v as ExplainMethod))
        throw new InvalidArgumentError(`expected one of ${EXPLAIN_METHODS.join(', ')} but received '${v}'`);
      return v as ExplainMethod;
    },
  )
  .option('--background <json>', 'background rows or records (SHAP and LIME need them)')
  .option('--output <index>', "the output to explain (default: each row's largest)", Number)
  .option('--steps <n>', 'integrated gradients: points along the path (default 50)', Number)
  .option('--nsamples <n>', 'Kernel SHAP: coalitions (default 2·d + 2048)', Number)
  .option('--samples <n>', 'LIME: perturbed samples (default 5000)', Number)
  .option('--seed <n>', 'Kernel SHAP and LIME sampling seed (default 0)', Number)
  .option('--top <n>', 'bars shown per row (default 20)', Number)
  .option('--report <html>', 'also write an HTML report with an SVG chart per row')
  .action(async (opts: Omit<Parameters<typeof runExplain>[0], 'print' | 'color'>) => {
    await runExplain({ ...opts, color: process.stdout.isTTY === true, print: (line) => console.log(line) });
  });

program
  .command('rollback')
  .description('serve an earlier version again: publish its exact bytes as the next version of the model')
  .argument('<model>', 'the model (a directory of the repository)')
  .requiredOption('--model-repository <dir>', 'the repository the server serves')
  .option('--to <version>', 'the version to serve again (default: the newest below the newest)', positiveInt)
  .action(async (model: string, opts: { modelRepository: string; to?: number }) => {
    await runRollback(model, { ...opts, print: (line) => console.log(line) });
  });

program
  .command('select')
  .description('compare candidate models by k-fold cross-validation on a CSV table, print the table, save the winner')
  .requiredOption(
    '--config <json>',
    'the candidates: [{ layers: [{ units, activation }], optimizer, learningRate, epochs, batchSize }]',
  )
  .requiredOption('--data <csv>', 'the table to train and validate on')
  .option('--label <column>', 'the column to predict (or "label" in the config)')
  .option(
    '--task <task>',
    'classification or regression, when the label does not say (a 0/1 column reads as numbers)',
    (v: string) => {
      if (v !== 'classification' && v !== 'regression')
        throw new InvalidArgumentError(`expected classification or regression but received '${v}'`);
      return v;
    },
  )
  .option('--folds <k>', 'cross-validation folds (default 5)', Number)
  .option(
    '--metric <metric>',
    'what ranks them: accuracy or loss (classification), mae or rmse (regression)',
    (v: string) => {
      if (!['accuracy', 'loss', 'mae', 'rmse'].includes(v))
        throw new InvalidArgumentError(`expected accuracy, loss, mae or rmse but received '${v}'`);
      return v as SelectionMetric;
    },
  )
  .option('--seed <n>', 'seed of the folds, initializers and shuffles (default 0)', Number)
  .option('--output <dir>', 'where the winner is saved (default ./selected-model)')
  .action(async (opts: Omit<SelectCommandOptions, 'print'>) => {
    await runSelect({ ...opts, print: (line) => console.log(line) });
  });

program
  .command('pack')
  .description(
    'pack a model into the packed cache ahead of serving (what maas serve maps instead of reading the model)',
  )
  .argument('[model]', 'a model file (model.json, .h5, .onnx) or a repository version directory')
  .option('--packed-cache <dir>', 'the cache directory (default $MAAS_PACKED_CACHE or ~/.cache/maas/packed)')
  .option(
    '--round-trip',
    'also pack the round trip explanations take gradients through (for a config with explain_method)',
  )
  .option('--prune', 'remove stale entries (model file gone or changed) and leftovers of packs that died')
  .option('--max-size <size>', 'with --prune: then remove least recently used entries down to this size', byteSize)
  .option('--precision <precision>', 'fp32 or bf16 for an fp32 model (as its config.json asks)', (v: string) => {
    if (v !== 'fp32' && v !== 'bf16') throw new InvalidArgumentError(`expected fp32 or bf16 but received '${v}'`);
    return v;
  })
  .action(
    async (
      model: string | undefined,
      opts: {
        packedCache?: string;
        precision?: 'fp32' | 'bf16';
        roundTrip?: boolean;
        prune?: boolean;
        maxSize?: number;
      },
    ) => {
      await runPack(model, { ...opts, print: (line) => console.log(line) });
    },
  );

program
  .command('info')
  .description('print the CPU, ISA, kernels and backends as JSON')
  .action(() => console.log(JSON.stringify(backendInfo(), null, 2)));

const token = program.command('token').description('API tokens: create (printed once), list, revoke');
token
  .command('create')
  .description('add a token to the token file and print it (only its salted scrypt hash is stored)')
  .requiredOption('--file <path>', 'the token file (created with owner-only permissions if absent)')
  .requiredOption('--scope <scope>', `a scope: ${SCOPES.join(', ')} (repeatable or comma-separated)`, collect, [])
  .option('--models <names>', 'models it may use, comma-separated (default: all)', collect, [])
  .option('--name <label>', 'a label for logs and the audit trail')
  .option('--expires-days <n>', 'days until it expires (default: never)', positiveInt)
  .action((opts: Omit<TokenCreateOptions, 'print'>) => runTokenCreate({ ...opts, print: (l) => console.log(l) }));
token
  .command('list')
  .description('list the tokens of a token file (ids, scopes, models, state; never secrets)')
  .requiredOption('--file <path>', 'the token file')
  .action((opts: { file: string }) => runTokenList({ ...opts, print: (l) => console.log(l) }));
token
  .command('revoke')
  .description('revoke a token by id (a running server stops accepting it within a second)')
  .argument('<id>', 'the token id (the 16 hex digits after maas_)')
  .requiredOption('--file <path>', 'the token file')
  .action((id: string, opts: { file: string }) => runTokenRevoke({ ...opts, id, print: (l) => console.log(l) }));

program.parseAsync(kserveFlags(process.argv)).catch((e: unknown) => {
  console.error(e instanceof Error ? `maas: ${e.message}` : e);
  process.exitCode = 1;
  // A serving process of --processes N that cannot start (a port taken) would stay alive on its
  // IPC channel: it ends, so the primary reports it and stops the group.
  if (cluster.isWorker) process.exit(1);
});
