/**
 * ModelStreamInfer: a bidirectional stream of inference requests, each answered in order of
 * completion, an error being a message on the stream (error_message), not its end. The stream is
 * read only while it has room: at most `maxInFlight` requests read and not yet answered, and
 * nothing more while grpc-js's write buffer is full, so HTTP/2 flow control holds a client that
 * writes faster than it reads instead of the server's memory.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { messageOf } from '../../core/errors.js';
import { Cancellation, type DataPlane } from '../dataplane.js';
import { clip, decodeInferRequest, encodeInferResponse, isRefused, type RefusedInferRequest } from './codec.js';
import type { WireRequest } from '../../protocol/infer-wire.js';

/** Requests read from the streams of one server and not yet answered (read by /metrics). */
export class StreamLoad {
  /** Requests read and not yet answered, all streams together. */
  inFlight = 0;
}

/** The stream's limits. */
export interface StreamOptions {
  /** Requests read and not yet answered (their answer not yet handed to HTTP/2). */
  maxInFlight: number;
}

type StreamCall = grpc.ServerDuplexStream<WireRequest | RefusedInferRequest, object>;

/** Serves one ModelStreamInfer call until the client half-closes it and every answer is out, or it is cancelled. */
export function serveInferStream(
  call: StreamCall,
  dataplane: DataPlane,
  logger: Logger,
  options: StreamOptions,
  load: StreamLoad,
): void {
  let inFlight = 0; // read; answer not yet flushed
  let computing = 0; // read; answer not yet written
  let writeBufferFull = false;
  let halfClosed = false;
  let over = false;
  // Each request has its own: a Cancellation has one listener, the batcher entry of one request.
  const cancellations = new Set<Cancellation>();

  const count = (delta: number) => {
    inFlight += delta;
    load.inFlight += delta;
  };
  const regulate = () => {
    if (over) return;
    const full = inFlight >= options.maxInFlight || writeBufferFull;
    if (full && !call.isPaused()) call.pause();
    else if (!full && call.isPaused()) call.resume();
  };
  const flushed = () => {
    if (over) return;
    count(-1);
    regulate();
  };
  const answer = (message: object) => {
    computing--;
    if (over) return;
    // The callback runs once HTTP/2 took the message, which waits for the client's flow-control window.
    if (!call.write(message, flushed)) writeBufferFull = true;
    if (halfClosed && computing === 0) call.end();
    regulate();
  };
  const errorAnswer = (error: unknown, id: string | undefined, model: string | undefined) => ({
    error_message: clip(messageOf(error)),
    infer_response: { id: id ?? '', model_name: model ?? '' },
  });

  call.on('data', (message: WireRequest | RefusedInferRequest) => {
    count(1);
    computing++;
    regulate();
    if (isRefused(message)) {
      answer(errorAnswer(message.refused, message.id, message.model_name));
      return;
    }
    const cancellation = new Cancellation();
    cancellations.add(cancellation);
    Promise.resolve()
      .then(() => dataplane.infer(decodeInferRequest(message), cancellation))
      .then(
        (response) => ({ error_message: '', infer_response: encodeInferResponse(response) }),
        (error: unknown) => errorAnswer(error, message.id, message.model_name),
      )
      .then(answer)
      .catch((error: unknown) => logger.warn({ err: error }, 'stream write failed'))
      .finally(() => cancellations.delete(cancellation));
  });
  call.on('drain', () => {
    writeBufferFull = false;
    regulate();
  });
  call.on('end', () => {
    halfClosed = true;
    if (computing === 0) call.end();
  });
  // grpc-js reports every end of a call as 'cancelled', a normal one too (after the trailers).
  call.once('cancelled', () => {
    over = true;
    for (const cancellation of cancellations) cancellation.abort();
    load.inFlight -= inFlight;
    inFlight = 0;
  });
  call.on('error', (error) => logger.debug({ err: error }, 'stream error'));
}
