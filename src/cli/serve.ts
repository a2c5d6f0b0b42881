/**
 * `maas serve`: starts the inference service on a model repository, prints where it listens and
 * a first request to try, and shuts down cleanly on SIGINT/SIGTERM.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { serve, type ServeOptions } from '../serving/server.js';
import { joinProcessGroup, runProcessGroup } from '../serving/process-group.js';
import { defaultPackedCacheDir, PackedCache } from '../pool/packed-cache.js';
import { keyringFrom } from './encrypt.js';
import type { ControlMode } from '../serving/repository/repository.js';
import type { WorkerIsolation } from '../pool/pool.js';
import { MaasError } from '../core/errors.js';
import { usableCores } from '../core/cores.js';
import type { ClientCertificates, TlsSettings } from '../serving/auth/tls.js';

/** The TLS settings the flags give, or undefined without them (a certificate needs its key). */
function tlsSettings(options: ServeCommandOptions): TlsSettings | undefined {
  const { tlsCert, tlsKey, tlsCa, tlsClientCerts } = options;
  if (tlsCert === undefined && tlsKey === undefined) {
    if (tlsCa !== undefined || tlsClientCerts !== undefined)
      throw new MaasError('MAAS_ERR_AUTH_CONFIG', '--tls-ca and --tls-client-certs need --tls-cert and --tls-key');
    return undefined;
  }
  if (tlsCert === undefined || tlsKey === undefined)
    throw new MaasError('MAAS_ERR_AUTH_CONFIG', '--tls-cert and --tls-key go together');
  return {
    certFile: tlsCert,
    keyFile: tlsKey,
    ...(tlsCa !== undefined ? { caFile: tlsCa } : {}),
    ...(tlsClientCerts !== undefined ? { clientCertificates: tlsClientCerts } : {}),
  };
}

/** The serve command's options, as commander parses them. */
export interface ServeCommandOptions {
  /** The repository; or, with modelName, absent (the model's directory is modelDir). */
  modelRepository?: string;
  /** Single-model mode (KServe's --model_name): serve modelDir's model under this name. */
  modelName?: string;
  /** The single model's directory (default /mnt/models, where KServe puts a model). */
  modelDir?: string;
  /** An s3:// repository's local copy. */
  repositoryCache?: string;
  /** An s3:// repository's endpoint (S3-compatible stores). */
  s3Endpoint?: string;
  host?: string;
  httpPort: number;
  grpcPort: number;
  metricsPort: number;
  workers?: number;
  threads?: number;
  workerIsolation?: WorkerIsolation;
  modelControlMode: ControlMode;
  repositoryPollSecs: number;
  loadModel: string[];
  logLevel: string;
  maxMessageBytes?: number;
  shutdownGraceSecs?: number;
  modelLoadTimeoutSecs?: number;
  connectionIdleSecs?: number;
  connectionMaxAgeSecs?: number;
  maxQueueBytes?: number;
  strictModelIntegrity?: boolean;
  grpcMaxInFlightPerStream?: number;
  httpMaxInFlightPerConnection?: number;
  httpJsonThreadBytes?: number;
  /** The key file of encrypted model files. */
  modelKeyFile?: string;
  /** The key command of encrypted model files. */
  modelKeyCommand?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientCerts?: ClientCertificates;
  tokenFile?: string;
  tokenHeader?: string;
  /** false with --no-open-health. */
  openHealth: boolean;
  openMetrics?: boolean;
  rateLimit?: number;
  rateBurst?: number;
  maxConcurrentPerClient?: number;
  auditLog?: string;
  /** Serves the /ui page (--ui). */
  ui?: boolean;
  /** Serving processes sharing the ports and the packed weights (default 1). */
  processes?: number;
  /** The packed cache directory; false with --no-packed-cache; absent: the default one. */
  packedCache?: string | false;
  /** The packed cache's size cap (--packed-cache-max-size). */
  packedCacheMaxSize?: number;
  print: (line: string) => void;
}

/**
 * The packed cache to serve with: the one named, none with --no-packed-cache, or the default
 * one (~/.cache/maas/packed) when it can be made private here; a default that cannot (a
 * read-only home, another owner) is skipped with a warning, since the service works without it.
 */
