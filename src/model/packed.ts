/**
 * Opening a packed model in any thread: the one call a worker needs. The bytes come from
 * model.packed() (fp32) or quantizedModel.packed() (int8) in the thread that owns the model;
 * posting the SharedArrayBuffer to a worker shares it, so every worker's handle reads the same
 * weights (no copy per worker).
 */
import { fromNative, invalidParameter } from '../core/errors.js';
import { native, type NativeCompiledModel } from '../native/index.js';
import type { PackedModel } from './sequential.js';

/**
 * Opens a native handle over a packed model, e.g. inside a piscina worker that received
 * `packed` (or just its buffer and format) in a message. The handle's
 * predict(x: Float32Array, batch, y: Float32Array) writes batch × outputSize floats into y
 * synchronously, using this thread's ISA cap and intra-op threads; dispose() releases it.
 * Throws MAAS_ERR_PACKED_CORRUPT for bytes that fail the header checks and
 * MAAS_ERR_PACKED_ISA_ABOVE_CAP when the buffer was packed for an ISA above this thread's cap.
 */
export function openPackedModel(packed: Pick<PackedModel, 'buffer' | 'format'>): NativeCompiledModel {
  const buffer: unknown = packed?.buffer;
  if (!(buffer instanceof SharedArrayBuffer || buffer instanceof ArrayBuffer)) {
    throw invalidParameter(
      'openPackedModel(packed)',
      'an object with the SharedArrayBuffer from model.packed()',
      packed,
    );
  }
  const format = packed.format ?? 'fp32';
  if (format !== 'fp32' && format !== 'int8')
    throw invalidParameter('openPackedModel(packed).format', "'fp32' or 'int8'", format, 'MAAS_ERR_ARG_RANGE');
  try {
    const bytes = new Uint8Array(packed.buffer);
    return format === 'int8' ? new native.QuantizedModel(bytes) : new native.CompiledModel(bytes);
  } catch (e) {
    throw fromNative(e);
  }
}
