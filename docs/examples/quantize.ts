/**
 * int8: quantize the getting-started model (run train.ts first) with each calibration method,
 * compare each with the fp32 model on the data set, then save one beside the fp32 model in the
 * repository, so the server has both, and check the saved one loads back the same.
 *
 *   npx tsx docs/examples/quantize.ts
 */
import {
  CALIBRATION_METHODS,
  compareQuantized,
  formatReport,
  loadCsv,
  loadModel,
  loadQuantizedModel,
  quantize,
  tensor,
} from 'maas';

const REPO = 'docs/examples/out/repo';
const model = await loadModel(`${REPO}/orders/1`);

// The same rows the model was trained on, through the preparation pipeline saved with it.
const { features, target } = await loadCsv('docs/examples/data/orders.csv', { target: 'returned' });
const width = model.inputShape![1];
const rows = features.rows.length;
const x = tensor(model.preparation!.transform(features), [rows, width]);
const y = tensor(Float32Array.from(target!.values, Number), [rows, 1]);
// Calibration needs a few hundred representative rows at most; here the first 100.
const calibrationData = tensor(x.values.slice(0, 100 * width), [100, width]);

for (const method of CALIBRATION_METHODS) {
  const int8 = quantize(model, { calibrationData, method });
  const r = compareQuantized(model, int8, x, y, { warn: false });
  const acc = r.metrics.accuracy!; // the model was compiled with metrics: ['accuracy']
  console.log(
    `${method.padEnd(10)} agreement ${(100 * r.agreement!).toFixed(2)}%  max error ${r.maxAbsError.toFixed(4)}  ` +
      `accuracy ${(100 * acc.fp32).toFixed(2)}% → ${(100 * acc.int8).toFixed(2)}%`,
  );
  int8.dispose();
}

// Stricter bounds than the defaults (99% agreement, a 1-point metric drop): a few of the 400
// decisions changed, so the report says so and a MAAS_WARN_QUANT_ACCURACY process warning fires.
const int8 = quantize(model, { calibrationData, method: 'percentile' });
console.log(formatReport(compareQuantized(model, int8, x, y, { minAgreement: 0.999 })).join('\n'));
console.log('kernel', int8.packed().kernel);
await int8.save(`${REPO}/orders_int8/1`);

const again = await loadQuantizedModel(`${REPO}/orders_int8/1`);
const order = [{ price: 120, category: 'clothing', shipping_days: 8, rating: 2 }];
console.log('same after loading:', again.predictRaw(order).dataSync()[0] === int8.predictRaw(order).dataSync()[0]);
