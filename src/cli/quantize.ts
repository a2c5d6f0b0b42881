/**
 * `maas quantize --model DIR --calibration FILE.csv --out DIR`: loads an fp32 model, turns the
 * CSV rows into inputs (through the model's saved preparation pipeline when it has one, else as
 * numeric columns in input order), quantizes, prints the accuracy report against the fp32 model
 * on those rows, and saves the quantized model.
 */
import { MaasError } from '../core/errors.js';
import { loadCsv } from '../data/csv.js';
import { loadModel } from '../model/load.js';
import { quantize } from '../quant/quantize.js';
import { compareQuantized, formatReport, type QuantizationReport } from '../quant/report.js';
import type { CalibrationMethod } from '../quant/calibrate.js';
import type { Table } from '../data/table.js';

/** Options of the quantize command. */
export interface QuantizeCommandOptions {
  model: string;
  calibration: string;
  out: string;
  method?: CalibrationMethod;
  keepFloat?: string;
  /** A CSV column holding targets: the compiled metrics are compared on it. */
  target?: string;
  perTensor?: boolean;
  minAgreement?: number;
  print: (line: string) => void;
}

/** Numeric columns in order as rows of `width` floats (missing values become NaN, which quantize refuses). */
function numericRows(table: Table, width: number): Float32Array {
  if (table.columns.length !== width) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected ${width} feature columns (the model's input size) in the calibration CSV but received ${table.columns.length}; name a target column with --target, or save the model with a preparation pipeline`,
    );
  }
  const bad = table.types.findIndex((t) => t !== 'number');
  if (bad >= 0)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `Expected numeric values in calibration column '${table.columns[bad]}' (the model has no preparation pipeline to encode it)`,
    );
  const x = new Float32Array(table.rows.length * width);
  table.rows.forEach((row, i) => row.forEach((v, j) => (x[i * width + j] = v === null ? Number.NaN : Number(v))));
  return x;
}

/** Runs the command; returns the report. */
export async function runQuantize(o: QuantizeCommandOptions): Promise<QuantizationReport> {
  const model = await loadModel(o.model);
  const width = model.inputShape![1];
  const csv = await loadCsv(o.calibration, o.target ? { target: o.target } : {});
  const x = model.preparation ? model.preparation.transform(csv.features) : numericRows(csv.features, width);
  const int8 = quantize(model, {
    calibrationData: x,
    method: o.method ?? 'minmax',
    perChannel: !o.perTensor,
    ...(o.keepFloat ? { keepFloat: o.keepFloat } : {}),
  });
  const numericTarget =
    csv.target && csv.target.type === 'number' ? Float32Array.from(csv.target.values, (v) => Number(v)) : undefined;
  // One target per output, or one class index per row for a sparse loss; otherwise metrics are skipped.
  const rows = x.length / width;
  const perRow = model.compileInfo?.loss === 'sparseCategoricalCrossentropy' ? 1 : model.outputShape![1];
  const y = numericTarget && numericTarget.length === rows * perRow ? numericTarget : undefined;
  const report = compareQuantized(
    model,
    int8,
    x,
    y,
    o.minAgreement === undefined ? {} : { minAgreement: o.minAgreement },
  );
  const kinds = int8.spec.layers.map((l) => (l.int8 ? 'int8' : 'fp32')).join(', ');
  o.print(
    `quantized ${o.model} (${int8.spec.method}, ${int8.spec.perChannel ? 'per-channel' : 'per-tensor'} weights; layers: ${kinds}) with kernel ${int8.packed().kernel}`,
  );
  o.print(`accuracy report on the ${report.rows} calibration rows${y ? ` (targets: ${o.target})` : ''}:`);
  for (const line of formatReport(report)) o.print(`  ${line}`);
  const saved = await int8.save(o.out);
  o.print(`saved the quantized model to ${saved.modelJson ?? saved.h5}`);
  int8.dispose();
  return report;
}
