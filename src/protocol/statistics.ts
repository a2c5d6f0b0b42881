/** The statistics extension's message shapes, the same in gRPC and JSON: shared by server and clients. */

/** A count of events and the nanoseconds they took. */
export interface DurationStat {
  count: number;
  ns: number;
}

/** Statistics of one version, as Triton's statistics extension reports them (the same fields in gRPC and JSON). */
export interface ModelStatisticsEntry {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<
    'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss',
    DurationStat
  >;
  batch_stats: {
    batch_size: number;
    compute_input: DurationStat;
    compute_infer: DurationStat;
    compute_output: DurationStat;
  }[];
  memory_usage: { type: string; id: number; byte_size: number }[];
  /**
   * maas's explain extension, for versions that enable it (REST only: gRPC's ModelStatistics has no
   * field for it): requests that succeeded and failed, the workers' compute, rows explained per method.
   */
  explain_stats?: {
    success: DurationStat;
    fail: DurationStat;
    compute_explain: DurationStat;
    explained_rows: Record<string, number>;
  };
}
