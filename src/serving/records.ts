/**
 * Raw data in, labels out, for the DataPlane: a request's raw columns (MLServer's pandas content
 * type, one input per column, BYTES for text) or JSON records turned into model rows through the
 * model's saved preparation pipeline, and outputs turned into labels: Triton's classification
 * extension ("score:index:label" strings) and a label output named after the label column.
 *
 * The pipeline runs on the serving thread, before the batcher: a record costs about as much to
 * prepare as to decode, and the rows it makes are then batched with every other request's.
 */
import { MaasError } from '../core/errors.js';
import { isPlainObject } from '../core/validation.js';
import type { Pipeline } from '../data/pipeline.js';
import { deserializeBytesTensor } from '../protocol/bytes-tensor.js';
import { flatValues } from '../protocol/values.js';
import { floatsFromRaw, floatsFromValues } from './tensors.js';

/** A decoded input tensor, as the DataPlane holds it. */
interface ColumnInput {
  name: string;
  datatype: string;
  shape: number[];
  raw?: Uint8Array;
  values?: ArrayLike<unknown>;
}

/** MLServer's request parameter for one input per column. */
export const PANDAS_CONTENT_TYPE = 'pd';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(bytes: Uint8Array, what: string, index: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new MaasError('MAAS_ERR_INFER_INPUT', `Expected UTF-8 text in element ${index} of ${what}`);
  }
}

/** One column's values: strings for BYTES, numbers for the numeric datatypes. */
function columnValues(input: ColumnInput, maxRows: number): unknown[] {
  const what = `input '${input.name}'`;
  const { shape } = input;
  const rows = shape[0];
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1)) || !Number.isInteger(rows) || rows! < 1)
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `unexpected shape [${shape.join(',')}] for raw column ${what}: expected [rows] or [rows, 1]`,
    );
  if (maxRows > 0 && rows! > maxRows)
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `${what} has ${rows} rows, more than the model's max_batch_size ${maxRows}`,
    );
  if (input.datatype === 'BYTES') {
    if (input.raw !== undefined) return deserializeBytesTensor(input.raw, rows, what).map((e, i) => text(e, what, i));
    const values = Array.from(flatValues(input.values ?? []));
    if (values.length !== rows)
      throw new MaasError(
        'MAAS_ERR_INFER_INPUT',
        `unexpected number of elements ${values.length} for ${what}, expecting ${rows}`,
      );
    return values.map((v, i) => {
      if (typeof v === 'string') return v;
      if (v instanceof Uint8Array) return text(v, what, i);
      throw new MaasError('MAAS_ERR_INFER_INPUT', `Expected a string for element ${i} of BYTES ${what}`);
    });
  }
  const floats =
    input.raw !== undefined
      ? floatsFromRaw(input.raw, input.datatype, rows!, what)
      : floatsFromValues(input.values ?? [], input.datatype, rows!, what);
  return Array.from(floats);
}

/** Raw columns (one input per column) as records. */
export function recordsFromColumns(inputs: readonly ColumnInput[], maxRows: number): Record<string, unknown>[] {
  if (inputs.length === 0) throw new MaasError('MAAS_ERR_INFER_INPUT', 'Expected at least one raw column input');
  const names = new Set<string>();
  const columns = inputs.map((input) => {
    if (names.has(input.name)) throw new MaasError('MAAS_ERR_INFER_INPUT', `input '${input.name}' is given twice`);
    names.add(input.name);
    return { name: input.name, values: columnValues(input, maxRows) };
  });
  const rows = columns[0]!.values.length;
  const uneven = columns.find((c) => c.values.length !== rows);
  if (uneven)
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `raw column '${uneven.name}' has ${uneven.values.length} rows but '${columns[0]!.name}' has ${rows}`,
    );
  return Array.from({ length: rows }, (_, i) => {
    // No prototype: an input named '__proto__' is a key like any other, not a setter.
    const record = Object.create(null) as Record<string, unknown>;
    for (const c of columns) record[c.name] = c.values[i];
    return record;
  });
}

/** JSON records from the network, checked: plain objects of strings, numbers, booleans and nulls. */
export function checkedRecords(records: unknown, maxRows: number): Record<string, unknown>[] {
  if (!Array.isArray(records) || records.length === 0)
    throw new MaasError('MAAS_ERR_INFER_INPUT', 'Expected records to be a non-empty array of objects');
  if (maxRows > 0 && records.length > maxRows)
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `${records.length} records are more than the model's max_batch_size ${maxRows}`,
    );
  records.forEach((r: unknown, i) => {
    if (!isPlainObject(r)) throw new MaasError('MAAS_ERR_INFER_INPUT', `Expected an object for records[${i}]`);
    for (const [key, v] of Object.entries(r))
      if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `Expected a string, number, boolean or null for records[${i}].${key.length > 64 ? `${key.slice(0, 64)}…` : key}`,
        );
  });
  return records as Record<string, unknown>[];
}

/** The classification parameter of a requested output: k ≥ 1, or undefined when absent. */
export function classificationOf(parameters: Record<string, unknown> | undefined): number | undefined {
  const value = parameters?.classification;
  if (value === undefined) return undefined;
  const k =
    typeof value === 'bigint'
      ? Number(value)
      : typeof value === 'string' && /^\d{1,9}$/.test(value)
        ? Number(value)
        : value;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1)
    throw new MaasError(
      'MAAS_ERR_INFER_PARAMETER',
      `Expected a positive integer for output parameter classification but received ${JSON.stringify(typeof value === 'bigint' ? String(value) : value)}`,
    );
  return k;
}

/**
 * Each row's top k classes as Triton writes them: "score:index:label", or "score:index" without
 * labels; one sigmoid output of a two-class pipeline reads as the two classes.
 */
export function classificationStrings(
  y: Float32Array,
  rows: number,
  k: number,
  pipeline: Pipeline | null,
  labels: string[] | null,
): { strings: string[]; k: number } {
  const width = y.length / rows;
  if (pipeline?.classes) {
    const ranked = pipeline.rank(y, rows, k);
    return {
      strings: ranked.flat().map((c) => `${c.score.toFixed(6)}:${c.index}:${c.label}`),
      k: ranked[0]!.length,
    };
  }
  const top = Math.min(k, width);
  const strings: string[] = [];
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: width }, (_, j) => j).sort(
      (a, b) => y[r * width + b]! - y[r * width + a]! || a - b,
    );
    for (const j of order.slice(0, top)) {
      const label = labels?.[j];
      strings.push(`${y[r * width + j]!.toFixed(6)}:${j}${label !== undefined ? `:${label}` : ''}`);
    }
  }
  return { strings, k: top };
}
