#!/usr/bin/env node
/**
 * The `maas` command line. `maas serve` runs the inference service (what `npm start` runs on the
 * bundled repository); `maas demo` builds and times the example model; `maas convert IN OUT`
 * converts between model formats; `maas info` shows the CPU, the selected kernels and the backends.
 */
import { Command, InvalidArgumentError } from 'commander';
import { runDemo } from './demo.js';
import { runConvert } from './convert.js';
import { runServe, type ServeCommandOptions } from './serve.js';
import { backendInfo } from '../runtime.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer but received '${value}'`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port in [0, 65535] (0 picks a free one) but received '${value}'`);
  return n;
}

function controlMode(value: string): string {
  if (!['none', 'poll', 'explicit'].includes(value)) throw new InvalidArgumentError(`expected none, poll or explicit but received '${value}'`);
  return value;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command()
  .name('maas')
  .description('Model as a Service: train, quantize and serve dense neural networks')
  .showHelpAfterError();

program
  .command('serve')
  .description('serve a model repository over KServe v2 gRPC and REST, with Prometheus metrics')
  .requiredOption('--model-repository <dir>', 'the repository: <dir>/<model>/config.json and <dir>/<model>/<version>/model.json|.h5|.onnx')
  .option('--host <address>', 'address to listen on', '0.0.0.0')
  .option('--http-port <port>', 'REST port', port, 8000)
  .option('--grpc-port <port>', 'gRPC port', port, 8001)
  .option('--metrics-port <port>', 'Prometheus /metrics port', port, 8002)
  .option('--workers <n>', 'inference worker threads (default: one per core)', positiveInt)
  .option('--threads <n>', 'native threads per worker (default 1)', positiveInt)
  .option('--model-control-mode <mode>', 'none (load all at start), poll (reload on change) or explicit (load/unload API)', controlMode, 'none')
  .option('--repository-poll-secs <n>', 'seconds between repository scans in poll mode', positiveInt, 15)
  .option('--load-model <name>', 'in explicit mode, a model to load at start (repeatable; * = all)', collect, [])
  .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace, silent', 'info')
  .option('--max-message-bytes <n>', 'largest gRPC message / REST body (default 2 GiB - 1)', positiveInt)
  .action((opts: Omit<ServeCommandOptions, 'print'>) => runServe({ ...opts, print: (line) => console.log(line) }));

program
  .command('demo')
  .description('build the example model (100 → 64 relu → 32 relu → 1 sigmoid), predict and time it')
  .option('--batch <n>', 'rows to predict', positiveInt, 8)
  .option('--seed <n>', 'seed of the weights and inputs', positiveInt, 42)
  .action((opts: { batch: number; seed: number }) => runDemo({ ...opts, print: (line) => console.log(line) }));

program
  .command('convert')
  .description('convert a model: IN is model.json (or its directory), .h5 or .onnx; OUT is .onnx or a directory')
  .argument('<in>', 'the model to read')
  .argument('<out>', 'where to write it (.onnx, or a directory for model.json + weights)')
  .option('--architecture <json>', 'the to_json architecture for a Keras weights-only .h5')
  .action(async (input: string, output: string, opts: { architecture?: string }) => {
    await runConvert(input, output, { ...opts, print: (line) => console.log(line) });
  });

program
  .command('info')
  .description('print the CPU, ISA, kernels and backends as JSON')
  .action(() => console.log(JSON.stringify(backendInfo(), null, 2)));

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(e instanceof Error ? `maas: ${e.message}` : e);
  process.exitCode = 1;
});
