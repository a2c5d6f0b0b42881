/**
 * Rows for an explanation from a JSON file: an array of rows of numbers in the model's input
 * order, or of raw records, which the model's preparation pipeline prepares. `maas explain` reads
 * its input and background this way, and the repository a model's explain_background file.
 */
import { MaasError } from '../core/errors.js';
import { isPlainObject } from '../core/validation.js';
import { readRegularFile } from '../io/files.js';
import { featureRows } from '../data/feature-rows.js';
import type { Pipeline } from '../data/pipeline.js';

export interface JsonRowsLimits {
  /** Largest file read (refused before it is read). */
  maxBytes: number;
  /** Most rows taken. */
  maxRows: number;
  /** A file may hold one row (numbers, or a record) rather than an array of them. */
  oneRow?: boolean;
}

/** The file's rows as `width` features each; `what` names the file in errors. */
export async function readJsonRows(
  path: string,
  width: number,
  pipeline: Pipeline | null,
  what: string,
  limits: JsonRowsLimits,
): Promise<Float32Array> {
  const text = (await readRegularFile(path, limits.maxBytes, what)).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `${what} ${path} is not JSON: ${(error as Error).message}`);
  }
  const many = Array.isArray(value) && (value.length === 0 || Array.isArray(value[0]) || isPlainObject(value[0]));
  const rows: unknown[] = many ? (value as unknown[]) : limits.oneRow ? [value] : [];
  if (rows.length === 0 || rows.length > limits.maxRows)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `Expected ${what} ${path} to hold ${limits.oneRow ? 'a row or ' : ''}an array of 1 to ${limits.maxRows} rows`,
    );
  if (!rows.every((r) => Array.isArray(r)) && !rows.every(isPlainObject))
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `Expected ${what} ${path} to hold rows of numbers or records`);
  return featureRows(rows, width, pipeline, `${what} ${path}`);
}
