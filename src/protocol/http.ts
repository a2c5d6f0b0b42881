/** The REST binary tensor data extension's names, shared by the HTTP server and client. */

/** Bytes of JSON header before the binary tensor data, in a request or a response. */
export const BINARY_HEADER_LENGTH = 'inference-header-content-length';

/** The response header that carries a REST error's MAAS_ERR_* code (gRPC sends it as maas-error-code metadata). */
export const ERROR_CODE_HEADER = 'maas-error-code';
