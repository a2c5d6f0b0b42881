/**
 * The explain extension's answer, the same in JSON (POST …/explain) and in gRPC
 * (maas.ExplainService/ModelExplain, proto/maas_explain.proto): shared by the server and the
 * clients. Field names are snake_case, as the protocol's own messages.
 */

/** A raw column's share of the attributions (a category's one-hot features summed). */
export interface ColumnAttributionMessage {
  column: string;
  attribution: number;
}

/** One row's explanation. Fields a method does not produce are absent (JSON) or zero (gRPC). */
export interface ExplanationMessage {
  output: number;
  value: number;
  base: number;
  attributions: number[];
  features: string[];
  columns?: ColumnAttributionMessage[];
  completeness_gap?: number;
  additivity_gap?: number;
  r2?: number;
  coefficients?: number[];
  coalitions?: number;
  exact?: boolean;
}

/** ModelExplain's answer. */
export interface ModelExplainResponse {
  model_name: string;
  model_version: string;
  id?: string;
  method: string;
  explanations: ExplanationMessage[];
}
