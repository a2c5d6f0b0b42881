/**
 * Per model version statistics in the shape of Triton's statistics extension (cumulative counts
 * and nanoseconds per phase, per batch size, plus latency histograms), and the Prometheus metrics
 * with Triton's names, read from those statistics when Prometheus scrapes.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { Execution } from './batcher.js';
import { native, type NativeNvmlSample } from '../native/index.js';

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

/** Latency buckets in µs: 50 µs to 5 s. */
const LATENCY_BUCKETS_US = [
  50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
];

/** One latency histogram of one version: per-bucket counts, kept here so a request costs no label hashing. */
export class LatencyBuckets {
  /** counts[i] for values ≤ LATENCY_BUCKETS_US[i] (and above the previous bound); the last is +Inf. */
  readonly counts = new Float64Array(LATENCY_BUCKETS_US.length + 1);
  sum = 0;
  count = 0;

  observe(us: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_US.length && us > LATENCY_BUCKETS_US[i]!) i++;
    this.counts[i]!++;
    this.sum += us;
    this.count++;
  }
}

/** Cumulative statistics of one model version (the ModelStatistics message, and what the metrics read). */
export class VersionStatistics {
  lastInference = 0;
  inferenceCount = 0;
  executionCount = 0;
  /** Executions run on the serving thread (the rest ran in the pool). */
  inlineExecutionCount = 0;
  readonly success = duration();
  readonly fail = duration();
  readonly failures: Record<FailureReason, number> = { REJECTED: 0, CANCELED: 0, BACKEND: 0, OTHER: 0 };
  readonly queue = duration();
  readonly computeInput = duration();
  readonly computeInfer = duration();
  readonly computeOutput = duration();
  readonly batches = new Map<number, { computeInput: Duration; computeInfer: Duration; computeOutput: Duration }>();
  readonly requestLatency = new LatencyBuckets();
  readonly queueLatency = new LatencyBuckets();
  readonly computeLatency = new LatencyBuckets();
  /** The explain extension: requests, rows explained per method, and the workers' compute time. */
  readonly explainSuccess = duration();
  readonly explainFail = duration();
  readonly explainCompute = duration();
  readonly explainedRows: Record<string, number> = {};
  /** Times this version, as the canary, was rolled back by its guard. */
  canaryRollbacks = 0;

  constructor(
    readonly model: string,
    readonly version: string,
  ) {}

  recordSuccess(rows: number, t: RequestTiming): void {
    this.lastInference = Date.now();
    this.inferenceCount += rows;
    add(this.success, t.totalNs);
    add(this.queue, t.queueNs);
    add(this.computeInput, t.inputNs);
    add(this.computeInfer, t.inferNs);
    add(this.computeOutput, t.outputNs);
    this.requestLatency.observe(t.totalNs / 1000);
    this.queueLatency.observe(t.queueNs / 1000);
    this.computeLatency.observe(t.inferNs / 1000);
  }

  recordExplain(method: string, rows: number, totalNs: number, computeNs: number): void {
    add(this.explainSuccess, totalNs);
    add(this.explainCompute, computeNs);
    this.explainedRows[method] = (this.explainedRows[method] ?? 0) + rows;
  }

  recordExplainFailure(totalNs: number): void {
    add(this.explainFail, totalNs);
  }

  recordFailure(reason: FailureReason, totalNs: number): void {
    add(this.fail, totalNs);
    this.failures[reason]++;
  }

  recordExecution({ placement, rows, inputNs, computeNs, outputNs }: Execution): void {
    this.executionCount++;
    if (placement === 'inline') this.inlineExecutionCount++;
    let batch = this.batches.get(rows);
    if (!batch) {
      batch = { computeInput: duration(), computeInfer: duration(), computeOutput: duration() };
      this.batches.set(rows, batch);
    }
    add(batch.computeInput, inputNs);
    add(batch.computeInfer, computeNs);
    add(batch.computeOutput, outputNs);
  }
}

/** What the metrics read at scrape time: every live version's statistics and its pending requests. */
export type MetricSources = () => { stats: VersionStatistics; pending: number }[];

