/**
 * `maas serve`: starts the inference service on a model repository, prints where it listens and
 * a first request to try, and shuts down cleanly on SIGINT/SIGTERM.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { serve, type ServeOptions } from '../serving/server.js';
import { keyringFrom } from './encrypt.js';
import type { ControlMode } from '../serving/repository/repository.js';
import type { WorkerIsolation } from '../pool/pool.js';
import { MaasError } from '../core/errors.js';
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
  modelRepository: string;
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
  print: (line: string) => void;
}

export async function runServe(options: ServeCommandOptions): Promise<void> {
  const modelKeys = keyringFrom({ keyFile: options.modelKeyFile, keyCommand: options.modelKeyCommand });
  await modelKeys.check(); // a key file that cannot be used stops the start, not every load
  const serveOptions: ServeOptions = {
    modelRepository: options.modelRepository,
    host: options.host,
    httpPort: options.httpPort,
    grpcPort: options.grpcPort,
    metricsPort: options.metricsPort,
    workers: options.workers,
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
  options.print(
    `maas serving ${index.map((m) => `${m.name} (v${m.version})`).join(', ') || 'no models yet'} from ${options.modelRepository}`,
  );
  options.print(`  REST     ${scheme}://${local}:${server.httpPort}/v2`);
  options.print(`  gRPC     ${local}:${server.grpcPort} (inference.GRPCInferenceService${server.tls ? ', TLS' : ''})`);
  options.print(`  metrics  ${scheme}://${local}:${server.metricsPort}/metrics`);
  const first = index[0];
  if (first) {
    const meta = server.dataplane.modelMetadata(first.name);
    const width = meta.inputs[0]!.shape[1]!;
    const sample = join(options.modelRepository, first.name, 'sample-request.json');
    const row = Array.from({ length: width }, (_, i) => (i % 2 ? 0.5 : -0.5));
    const body = existsSync(sample)
      ? `@${sample}`
      : `'{"inputs":[{"name":"${meta.inputs[0]!.name}","datatype":"FP32","shape":[1,${width}],"data":[${row.join(',')}]}]}'`;
    const auth = server.access.enabled ? ' -H "Authorization: Bearer $MAAS_TOKEN"' : '';
    const ca = server.tls ? ' --cacert <CA of the server certificate>' : '';
    options.print(
      `  try:     curl -s${ca}${auth} ${scheme}://${local}:${server.httpPort}/v2/models/${first.name}/infer -d ${body}`,
    );
  }
  options.print('  Ctrl-C stops it.');
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
}
