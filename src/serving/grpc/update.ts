/**
 * maas.UpdateService/Update: the update extension over gRPC. The first request names the model
 * and the parameters; requests carry batches of FP32 rows; the client's half-close starts the
 * training. Events go back on the stream; a failure ends the call with its mapped status. A call
 * cancelled before the commit cancels the update, and nothing of it stays.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { MaasError } from '../../core/errors.js';
import { fromWireParameters, type WireParameter } from '../../protocol/grpc.js';
import { toGrpcError, type RefusedInferRequest } from './codec.js';
import { fp32Copy, updateEventMessage, updateResultMessage, type DataPlane, type UpdateSession } from '../dataplane.js';

/** UpdateRequest as proto-loader decodes it. */
export interface WireUpdateRequest {
  model_name?: string;
  model_version?: string;
  parameters?: Record<string, WireParameter>;
  batch?: { set?: string; rows?: number; x?: Buffer; y?: Buffer };
}

type UpdateCall = grpc.ServerDuplexStream<WireUpdateRequest | RefusedInferRequest, object>;

/**
 * A stream that sends nothing for this long while its rows are due is ended, so a client that
 * stalls cannot hold the model's update lock (REST has the server's request timeout for that).
 */
export const UPDATE_IDLE_MS = 60_000;

/** Serves one Update call. */
export function serveUpdateStream(
  call: UpdateCall,
  dataplane: DataPlane,
  logger: Logger,
  idleMs = UPDATE_IDLE_MS,
): void {
  let session: UpdateSession | null = null;
  let starting: Promise<void> | null = null;
  let over = false;
  let idle: NodeJS.Timeout | null = null;
  const watch = (on: boolean) => {
    if (idle) clearTimeout(idle);
    idle = on
      ? setTimeout(
          () =>
            fail(
              new MaasError(
                'MAAS_ERR_UPDATE_DATA',
                `No update message for ${idleMs / 1000} s while its rows were due: the update is cancelled`,
              ),
            ),
          idleMs,
        )
      : null;
    idle?.unref();
  };
  watch(true);
  const fail = (error: unknown) => {
    if (over) return;
    over = true;
    watch(false);
    // Answered once the model is free again (a session still starting first exists, then lets go):
    // a client that retries at once is not refused as busy.
    void (starting ?? Promise.resolve())
      .then(() => session?.cancel('the update failed'))
      .then(() => call.emit('error', toGrpcError(error)));
  };
  const add = (message: WireUpdateRequest) => {
    const batch = message.batch;
    if (!batch) return;
    const x = fp32Copy(batch.x, 'batch.x', 'MAAS_ERR_UPDATE_DATA');
    const y = fp32Copy(batch.y, 'batch.y', 'MAAS_ERR_UPDATE_DATA');
    session!.add({ set: (batch.set || 'train') as 'train', x, y, ...(batch.rows ? { rows: batch.rows } : {}) });
  };
  call.on('data', (message: WireUpdateRequest | RefusedInferRequest) => {
    if (over) return;
    watch(true);
    try {
      if ('refused' in message) throw message.refused;
      if (session) return add(message);
      if (starting) throw new MaasError('MAAS_ERR_UPDATE_DATA', 'A batch arrived while the update was starting');
      // The first request: hold the stream until the session exists (the lock is a file).
      call.pause();
      starting = dataplane
        .beginUpdate(
          message.model_name ?? '',
          message.model_version || undefined,
          fromWireParameters(message.parameters) ?? {},
        )
        .then((begun) => {
          session = begun;
          if (over) return void session.cancel();
          add(message);
          call.resume();
        })
        .catch(fail);
    } catch (error) {
      fail(error);
    }
  });
  call.on('end', () => {
    watch(false);
    void (async () => {
      await starting;
      if (over) return;
      if (!session) return fail(new MaasError('MAAS_ERR_UPDATE_DATA', 'The update stream named no model'));
      try {
        const result = await session.run((event) => !over && call.write(updateEventMessage(event)));
        if (over) return;
        over = true;
        call.write(updateResultMessage(result));
        call.end();
      } catch (error) {
        fail(error);
      }
    })();
  });
  // grpc-js reports every end of a call as 'cancelled', a normal one too (after the status).
  call.once('cancelled', () => {
    watch(false);
    if (!over) void session?.cancel();
    over = true;
  });
  call.on('error', (error) => logger.debug({ err: error }, 'update stream error'));
}
