/**
 * A model's feature rows from what a caller has: rows of numbers in the model's input order (nested
 * arrays, a Float32Array, a Tensor), or raw records, which the model's preparation pipeline
 * prepares. The explanation background and `maas explain`'s input files are read this way.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { toMatrix } from '../core/tensor.js';
import { isPlainObject } from '../core/validation.js';
import type { Pipeline } from './pipeline.js';

/** `value` as rows of `width` finite features (records through `pipeline`); `what` names it in errors. */
export function featureRows(value: unknown, width: number, pipeline: Pipeline | null, what: string): Float32Array {
  if (Array.isArray(value) && value.length > 0 && value.every(isPlainObject)) {
    if (!pipeline)
      throw new MaasError(
        'MAAS_ERR_MODEL_EMPTY',
        `${what} holds records but the model has no preparation pipeline: give rows of ${width} numbers`,
      );
    return pipeline.transform(value, { onWarning: 'ignore' });
  }
  if (Array.isArray(value)) {
    value.forEach((row: unknown, i) => {
      // The width here; the values' type and range below, as for any tensor-like value.
      if (!Array.isArray(row) || row.length !== width)
        throw new MaasError(
          'MAAS_ERR_SHAPE_MISMATCH',
          `Expected row ${i} of ${what} to hold ${width} numbers (the model's inputs)${pipeline ? ', or every row to be a record' : ''}`,
        );
    });
  }
  const m = toMatrix(value, width, what);
  if (m.cols !== width)
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected rows of ${width} features (the model's input) for ${what} but received rows of ${m.cols}`,
    );
  for (let i = 0; i < m.data.length; i++)
    if (!Number.isFinite(m.data[i]!))
      throw invalidParameter(`${what}[${i}]`, 'finite numbers', m.data[i], 'MAAS_ERR_ARG_RANGE');
  return m.data;
}