/** What the endpoints hold at scrape time: requests read and not yet answered. */
export interface EndpointLoad {
  /** Requests read from ModelStreamInfer streams and not yet answered. */
  grpcStreamRequests: number;
  /** REST requests running (admitted and not yet answered). */
  httpRequests: number;
}

const LABELS = ['model', 'version'] as const;
type Label = 'model' | 'version';

/**
 * A histogram for the registry (its registerMetric interface) read from every version's
 * LatencyBuckets at scrape time: _bucket (cumulative, le), _sum and _count per model and version.
 */
function latencyHistogram(
  name: string,
  help: string,
  sources: MetricSources,
  pick: (s: VersionStatistics) => LatencyBuckets,
) {
  return {
    name,
    help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const { stats } of sources()) {
        const b = pick(stats);
        const labels = { model: stats.model, version: stats.version };
        let cumulative = 0;
        LATENCY_BUCKETS_US.forEach((le, i) => {
          cumulative += b.counts[i]!;
          values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${name}_bucket` });
        });
        values.push({ labels: { le: '+Inf', ...labels }, value: b.count, metricName: `${name}_bucket` });
        values.push({ labels, value: b.sum, metricName: `${name}_sum` });
        values.push({ labels, value: b.count, metricName: `${name}_count` });
      }
      return Promise.resolve({ name, help, type: 'histogram' as const, values, aggregator: 'sum' as const });
    },
    reset() {},
  };
}

/**
 * Triton's GPU gauges, per device by UUID, sampled from NVML when Prometheus scrapes. Registered
 * only where NVML answers at start (a machine with an NVIDIA driver), as Triton reports them only
 * for the GPUs it sees.
 */
function gpuGauges(registers: Registry[]): void {
  if (native.nvmlSample() === null) return;
  const gauge = (name: string, help: string, read: (d: NativeNvmlSample) => number | null) =>
    new Gauge<'gpu_uuid'>({
      name,
      help,
      labelNames: ['gpu_uuid'],
      registers,
      collect() {
        this.reset();
        for (const device of native.nvmlSample() ?? []) {
          const value = read(device);
          if (value !== null) this.set({ gpu_uuid: device.uuid }, value);
        }
      },
    });
  gauge('nv_gpu_utilization', 'GPU utilization rate [0.0 - 1.0)', (d) => d.utilization);
  gauge('nv_gpu_memory_total_bytes', 'GPU total memory, in bytes', (d) => d.memoryTotalBytes);
  gauge('nv_gpu_memory_used_bytes', 'GPU used memory, in bytes', (d) => d.memoryUsedBytes);
  gauge('nv_gpu_power_usage', 'GPU power usage in watts', (d) => d.powerWatts);
}

/**
 * The Prometheus registry of one server, with Triton's metric names. Counters and the pending
 * gauge are read from the versions' statistics when Prometheus scrapes (nothing per request);
 * the latency histograms are observed per request.
 */
export class ServingMetrics {
  readonly registry = new Registry();

  constructor(
    sources: MetricSources,
    endpoints: () => EndpointLoad = () => ({ grpcStreamRequests: 0, httpRequests: 0 }),
  ) {
    const registers = [this.registry];
    const labelsOf = (s: VersionStatistics) => ({ model: s.model, version: s.version });
    const counter = (name: string, help: string, read: (s: VersionStatistics) => number) =>
      new Counter<Label>({
        name,
        help,
        labelNames: LABELS,
        registers,
        collect() {
          this.reset();
          for (const { stats } of sources()) this.inc(labelsOf(stats), read(stats));
        },
      });
    /** A counter with one more label, read as [label value, count] pairs per version. */
    const counterBy = <L extends string>(
      name: string,
      help: string,
      label: L,
      read: (s: VersionStatistics) => [string, number][],
    ) =>
      new Counter<Label | L>({
        name,
        help,
        labelNames: [...LABELS, label],
        registers,
        collect() {
          this.reset();
          for (const { stats } of sources())
            for (const [value, count] of read(stats))
              this.inc({ ...labelsOf(stats), [label]: value } as Record<Label | L, string>, count);
        },
      });
    counter(
      'nv_inference_request_success',
      'Number of successful inference requests, all batch sizes',
      (s) => s.success.count,
    );
    counterBy('nv_inference_request_failure', 'Number of failed inference requests, all batch sizes', 'reason', (s) =>
      Object.entries(s.failures).filter(([, count]) => count > 0),
    );
    counter('nv_inference_count', 'Number of inferences performed (a batch of n counts n)', (s) => s.inferenceCount);
    counter('maas_explain_request_success', 'Number of successful explain requests', (s) => s.explainSuccess.count);
    counter('maas_explain_request_failure', 'Number of failed explain requests', (s) => s.explainFail.count);
    counter(
      'maas_explain_request_duration_us',
      "Cumulative explain request duration in microseconds (including the workers' compute)",
      (s) => s.explainSuccess.ns / 1000,
    );
    counter(
      'maas_explain_compute_duration_us',
      'Cumulative compute duration of explanations in the workers, in microseconds',
      (s) => s.explainCompute.ns / 1000,
    );
    counterBy('maas_explain_count', 'Number of rows explained, by method', 'method', (s) =>
      Object.entries(s.explainedRows),
    );
    counter('nv_inference_exec_count', 'Number of model executions performed', (s) => s.executionCount);
    counter(
      'maas_canary_rollbacks',
      'Times this version, as the canary, was rolled back (its share set to 0) by the canary guard',
      (s) => s.canaryRollbacks,
    );
    counterBy(
      'maas_inference_exec_count',
      'Number of model executions performed, by where they ran (inline on the serving thread, or in the pool)',
      'placement',
      (s) => [
        ['inline', s.inlineExecutionCount],
        ['pool', s.executionCount - s.inlineExecutionCount],
      ],
    );
    counter(
      'nv_inference_request_duration_us',
      'Cumulative inference request duration in microseconds',
      (s) => s.success.ns / 1000,
    );
    counter(
      'nv_inference_queue_duration_us',
      'Cumulative inference queuing duration in microseconds',
      (s) => s.queue.ns / 1000,
    );
    counter(
      'nv_inference_compute_input_duration_us',
      'Cumulative compute input duration in microseconds',
      (s) => s.computeInput.ns / 1000,
    );
    counter(
      'nv_inference_compute_infer_duration_us',
      'Cumulative compute inference duration in microseconds',
      (s) => s.computeInfer.ns / 1000,
    );
    counter(
      'nv_inference_compute_output_duration_us',
      'Cumulative compute output duration in microseconds',
      (s) => s.computeOutput.ns / 1000,
    );
    gpuGauges(registers);
    new Gauge<Label>({
      name: 'nv_inference_pending_request_count',
      help: 'Instantaneous number of pending requests awaiting execution per model',
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const { stats, pending } of sources()) this.set(labelsOf(stats), pending);
      },
    });
    new Gauge({
      name: 'maas_grpc_stream_requests_in_flight',
      help: 'Requests read from ModelStreamInfer streams and not yet answered',
      registers,
      collect() {
        this.set(endpoints().grpcStreamRequests);
      },
    });
    new Gauge({
      name: 'maas_http_requests_in_flight',
      help: 'REST requests running (each connection runs a bounded number at once)',
      registers,
      collect() {
        this.set(endpoints().httpRequests);
      },
    });
    // Histograms aggregate across replicas (summaries do not): sum them in PromQL, then take quantiles.
    // The registry reads any metric through get() and reset(); its typings only name its own classes.
    const register = (m: ReturnType<typeof latencyHistogram>) => this.registry.registerMetric(m as unknown as Metric);
    register(
      latencyHistogram(
        'nv_inference_request_duration_histogram_us',
        'Successful inference request duration in microseconds',
        sources,
        (s) => s.requestLatency,
      ),
    );
    register(
      latencyHistogram(
        'nv_inference_queue_duration_histogram_us',
        'Inference queuing duration in microseconds',
        sources,
        (s) => s.queueLatency,
      ),
    );
    register(
      latencyHistogram(
        'nv_inference_compute_infer_duration_histogram_us',
        'Compute inference duration in microseconds',
        sources,
        (s) => s.computeLatency,
      ),
    );
    collectDefaultMetrics({ register: this.registry, prefix: 'maas_' });
  }

  /** The exposition text for /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
