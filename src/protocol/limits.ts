/** Default limits of the service, shared by both transports. */

/**
 * Largest gRPC message or REST body accepted (64 MiB). Triton allows 2 GiB − 1; at that size a
 * JSON array of zeros or packed bool_contents expands past V8's largest array and aborts the
 * process, so maas refuses earlier. `--max-message-bytes` raises it.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * A connection with no request in flight for this long is closed (65 s: under nginx's 75 s
 * keepalive, so a proxy in front never reuses a connection the server is closing).
 */
export const DEFAULT_CONNECTION_IDLE_MS = 65_000;

/** Calls in flight on one gRPC connection (HTTP/2 streams); more wait in the client. */
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 1024;

/** Queued input bytes per model version before requests are rejected (REJECTED, like max_queue_size). */
export const DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024;

/** Open REST connections; a client beyond this is refused until one closes. */
export const DEFAULT_MAX_HTTP_CONNECTIONS = 10_000;

/**
 * Requests read from one ModelStreamInfer stream and not yet answered. At the cap the server stops
 * reading the stream (HTTP/2 flow control then holds the client) until answers go out.
 */
export const DEFAULT_MAX_IN_FLIGHT_PER_STREAM = 128;

/**
 * Requests of one REST connection that run at once (HTTP/1.1 pipelining). As many again may wait
 * behind them in order; a client that pipelines further ahead of its answers is disconnected.
 */
export const DEFAULT_MAX_IN_FLIGHT_PER_HTTP_CONNECTION = 32;

/** REST JSON bodies from this size on are parsed in a worker thread, not on the event loop (1 MiB). */
export const DEFAULT_JSON_THREAD_BYTES = 1024 * 1024;

/**
 * Tensor elements one request may carry as typed values (gRPC contents, REST JSON data): as many
 * FP32 values as fit the message limit. A packed bool is one byte on the wire but a JS array
 * slot of eight, so counting bytes alone would let a 64 MiB message decode to 512 MB.
 */
export function maxRequestElements(maxMessageBytes: number): number {
  return Math.floor(maxMessageBytes / 4);
}

/**
 * Deepest nesting of arrays and objects accepted in a JSON body or config override. A request
 * needs a handful of levels; without a bound, 100 000 levels parse fine and then overflow the
 * stack of whatever walks them (flattening tensor data, describing a value in an error).
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether JSON text nests arrays and objects deeper than `max`: one scan of the text that skips
 * strings, stopping as soon as it is too deep (no parse, no recursion).
 */
export function jsonNestsDeeper(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}
