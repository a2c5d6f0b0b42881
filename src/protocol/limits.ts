/** Default limits of the service, shared by both transports. */

/**
 * Largest gRPC message or REST body accepted (64 MiB). Triton allows 2 GiB − 1; at that size a
 * JSON array of zeros or packed bool_contents expands past V8's largest array and aborts the
 * process, so maas refuses earlier. `--max-message-bytes` raises it.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
