/**
 * maas.FederatedService's messages: weight tensors off and onto the wire, and the round's info
 * and result as the .proto spells them. The handlers (server.ts) call the DataPlane once each.
 */
import { MaasError } from '../../core/errors.js';
import type { RoundInfo, RoundResult, RoundTensor } from '../dataplane.js';

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

/** A delta's tensors as floats (copied: the message's buffer may be unaligned). */
export function deltaOf(tensors: WireWeightTensor[] | undefined): Float32Array[] {
  return (tensors ?? []).map((t, i) => {
    const bytes = t.data ?? Buffer.alloc(0);
    if (bytes.length % 4 !== 0)
      throw new MaasError(
        'MAAS_ERR_FEDERATED_UPDATE',
        `Expected delta ${i} to hold FP32 values (a multiple of 4 bytes) but received ${bytes.length} bytes`,
      );
    const out = new Float32Array(bytes.length / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  });
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
