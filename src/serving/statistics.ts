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

/** Cumulative statistics of one model version (the ModelStatistics message, and the metrics' counters). */
export class VersionStatistics {
  lastInference = 0;
  inferenceCount = 0;
  executionCount = 0;
  readonly success = duration();
  readonly fail = duration();
  readonly failures: Record<FailureReason, number> = { REJECTED: 0, CANCELED: 0, BACKEND: 0, OTHER: 0 };
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
    this.metrics.observe(this.model, this.version, t);
  }

  recordFailure(reason: FailureReason, totalNs: number): void {
    add(this.fail, totalNs);
    this.failures[reason]++;
  }

  recordExecution(rows: number, computeNs: number): void {
    this.executionCount++;
    let batch = this.batches.get(rows);
    if (!batch) {
      batch = { computeInput: duration(), computeInfer: duration(), computeOutput: duration() };
      this.batches.set(rows, batch);
    }
    add(batch.computeInfer, computeNs);
  }
}

/** What the metrics read at scrape time: every live version's statistics and its pending requests. */
export type MetricSources = () => { stats: VersionStatistics; pending: number }[];

const LABELS = ['model', 'version'] as const;
type Label = 'model' | 'version';
/** Latency buckets in µs: 50 µs to 5 s. */
const LATENCY_BUCKETS_US = [50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000];

/**
 * The Prometheus registry of one server, with Triton's metric names. Counters and the pending
 * gauge are read from the versions' statistics when Prometheus scrapes (nothing per request);
 * the latency histograms are observed per request.
 */
export class ServingMetrics {
  readonly registry = new Registry();
  private readonly requestHistogram: Histogram<Label>;
  private readonly queueHistogram: Histogram<Label>;
  private readonly computeHistogram: Histogram<Label>;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    const labelsOf = (s: VersionStatistics) => ({ model: s.model, version: s.version });
    const counter = (name: string, help: string, read: (s: VersionStatistics) => number) =>
      new Counter<Label>({
        name, help, labelNames: LABELS, registers,
        collect() {
          this.reset();
          for (const { stats } of sources()) this.inc(labelsOf(stats), read(stats));
        },
      });
    counter('nv_inference_request_success', 'Number of successful inference requests, all batch sizes', (s) => s.success.count);
    new Counter<Label | 'reason'>({
      name: 'nv_inference_request_failure', help: 'Number of failed inference requests, all batch sizes', labelNames: [...LABELS, 'reason'], registers,
      collect() {
        this.reset();
        for (const { stats } of sources()) {
          for (const [reason, count] of Object.entries(stats.failures)) if (count > 0) this.inc({ ...labelsOf(stats), reason }, count);
        }
      },
    });
    counter('nv_inference_count', 'Number of inferences performed (a batch of n counts n)', (s) => s.inferenceCount);
    counter('nv_inference_exec_count', 'Number of model executions performed', (s) => s.executionCount);
    counter('nv_inference_request_duration_us', 'Cumulative inference request duration in microseconds', (s) => s.success.ns / 1000);
    counter('nv_inference_queue_duration_us', 'Cumulative inference queuing duration in microseconds', (s) => s.queue.ns / 1000);
    counter('nv_inference_compute_input_duration_us', 'Cumulative compute input duration in microseconds', (s) => s.computeInput.ns / 1000);
    counter('nv_inference_compute_infer_duration_us', 'Cumulative compute inference duration in microseconds', (s) => s.computeInfer.ns / 1000);
    counter('nv_inference_compute_output_duration_us', 'Cumulative compute output duration in microseconds', (s) => s.computeOutput.ns / 1000);
    new Gauge<Label>({
      name: 'nv_inference_pending_request_count', help: 'Instantaneous number of pending requests awaiting execution per model', labelNames: LABELS, registers,
      collect() {
        this.reset();
        for (const { stats, pending } of sources()) this.set(labelsOf(stats), pending);
      },
    });
    // Histograms aggregate across replicas (summaries do not): sum them in PromQL, then take quantiles.
    const histogram = (name: string, help: string) => new Histogram<Label>({ name, help, labelNames: LABELS, buckets: LATENCY_BUCKETS_US, registers });
    this.requestHistogram = histogram('nv_inference_request_duration_histogram_us', 'Successful inference request duration in microseconds');
    this.queueHistogram = histogram('nv_inference_queue_duration_histogram_us', 'Inference queuing duration in microseconds');
    this.computeHistogram = histogram('nv_inference_compute_infer_duration_histogram_us', 'Compute inference duration in microseconds');
    collectDefaultMetrics({ register: this.registry, prefix: 'maas_' });
  }

  /** One successful request's latencies into the histograms. */
  observe(model: string, version: string, t: RequestTiming): void {
    const labels = { model, version };
    this.requestHistogram.observe(labels, t.totalNs / 1000);
    this.queueHistogram.observe(labels, t.queueNs / 1000);
    this.computeHistogram.observe(labels, t.inferNs / 1000);
  }

  /** The exposition text for /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
