/** The REST binary tensor data extension's names, shared by the HTTP server and client. */

/** Bytes of JSON header before the binary tensor data, in a request or a response. */
export const BINARY_HEADER_LENGTH = 'inference-header-content-length';