async function packedCacheFor(options: ServeCommandOptions): Promise<string | undefined> {
  if (options.packedCache === false) return undefined;
  if (typeof options.packedCache === 'string') return resolve(options.packedCache);
  const dir = defaultPackedCacheDir();
  try {
    await new PackedCache(dir).prepare();
    return dir;
  } catch (error) {
    options.print(`maas: not using the packed cache ${dir}: ${(error as Error).message}`);
    return undefined;
  }
}

/** As the primary of --processes N: starts the serving processes and supervises them. */
async function runPrimary(options: ServeCommandOptions, count: number, packedCache: string): Promise<void> {
  await runProcessGroup(count, {
    started: (pids) =>
      options.print(
        `  ${count} serving processes (pids ${pids.join(', ')}) share the ports and the packed weights in ${packedCache}`,
      ),
    stopped: (index, code, signal) =>
      options.print(`maas: serving process ${index} stopped (${signal ?? `code ${code}`}); starting it again`),
    restarted: (index, pid) => options.print(`maas: serving process ${index} started again as pid ${pid}`),
    failed: (message) => options.print(`maas: ${message}`),
  });
}

/** Where the models are: a repository, or one model's directory and its name. */
function modelSource(options: ServeCommandOptions): { root: string; singleModel?: string } {
  const { modelRepository, modelName, modelDir } = options;
  if (modelName !== undefined) {
    if (modelRepository !== undefined)
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        '--model-name serves one model from --model-dir: leave out --model-repository',
      );
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(modelName))
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        `Expected a model name (letters, digits, . _ -) for --model-name but received '${modelName}'`,
      );
    return { root: modelDir ?? '/mnt/models', singleModel: modelName };
  }
  if (modelDir !== undefined) throw new MaasError('MAAS_ERR_ARG_RANGE', '--model-dir goes with --model-name');
  if (modelRepository === undefined)
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      'Give --model-repository DIR, or --model-name NAME [--model-dir DIR] for one model',
    );
  return { root: modelRepository };
}

