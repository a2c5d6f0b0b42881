/**
 * What a saved model carries besides its weights and pipeline: the training history (every epoch
 * of every fit, which the /ui page draws) and the explanation background (the rows SHAP and LIME
 * compare against, so a served model explains without a file beside it). Both are written into
 * model.json's maas field and checked here when a file is read: a file is not trusted.
 */
import { MaasError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { isPlainObject } from '../core/validation.js';

/** One epoch's logged values by name (loss, metrics, val_ values). */
export type EpochLog = Record<string, number>;

/** The training history as saved: a NaN (a diverged loss) is written as null, as JSON has no NaN. */
export interface TrainingHistoryJson {
  kind: 'maas.history';
  version: 1;
  epochs: Record<string, number | null>[];
}

/** The explanation background as saved: float32 rows, little-endian, in base64 (exact and compact). */
export interface BackgroundJson {
  kind: 'maas.background';
  version: 1;
  rows: number;
  features: number;
  float32Base64: string;
}

/** The most epochs a saved history holds (the oldest are dropped past it). */
export const MAX_SAVED_EPOCHS = 10_000;
/** The most logged names per epoch a saved history may hold. */
const MAX_LOGGED_NAMES = 64;
/** The most background rows a model carries (SHAP's cost grows with them; 100 is the usual size). */
export const MAX_SAVED_BACKGROUND_ROWS = 1000;
/** The most background values a model carries (rows × features): 16 MiB of float32. */
export const MAX_SAVED_BACKGROUND_VALUES = 4 * 2 ** 20;

function malformed(where: string, what: string): MaasError {
  return new MaasError('MAAS_ERR_MODEL_FORMAT', `The ${what} saved in ${where} is malformed`);
}

export function historyToJSON(epochs: readonly EpochLog[]): TrainingHistoryJson {
  return {
    kind: 'maas.history',
    version: 1,
    epochs: epochs
      .slice(-MAX_SAVED_EPOCHS)
      .map((e) => Object.fromEntries(Object.entries(e).map(([k, v]) => [k, Number.isFinite(v) ? v : null]))),
  };
}

/** A saved history, checked: an array of epochs, each a few names with numbers (null is NaN). */
export function historyFromJSON(value: unknown, where: string): EpochLog[] {
  const bad = () => malformed(where, 'training history (maas.trainingHistory)');
  if (!isPlainObject(value) || value.kind !== 'maas.history' || value.version !== 1) throw bad();
  const { epochs } = value;
  if (!Array.isArray(epochs) || epochs.length > MAX_SAVED_EPOCHS) throw bad();
  return epochs.map((epoch: unknown) => {
    if (!isPlainObject(epoch)) throw bad();
    const entries = Object.entries(epoch);
    if (entries.length > MAX_LOGGED_NAMES) throw bad();
    const log: EpochLog = {};
    for (const [name, v] of entries) {
      if (name.length > 128 || !(v === null || typeof v === 'number')) throw bad();
      log[name] = v ?? NaN;
    }
    return log;
  });
}

export function backgroundToJSON(rows: Float32Array, features: number): BackgroundJson {
  const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
  return {
    kind: 'maas.background',
    version: 1,
    rows: rows.length / features,
    features,
    float32Base64: (isLittleEndian ? bytes : swapped(bytes)).toString('base64'),
  };
}

/** A saved background, checked against the model's input width: rows × features finite floats. */
export function backgroundFromJSON(value: unknown, features: number, where: string): Float32Array {
  const bad = (why: string) =>
    new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The explanation background (maas.explanationBackground) saved in ${where} is malformed: ${why}`,
    );
  if (!isPlainObject(value) || value.kind !== 'maas.background' || value.version !== 1)
    throw bad('expected kind maas.background, version 1');
  const { rows, float32Base64 } = value;
  if (value.features !== features) throw bad(`it has ${String(value.features)} features, the model takes ${features}`);
  if (!Number.isInteger(rows) || (rows as number) < 1 || (rows as number) > MAX_SAVED_BACKGROUND_ROWS)
    throw bad(`expected 1 to ${MAX_SAVED_BACKGROUND_ROWS} rows`);
  const count = (rows as number) * features;
  if (count > MAX_SAVED_BACKGROUND_VALUES) throw bad(`more than ${MAX_SAVED_BACKGROUND_VALUES} values`);
  // The length is checked before decoding: base64 of n bytes is 4·⌈n/3⌉ characters.
  if (typeof float32Base64 !== 'string' || float32Base64.length !== 4 * Math.ceil((count * 4) / 3))
    throw bad(`expected ${count} float32 values in base64`);
  const bytes = Buffer.from(float32Base64, 'base64');
  if (bytes.length !== count * 4) throw bad(`expected ${count} float32 values in base64`);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(isLittleEndian ? bytes : swapped(bytes));
  for (let i = 0; i < count; i++) if (!Number.isFinite(out[i]!)) throw bad(`value ${i} is not finite`);
  return out;
}

/**
 * At most `maxRows` of the rows (rows × features), chosen uniformly without replacement by `seed`
 * and kept in their order: a background a fixed size whatever the data given.
 */
export function sampleRows(rows: Float32Array, features: number, maxRows: number, seed: number): Float32Array {
  const count = rows.length / features;
  if (count <= maxRows) return rows.slice();
  // A partial Fisher–Yates shuffle picks maxRows distinct indices.
  const order = Array.from({ length: count }, (_, i) => i);
  const random = new Random(seed);
  for (let i = 0; i < maxRows; i++) {
    const j = i + Math.floor(random.next() * (count - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const chosen = order.slice(0, maxRows).sort((a, b) => a - b);
  const out = new Float32Array(maxRows * features);
  chosen.forEach((r, k) => out.set(rows.subarray(r * features, (r + 1) * features), k * features));
  return out;
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The bytes with each 4-byte word reversed (float32 between byte orders). */
function swapped(bytes: Buffer): Buffer {
  return Buffer.from(bytes).swap32();
}
