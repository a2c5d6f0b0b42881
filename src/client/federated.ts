/**
 * A federated client's side of a round, over gRPC: fetch the open round's base weights, train a
 * local copy of the model on this client's own rows (they never leave it), and submit the weight
 * delta with the row count.
 */
import { MaasError } from '../core/errors.js';
import type { TensorLike } from '../core/tensor.js';
import { localUpdate } from '../lifecycle/federated.js';
import type { Sequential } from '../model/sequential.js';
import type { FitArgs } from '../train/engine.js';
import type { GrpcInferenceClient } from './grpc.js';

/** trainAndSubmit()'s options. */
export interface TrainAndSubmitOptions {
  model: string;
  /** This client's name in the round (one update per client per round). */
  client: string;
  /** A compiled model of the served architecture: its weights are set to the round's base first. */
  localModel: Sequential;
  x: TensorLike;
  y: TensorLike;
  fitArgs?: FitArgs;
  /** The round to join (default: the open one). */
  roundId?: string;
}

/**
 * Trains `localModel` from the round's base weights on x and y, and submits the delta. Resolves
 * with the round joined and what the server answered; `localModel` keeps the base weights after.
 */
export async function trainAndSubmit(
  server: GrpcInferenceClient,
  options: TrainAndSubmitOptions,
): Promise<{ roundId: string; baseVersion: string; samples: number; clients: number; norm: number }> {
  const round = await server.getRound(options.model, options.roundId);
  const own = options.localModel.getWeights();
  if (own.length !== round.weights.length || own.some((t, i) => t.values.length !== round.weights[i]!.values.length))
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `The local model's weights (${own.map((t) => t.shape.join('×')).join(', ')}) are not the served model's (${round.weights.map((t) => t.shape.join('×')).join(', ')})`,
    );
  options.localModel.setWeights(round.weights.map((t) => t.values));
  const update = await localUpdate(options.localModel, options.x, options.y, {
    ...(options.fitArgs ?? {}),
    client: options.client,
  });
  const answer = await server.submitUpdate(options.model, round.roundId, update);
  return { roundId: round.roundId, baseVersion: round.baseVersion, samples: update.samples, ...answer };
}