export async function runServe(options: ServeCommandOptions): Promise<void> {
  const source = modelSource(options);
  const processes = options.processes ?? 1;
  const group = joinProcessGroup();
  const packedCache = await packedCacheFor(options);
  if (processes > 1 && !group) {
    if (!packedCache)
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        '--processes shares the weights through the packed cache: give --packed-cache <dir> (or leave the default on)',
      );
    return runPrimary(options, processes, packedCache);
  }
  // In a group only the first process prints the banner (the primary prints the group's line).
  const print = group && group.index > 0 ? () => {} : options.print;
  const modelKeys = keyringFrom({ keyFile: options.modelKeyFile, keyCommand: options.modelKeyCommand });
  await modelKeys.check(); // a key file that cannot be used stops the start, not every load
  const serveOptions: ServeOptions = {
    modelRepository: source.root,
    ...(source.singleModel !== undefined ? { singleModel: source.singleModel } : {}),
    ...(options.repositoryCache !== undefined ? { repositoryCache: options.repositoryCache } : {}),
    ...(options.s3Endpoint !== undefined ? { s3Endpoint: options.s3Endpoint } : {}),
    host: options.host,
    httpPort: options.httpPort,
    grpcPort: options.grpcPort,
    metricsPort: options.metricsPort,
    // N processes share the cores: by default each takes its part of them.
    workers: options.workers ?? (group ? Math.max(1, Math.floor(usableCores() / group.count)) : undefined),
    threadsPerWorker: options.threads,
    workerIsolation: options.workerIsolation,
    modelControlMode: options.modelControlMode,
    repositoryPollSeconds: options.repositoryPollSecs,
    loadModels: options.loadModel,
    logLevel: options.logLevel,
    maxMessageBytes: options.maxMessageBytes,
    shutdownGraceMs: options.shutdownGraceSecs === undefined ? undefined : options.shutdownGraceSecs * 1000,
    modelLoadTimeoutMs: options.modelLoadTimeoutSecs === undefined ? undefined : options.modelLoadTimeoutSecs * 1000,
    connectionIdleMs: options.connectionIdleSecs === undefined ? undefined : options.connectionIdleSecs * 1000,
    connectionMaxAgeMs: options.connectionMaxAgeSecs === undefined ? undefined : options.connectionMaxAgeSecs * 1000,
    maxQueueBytes: options.maxQueueBytes,
    strictModelIntegrity: options.strictModelIntegrity,
    maxInFlightPerStream: options.grpcMaxInFlightPerStream,
    maxInFlightPerConnection: options.httpMaxInFlightPerConnection,
    jsonThreadBytes: options.httpJsonThreadBytes,
    modelKeys,
    tls: tlsSettings(options),
    tokenFile: options.tokenFile,
    tokenHeader: options.tokenHeader,
    openHealth: options.openHealth,
    openMetrics: options.openMetrics,
    rateLimits:
      options.rateLimit !== undefined || options.maxConcurrentPerClient !== undefined
        ? {
            ...(options.rateLimit !== undefined ? { ratePerSecond: options.rateLimit } : {}),
            ...(options.rateBurst !== undefined ? { burst: options.rateBurst } : {}),
            ...(options.maxConcurrentPerClient !== undefined ? { concurrent: options.maxConcurrentPerClient } : {}),
          }
        : undefined,
    auditLog: options.auditLog,
    ui: options.ui === true,
    ...(packedCache ? { packedCache } : {}),
    ...(packedCache && options.packedCacheMaxSize !== undefined
      ? { packedCacheMaxBytes: options.packedCacheMaxSize }
      : {}),
    ...(group ? { processGroup: group } : {}),
  };
  const server = await serve(serveOptions);
  // The last resort: every handler's errors reach its transport's error mapping, so an error that
  // still escapes is a maas bug. The request it belonged to is lost; the server logs it and goes
  // on serving the others. (A native abort is not an exception: worker isolation covers that.)
  process.on('uncaughtException', (error, origin) =>
    server.logger.error({ err: error, origin }, 'uncaught exception: logged, and the server keeps serving'),
  );
  const index = await server.dataplane.repositoryIndex(true);
  const local = server.host === '0.0.0.0' || server.host === '::' ? 'localhost' : server.host;
  const scheme = server.tls ? 'https' : 'http';
  print(
    `maas serving ${index.map((m) => `${m.name} (v${m.version})`).join(', ') || 'no models yet'} from ${source.root}`,
  );
  print(`  REST     ${scheme}://${local}:${server.httpPort}/v2`);
  print(`  gRPC     ${local}:${server.grpcPort} (inference.GRPCInferenceService${server.tls ? ', TLS' : ''})`);
  print(`  metrics  ${scheme}://${local}:${server.metricsPort}/metrics`);
  if (options.ui) print(`  UI       ${scheme}://${local}:${server.httpPort}/ui`);
  const first = index[0];
  if (first) {
    const meta = server.dataplane.modelMetadata(first.name);
    const width = meta.inputs[0]!.shape[1]!;
    const sample = join(
      source.singleModel !== undefined ? source.root : join(source.root, first.name),
      'sample-request.json',
    );
    const row = Array.from({ length: width }, (_, i) => (i % 2 ? 0.5 : -0.5));
    const body = existsSync(sample)
      ? `@${sample}`
      : `'{"inputs":[{"name":"${meta.inputs[0]!.name}","datatype":"FP32","shape":[1,${width}],"data":[${row.join(',')}]}]}'`;
    const auth = server.access.enabled ? ' -H "Authorization: Bearer $MAAS_TOKEN"' : '';
    const ca = server.tls ? ' --cacert <CA of the server certificate>' : '';
    const url = `${scheme}://${local}:${server.httpPort}/v2/models/${first.name}`;
    print(`  try:     curl -s${ca}${auth} ${url}/infer -d ${body}`);
    // The same body asks why, when the model's config enables explanations.
    if (server.dataplane.repository.resolve(first.name).explain)
      print(`  why:     curl -s${ca}${auth} ${url}/explain -d ${body}`);
  }
  print('  Ctrl-C stops it.');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  group?.ready();
}
