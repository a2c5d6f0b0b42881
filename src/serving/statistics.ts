/**
 * Per model version statistics in the shape of Triton's statistics extension (cumulative counts
 * and nanoseconds per phase, per batch size), and the Prometheus metrics with Triton's names.
 * Both are fed from the same three calls: success, failure and execution.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Duration {
  count: number;
  ns: number;
}

/** Why a request failed, as Triton's nv_inference_request_failure labels it. */
export type FailureReason = 'REJECTED' | 'CANCELED' | 'BACKEND' | 'OTHER';

/** One request's phases, in nanoseconds. */
export interface RequestTiming {
  totalNs: number;
  queueNs: number;
  inputNs: number;
  inferNs: number;
  outputNs: number;
}

function duration(): Duration {
  return { count: 0, ns: 0 };
}

function add(d: Duration, ns: number): void {
  d.count++;
  d.ns += ns;
}

/** Cumulative statistics of one model version (the ModelStatistics message). */
export class VersionStatistics {
  lastInference = 0;
  inferenceCount = 0;
  executionCount = 0;
  readonly success = duration();
  readonly fail = duration();
  readonly queue = duration();
  readonly computeInput = duration();
  readonly computeInfer = duration();
  readonly computeOutput = duration();
  readonly batches = new Map<number, { computeInput: Duration; computeInfer: Duration; computeOutput: Duration }>();

  constructor(
    readonly model: string,
    readonly version: string,
    private readonly metrics: ServingMetrics,
  ) {}

  recordSuccess(rows: number, t: RequestTiming): void {
    this.lastInference = Date.now();
    this.inferenceCount += rows;
    add(this.success, t.totalNs);
    add(this.queue, t.queueNs);
    add(this.computeInput, t.inputNs);
    add(this.computeInfer, t.inferNs);
    add(this.computeOutput, t.outputNs);
    this.metrics.success(this.model, this.version, rows, t);
  }

  recordFailure(reason: FailureReason, totalNs: number): void {
    add(this.fail, totalNs);
    this.metrics.failure(this.model, this.version, reason, totalNs);
  }

  recordExecution(rows: number, computeNs: number): void {
    this.executionCount++;
    let batch = this.batches.get(rows);
    if (!batch) {
      batch = { computeInput: duration(), computeInfer: duration(), computeOutput: duration() };
      this.batches.set(rows, batch);
    }
    add(batch.computeInfer, computeNs);
    this.metrics.execution(this.model, this.version);
  }
}

const LABELS = ['model', 'version'] as const;
/** Latency buckets in µs: 50 µs to 5 s. */
const LATENCY_BUCKETS_US = [50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000];

/** The Prometheus registry of one server, with Triton's metric names. */
export class ServingMetrics {
  readonly registry = new Registry();
  private readonly requestSuccess: Counter<'model' | 'version'>;
  private readonly requestFailure: Counter<'model' | 'version' | 'reason'>;
  private readonly inferenceCount: Counter<'model' | 'version'>;
  private readonly execCount: Counter<'model' | 'version'>;
  private readonly requestDuration: Counter<'model' | 'version'>;
  private readonly queueDuration: Counter<'model' | 'version'>;
  private readonly inputDuration: Counter<'model' | 'version'>;
  private readonly inferDuration: Counter<'model' | 'version'>;
  private readonly outputDuration: Counter<'model' | 'version'>;
  private readonly requestHistogram: Histogram<'model' | 'version'>;
  private readonly queueHistogram: Histogram<'model' | 'version'>;
  private readonly computeHistogram: Histogram<'model' | 'version'>;

  /** `pending` reports queued + running requests per model version when Prometheus scrapes. */
  constructor(pending: () => { model: string; version: string; count: number }[]) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter<L>({ name, help, labelNames, registers });
    const histogram = (name: string, help: string) => new Histogram({ name, help, labelNames: LABELS, buckets: LATENCY_BUCKETS_US, registers });
    this.requestSuccess = counter('nv_inference_request_success', 'Number of successful inference requests, all batch sizes', LABELS);
    this.requestFailure = counter('nv_inference_request_failure', 'Number of failed inference requests, all batch sizes', [...LABELS, 'reason']);
    this.inferenceCount = counter('nv_inference_count', 'Number of inferences performed (a batch of n counts n)', LABELS);
    this.execCount = counter('nv_inference_exec_count', 'Number of model executions performed', LABELS);
    this.requestDuration = counter('nv_inference_request_duration_us', 'Cumulative inference request duration in microseconds', LABELS);
    this.queueDuration = counter('nv_inference_queue_duration_us', 'Cumulative inference queuing duration in microseconds', LABELS);
    this.inputDuration = counter('nv_inference_compute_input_duration_us', 'Cumulative compute input duration in microseconds', LABELS);
    this.inferDuration = counter('nv_inference_compute_infer_duration_us', 'Cumulative compute inference duration in microseconds', LABELS);
    this.outputDuration = counter('nv_inference_compute_output_duration_us', 'Cumulative compute output duration in microseconds', LABELS);
    // Histograms aggregate across replicas (summaries do not): sum them in PromQL, then take quantiles.
    this.requestHistogram = histogram('nv_inference_request_duration_histogram_us', 'Inference request duration in microseconds');
    this.queueHistogram = histogram('nv_inference_queue_duration_histogram_us', 'Inference queuing duration in microseconds');
    this.computeHistogram = histogram('nv_inference_compute_infer_duration_histogram_us', 'Compute inference duration in microseconds');
    new Gauge({
      name: 'nv_inference_pending_request_count',
      help: 'Instantaneous number of pending requests awaiting execution per model',
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const p of pending()) this.set({ model: p.model, version: p.version }, p.count);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'maas_' });
  }

  success(model: string, version: string, rows: number, t: RequestTiming): void {
    const labels = { model, version };
    this.requestSuccess.inc(labels);
    this.inferenceCount.inc(labels, rows);
    this.requestDuration.inc(labels, t.totalNs / 1000);
    this.queueDuration.inc(labels, t.queueNs / 1000);
    this.inputDuration.inc(labels, t.inputNs / 1000);
    this.inferDuration.inc(labels, t.inferNs / 1000);
    this.outputDuration.inc(labels, t.outputNs / 1000);
    this.requestHistogram.observe(labels, t.totalNs / 1000);
    this.queueHistogram.observe(labels, t.queueNs / 1000);
    this.computeHistogram.observe(labels, t.inferNs / 1000);
  }

  failure(model: string, version: string, reason: FailureReason, totalNs: number): void {
    this.requestFailure.inc({ model, version, reason });
    this.requestHistogram.observe({ model, version }, totalNs / 1000);
  }

  execution(model: string, version: string): void {
    this.execCount.inc({ model, version });
  }

  /** The exposition text for /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
