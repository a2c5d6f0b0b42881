/**
 * serve(): the whole service in one call: the worker pool, the model repository, the DataPlane,
 * and the gRPC, REST and metrics endpoints on their ports (8001, 8000, 8002 by default, as Triton).
 */
import type { Server as HttpServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { packageRoot } from '../core/package-root.js';
import { usableCores } from '../core/cores.js';
import type { ModelKeys } from '../io/model-keys.js';
import { InferencePool, type WorkerIsolation } from '../pool/pool.js';
import { DataPlane } from './dataplane.js';
import type { ProcessGroup } from './process-group.js';
import { startGrpcServer, type GrpcEndpoint } from './grpc/server.js';
import { startHttpServer, startMetricsServer, type HttpEndpoint } from './http/server.js';
import { loadUiAssets } from './http/ui.js';
import { ModelRepository, type ControlMode } from './repository/repository.js';
import { defaultMirrorDir, repositoryLocation, S3Mirror } from './repository/s3-mirror.js';
import { ServingMetrics } from './statistics.js';
import { AccessControl } from './auth/access.js';
import { AuditLog } from './auth/audit.js';
import type { RateLimits } from './auth/rate-limit.js';
import { TokenStore } from './auth/token-store.js';
import { CertificateSource, clientCertificateMode, type TlsSettings } from './auth/tls.js';
import type { TlsEndpoint } from './http/server.js';

/** serve()'s options: the settings of `maas serve`. */
export interface ServeOptions {
  /**
   * The model repository (Triton's layout): a directory, or s3://BUCKET/PREFIX, a bucket of any
   * S3-compatible store served from a local copy (repository/s3-mirror.ts).
   */
  modelRepository: string;
  /** An s3:// repository's local copy (default: under ~/.cache/maas/repositories). */
  repositoryCache?: string;
  /** An s3:// repository's endpoint, for S3-compatible stores (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS). */
  s3Endpoint?: string;
  /**
   * Single-model mode (KServe's `--model_name`): modelRepository is the directory of this one
   * model — its versions and config.json, or the model's files directly.
   */
  singleModel?: string;
  /**
   * Address to listen on (default '127.0.0.1', this machine only, unless TLS or tokens are
   * configured: then '0.0.0.0').
   */
  host?: string;
  /** TLS on every endpoint (gRPC, REST, metrics), mutual with a CA; certificates reload on change. */
  tls?: TlsSettings;
  /** The token file (`maas token create` writes it): every call then needs a token or a mapped client certificate. */
  tokenFile?: string;
  /** A header (gRPC metadata key) that carries a bare token, Triton's restricted-API form, besides Authorization. */
  tokenHeader?: string;
  /** Server live/ready answer without credentials, for Kubernetes probes (default true). */
  openHealth?: boolean;
  /** /metrics answers without credentials (default false with a token file). */
  openMetrics?: boolean;
  /** Per-caller request rate and concurrent requests (per token, certificate, or address without one). */
  rateLimits?: RateLimits;
  /** The audit trail: a JSON-lines file (created 0600) or an AuditLog (default none). */
  auditLog?: string | AuditLog;
  /** gRPC port (default 8001); 0 picks a free one, null turns the endpoint off. */
  grpcPort?: number | null;
  /** REST port (default 8000); 0 picks a free one, null turns the endpoint off. */
  httpPort?: number | null;
  /** Serves the /ui page on the REST port: models, statistics, a form that predicts and explains, training history (default false). */
  ui?: boolean;
  /** Prometheus /metrics port (default 8002); 0 picks a free one, null turns the endpoint off. */
  metricsPort?: number | null;
  /** Worker threads in the pool (default: one per core). */
  workers?: number;
  /** Native threads per worker (default 1). */
  threadsPerWorker?: number;
  /**
   * 'thread' (default) or 'process': process workers map the same weights, and a native crash or
   * out-of-memory kill in one fails only the requests it was running (Linux).
   */
  workerIsolation?: WorkerIsolation;
  /** none (load everything at start, default), poll (reload on change) or explicit (load/unload API). */
  modelControlMode?: ControlMode;
  /** Seconds between repository scans in poll mode (default 15). */
  repositoryPollSeconds?: number;
  /** Models loaded at start in explicit mode ('*' = all). */
  loadModels?: string[];
  /** Largest gRPC message / REST body in bytes. */
  maxMessageBytes?: number;
  /**
   * Milliseconds close() lets in-flight calls finish before it cancels open streams and closes
   * connections (default 25 s, under Kubernetes' 30 s termination grace).
   */
  shutdownGraceMs?: number;
  /**
   * Queued input bytes per model version beyond which requests are rejected (REJECTED, like
   * max_queue_size): one slow model cannot hold the server's memory (default 256 MiB; 0 = unbounded).
   */
  maxQueueBytes?: number;
  /** gRPC and REST connections with nothing in flight for this long are closed (default 65 s). */
  connectionIdleMs?: number;
  /**
   * gRPC and REST connections older than this are ended (gRPC: GOAWAY, 30 s for calls in flight;
   * REST: after the next answer), so load balancers rebalance long-lived clients (default 0: no limit).
   */
  connectionMaxAgeMs?: number;
  /**
   * Requests read from one ModelStreamInfer stream and not yet answered (default 128). At the cap
   * the stream is not read until answers go out, so a client that writes without reading is held
   * by HTTP/2 flow control rather than by the server's memory.
   */
  maxInFlightPerStream?: number;
  /**
   * REST requests of one connection that run at once (HTTP/1.1 pipelining; default 32). As many
   * again wait in order; a client that pipelines further ahead is disconnected.
   */
  maxInFlightPerConnection?: number;
  /** REST JSON bodies of this many bytes or more are parsed in a thread, off the event loop (default 1 MiB). */
  jsonThreadBytes?: number;
  /** A model version that takes longer to open and pack is refused and its load thread stopped (default 300 s). */
  modelLoadTimeoutMs?: number;
  /** Enables the pool's injectFault() through RunningServer.pool (tests only). */
  testHooks?: boolean;
  /**
   * Refuse model files that record no digest of their contents (MAAS_ERR_MODEL_DIGEST_MISSING),
   * except for models whose config sets the strict_integrity parameter to "false" (default
   * false). A digest a file records is verified either way.
   */
  strictModelIntegrity?: boolean;
  /**
   * A packed cache directory: each model version's packed weights are written there at first
   * load and mapped from there after (by this process, its workers, other serving processes and
   * restarts), so one copy sits in the page cache per machine. Created 0700; refused unless
   * private to this user. Default: none (the CLI's `maas serve` uses ~/.cache/maas/packed).
   */
  packedCache?: string;
  /**
   * The most bytes the packed cache's weights may take: after a version is packed into it, the
   * least recently used entries (and stale ones, whose model file changed) are removed until it
   * fits. Default: no limit.
   */
  packedCacheMaxBytes?: number;
  /**
   * The group of serving processes this one belongs to (maas serve --processes N; see
   * process-group.ts): loads and unloads reach every process, /metrics sums them all.
   */
  processGroup?: ProcessGroup;
  /**
   * The keys of encrypted model files (model.json.enc, model.onnx.enc, model.h5.enc): a
   * ModelKeyring over a key file, a key command or keys in code (default: MAAS_MODEL_KEY and
   * MAAS_MODEL_KEY_ID from the environment).
   */
  modelKeys?: ModelKeys;
  /** A pino logger to log to (default: a new one on stdout). */
  logger?: Logger;
  /** The new logger's level (default 'info'). */
  logLevel?: string;
}

/** A running server: its bound ports, its DataPlane, and close(). */
export interface RunningServer {
  /** The bound gRPC port, or null when off. */
  grpcPort: number | null;
  /** The bound REST port, or null when off. */
  httpPort: number | null;
  /** The bound metrics port, or null when off. */
  metricsPort: number | null;
  /** The service core, for in-process calls. */
  dataplane: DataPlane;
  /** The inference workers (their pids, and injectFault() when testHooks is on). */
  pool: InferencePool;
  /** The logger the server writes to. */
  logger: Logger;
  /** The access control every call passes (tokens, limits, audit). */
  access: AccessControl;
  /** The address the endpoints listen on. */
  host: string;
  /** Whether the endpoints speak TLS. */
  tls: boolean;
  /** Stops taking requests, lets those in flight finish within shutdownGraceMs, then closes the ports and the pool. */
  close(): Promise<void>;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The local copy of an s3:// repository, or undefined for a directory. Each process of a group
 * keeps its own copy: they sync independently, and a sync never rewrites files another is loading.
 */
async function mirrorFor(options: ServeOptions, logger: Logger): Promise<S3Mirror | undefined> {
  const location = repositoryLocation(options.modelRepository);
  if (!location) return undefined;
  const base = options.repositoryCache !== undefined ? resolve(options.repositoryCache) : defaultMirrorDir(location);
  const group = options.processGroup;
  return S3Mirror.open({
    location,
    dir: group ? join(base, `process-${group.index}`) : base,
    logger,
    ...(options.s3Endpoint !== undefined ? { endpoint: options.s3Endpoint } : {}),
  });
}

/** Starts the inference service; resolves once the control mode's models are loaded and the ports are bound. */
export async function serve(options: ServeOptions): Promise<RunningServer> {
  const logger = options.logger ?? pino({ name: 'maas', level: options.logLevel ?? 'info' });
  const mirror = await mirrorFor(options, logger);
  const pool = new InferencePool({
    workers: options.workers,
    threadsPerWorker: options.threadsPerWorker,
    isolation: options.workerIsolation,
    onWorkerExit: (exit) =>
      logger.error(exit, 'inference worker stopped: its running requests failed (UNAVAILABLE); replacing it'),
    testHooks: options.testHooks === true,
    ...(options.modelLoadTimeoutMs !== undefined ? { loadTimeoutMs: options.modelLoadTimeoutMs } : {}),
  });
  if (pool.workers * pool.threadsPerWorker > usableCores()) {
    // DESIGN decision 3: more threads than cores only adds contention.
    logger.warn(
      { workers: pool.workers, threadsPerWorker: pool.threadsPerWorker, cores: usableCores() },
      'workers × threads exceeds the cores',
    );
  }
  let repository: ModelRepository | null = null;
  let grpcEndpoint: GrpcEndpoint | null = null;
  let httpEndpoint: HttpEndpoint | null = null;
  const metrics = new ServingMetrics(
    () => (repository?.servedVersions() ?? []).map((s) => ({ stats: s.stats, pending: s.batcher.pending })),
    () => ({
      grpcStreamRequests: grpcEndpoint?.streamLoad.inFlight ?? 0,
      httpRequests: httpEndpoint?.connections.running ?? 0,
    }),
  );
  repository = new ModelRepository({
    root: mirror ? mirror.dir : resolve(options.modelRepository),
    pool,
    logger,
    controlMode: options.modelControlMode,
    pollSeconds: options.repositoryPollSeconds,
    startupModels: options.loadModels,
    ...(options.maxQueueBytes !== undefined ? { maxQueueBytes: options.maxQueueBytes } : {}),
    ...(options.strictModelIntegrity !== undefined ? { strictIntegrity: options.strictModelIntegrity } : {}),
    ...(options.modelKeys ? { modelKeys: options.modelKeys } : {}),
    ...(options.packedCache ? { packedCache: resolve(options.packedCache) } : {}),
    ...(options.packedCacheMaxBytes !== undefined ? { packedCacheMaxBytes: options.packedCacheMaxBytes } : {}),
    ...(options.singleModel !== undefined ? { singleModel: options.singleModel } : {}),
    ...(mirror ? { mirror } : {}),
  });
  const group = options.processGroup;
  const dataplane = new DataPlane({
    repository,
    metrics,
    serverVersion: packageVersion(),
    ...(group ? { peers: group } : {}),
  });
  group?.serve((operation) => dataplane.applyPeerOperation(operation), metrics.registry);
  let tokens: TokenStore | undefined;
  let certificates: CertificateSource | undefined;
  let audit: AuditLog | undefined;
  let grpcServer: grpc.Server | null = null;
  let httpServer: HttpServer | null = null;
  let metricsServer: HttpServer | null = null;
  const close = async () => {
    dataplane.stop();
    const grpcClosed = grpcServer && new Promise<void>((done) => grpcServer!.tryShutdown(() => done()));
    const httpClosed = Promise.all([
      httpServer && new Promise<void>((done) => httpServer!.close(() => done())),
      metricsServer && new Promise<void>((done) => metricsServer!.close(() => done())),
    ]);
    httpServer?.closeIdleConnections();
    metricsServer?.closeIdleConnections();
    // An idle stream or a client that never finishes its upload must not hold the process forever.
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((done) => {
      timer = setTimeout(() => done('grace over'), options.shutdownGraceMs ?? 25_000);
    });
    if ((await Promise.race([Promise.all([grpcClosed, httpClosed]), graceOver])) === 'grace over') {
      logger.warn('shutdown grace over: cancelling open calls and closing connections');
      grpcServer?.forceShutdown(); // synchronous; tryShutdown's callback will not come after it
      httpServer?.closeAllConnections();
      metricsServer?.closeAllConnections();
    }
    clearTimeout(timer);
    await httpClosed;
    await repository.close();
    await pool.close();
    tokens?.stopWatching();
    certificates?.close();
    await audit?.close();
  };
  try {
    if (options.tokenFile !== undefined)
      tokens = await TokenStore.open(options.tokenFile, {
        onReload: (error) =>
          error
            ? logger.error({ err: error }, 'token file not reloaded: the tokens in force stay')
            : logger.info('token file reloaded'),
      });
    if (options.tls)
      certificates = await CertificateSource.open(options.tls, (error) =>
        error
          ? logger.error({ err: error }, 'TLS files not reloaded: the certificate in force stays')
          : logger.info('TLS certificate reloaded: new connections use it'),
      );
    audit = typeof options.auditLog === 'string' ? AuditLog.toFile(options.auditLog) : options.auditLog;
    const access = new AccessControl({
      ...(tokens ? { tokens } : {}),
      ...(options.openHealth !== undefined ? { openHealth: options.openHealth } : {}),
      ...(options.openMetrics !== undefined ? { openMetrics: options.openMetrics } : {}),
      ...(options.rateLimits ? { limits: options.rateLimits } : {}),
      ...(audit ? { audit } : {}),
    });
    const host = options.host ?? (certificates || tokens ? '0.0.0.0' : '127.0.0.1');
    if (!certificates && !isLoopback(host))
      logger.warn(
        { host },
        'serving plain text on a non-loopback address: anyone on the network can read and change requests (configure --tls-cert/--tls-key, or serve behind a mesh)',
      );
    if (!tokens && !isLoopback(host))
      logger.warn(
        { host },
        'no token file: every client that reaches the ports may infer, read and (in explicit mode) load and unload',
      );
    const tls = certificates && restTls(certificates, options.tls!);
    await repository.start();
    const grpcPort = options.grpcPort === null ? null : (options.grpcPort ?? 8001);
    const httpPort = options.httpPort === null ? null : (options.httpPort ?? 8000);
    const metricsPort = options.metricsPort === null ? null : (options.metricsPort ?? 8002);
    const bound = { grpc: null as number | null, http: null as number | null, metrics: null as number | null };
    if (grpcPort !== null) {
      grpcEndpoint = await startGrpcServer(dataplane, logger, {
        host,
        port: grpcPort,
        maxMessageBytes: options.maxMessageBytes,
        connectionIdleMs: options.connectionIdleMs,
        connectionMaxAgeMs: options.connectionMaxAgeMs,
        maxInFlightPerStream: options.maxInFlightPerStream,
        access,
        ...(options.tokenHeader ? { tokenHeader: options.tokenHeader } : {}),
        ...(certificates ? { tls: { certificates, clientCertificates: clientCertificateMode(options.tls!) } } : {}),
      });
      ({ server: grpcServer, port: bound.grpc } = grpcEndpoint);
    }
    if (httpPort !== null) {
      httpEndpoint = await startHttpServer(dataplane, logger, {
        host,
        port: httpPort,
        maxBodyBytes: options.maxMessageBytes,
        connectionIdleMs: options.connectionIdleMs,
        connectionMaxAgeMs: options.connectionMaxAgeMs,
        maxInFlightPerConnection: options.maxInFlightPerConnection,
        jsonThreadBytes: options.jsonThreadBytes,
        access,
        ...(options.tokenHeader ? { tokenHeader: options.tokenHeader } : {}),
        ...(tls ? { tls } : {}),
        ...(options.ui ? { ui: await loadUiAssets() } : {}),
      });
      ({ server: httpServer, port: bound.http } = httpEndpoint);
    }
    if (metricsPort !== null)
      ({ server: metricsServer, port: bound.metrics } = await startMetricsServer(
        group ? () => group.metrics() : () => metrics.text(),
        metrics.contentType,
        {
          host,
          port: metricsPort,
          access,
          ...(options.tokenHeader ? { tokenHeader: options.tokenHeader } : {}),
          ...(tls ? { tls } : {}),
        },
      ));
    logger.info(
      {
        grpc: bound.grpc,
        http: bound.http,
        metrics: bound.metrics,
        workers: pool.workers,
        threadsPerWorker: pool.threadsPerWorker,
        repository: repository.root,
        mode: repository.controlMode,
        host,
        tls: certificates ? clientCertificateMode(options.tls!) : false,
        tokens: tokens !== undefined,
      },
      'maas serving',
    );
    return {
      grpcPort: bound.grpc,
      httpPort: bound.http,
      metricsPort: bound.metrics,
      dataplane,
      pool,
      logger,
      access,
      host,
      tls: certificates !== undefined,
      close,
    };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** Whether `host` is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A node:https server's TLS options from the certificate files, following their changes. */
function restTls(certificates: CertificateSource, settings: TlsSettings): TlsEndpoint {
  const mode = clientCertificateMode(settings);
  return {
    options: {
      ...certificates.secureContextOptions(),
      requestCert: mode !== 'none',
      rejectUnauthorized: mode === 'required',
      minVersion: 'TLSv1.2',
    },
    onChange: (listener) => certificates.onChange(listener),
  };
}
