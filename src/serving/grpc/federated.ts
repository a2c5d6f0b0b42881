/**
 * maas.FederatedService's messages: weight tensors off and onto the wire, and the round's info
 * and result as the .proto spells them. The handlers (server.ts) call the DataPlane once each.
 */
import { fp32Copy, type RoundInfo, type RoundResult, type RoundTensor } from '../dataplane.js';

/** WeightTensor as proto-loader decodes it. */
export interface WireWeightTensor {
  shape?: number[];
  data?: Buffer;
}

/** SubmitUpdateRequest as proto-loader decodes it. */
export interface WireSubmitUpdate {
  model_name?: string;
  round_id?: string;
  client?: string;
  samples?: number;
  delta?: WireWeightTensor[];
}

/** A delta's tensors as floats. */
export function deltaOf(tensors: WireWeightTensor[] | undefined): Float32Array[] {
  return (tensors ?? []).map((t, i) => fp32Copy(t.data, `delta ${i}`, 'MAAS_ERR_FEDERATED_UPDATE'));
}

function tensorMessage(t: RoundTensor): object {
  return { shape: t.shape, data: Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength) };
}

export function roundInfoMessage(info: RoundInfo): object {
  return {
    model_name: info.model,
    round_id: info.roundId,
    base_version: String(info.baseVersion),
    weights: (info.weights ?? []).map(tensorMessage),
    clients: info.clients,
    samples: info.samples,
    clip_norm: info.clipNorm ?? 0,
    noise_multiplier: info.noiseMultiplier,
    max_norm: info.maxNorm ?? 0,
    min_clients: info.minClients,
  };
}

export function roundResultMessage(r: RoundResult): object {
  const v = r.verdict;
  return {
    model_name: r.model,
    round_id: r.roundId,
    base_version: String(r.baseVersion),
    clients: v.clients,
    samples: v.samples,
    clipped: v.clipped,
    refused: v.refused,
    noise_std: v.noiseStd,
    promoted: r.promoted,
    model_version: r.version === undefined ? '' : String(r.version),
    serving: r.serving,
    metrics: v.candidate,
    serving_metrics: v.serving,
    metric: v.metric,
    improvement: v.improvement,
    reason: r.loadError ? `${v.reason}; not serving: ${r.loadError}` : v.reason,
    epsilon: v.privacy?.epsilon ?? 0,
    delta: v.privacy?.delta ?? 0,
    dp_rounds: v.privacy?.rounds ?? 0,
  };
}
