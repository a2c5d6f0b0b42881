/**
 * The thread that parses one Keras HDF5 file with h5wasm (HDF5 compiled to WebAssembly), from the
 * bytes the opener read once: they go into h5wasm's in-memory file system under a private name,
 * so HDF5 never opens a path (the file checked is the file parsed, and an external link or
 * virtual dataset cannot reach the real file system). The thread ends with the file: a trap
 * cannot leave a broken HDF5 instance to the next file, and a parse that does not end is stopped
 * by the opener's timeout. Sizes are checked before anything is read: a dataset's or attribute's
 * declared bytes must fit in the file.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type h5wasm from 'h5wasm';
import type { Attribute, Dataset, Group } from 'h5wasm';

/** What the opener sends: the file's bytes (transferred) and the limits to read them under. */
export interface H5Job {
  bytes: Uint8Array;
  /** The most elements one dataset may hold. */
  maxElements: number;
}

/** One weight dataset, as float32. */
export interface H5Weight {
  name: string;
  dims: number[];
  values: Float32Array;
}

/** What a Keras file holds, as strings and float32 arrays; the opener parses the JSON. */
export interface H5Contents {
  /** The root's model_config attribute (null for a weights-only file). */
  modelConfig: string | null;
  trainingConfig: string | null;
  kerasVersion: string | null;
  /** The root's maas_sha256 attribute, when the file records one. */
  digest: string | null;
  /** Every layer group with weights, in the file's order, each weight in weight_names order. */
  layers: { name: string; weights: H5Weight[] }[];
}

/** The thread's one message: the contents, or why the file cannot be read (HDF5's own reason, if any). */
export type H5Reply = { ok: true; contents: H5Contents } | { ok: false; message: string; hdf5: string };

/** HDF5 prints its error stack through the console; the thread keeps it for the reply instead. */
const diagnostics: string[] = [];
const collect = (...args: unknown[]): void => {
  diagnostics.push(args.map(String).join(' '));
};
console.error = collect;
console.warn = collect;
console.log = collect;

/** H5T_FLOAT, the class of floating-point datatypes. */
const H5T_FLOAT = 1;
/** The most a deflate-filtered dataset expands (zlib's limit is about 1032:1). */
const MAX_FILTER_RATIO = 1032;

/** A refusal with its own message (the opener codes it MAAS_ERR_MODEL_FORMAT). */
class Refusal extends Error {}

/**
 * Bytes the datasets and attributes read may declare, in total: the file's size. Uncompressed
 * data must lie in the file; filtered data counts at its largest expansion. A dataset linked
 * under many names counts each time, so it cannot be read over and over.
 */
class ReadBudget {
  private left: number;
  constructor(readonly fileBytes: number) {
    this.left = fileBytes;
  }
  spend(what: string, dims: readonly number[], elementBytes: number, filtered: boolean): void {
    const declared = dims.reduce((a, b) => a * b, 1) * elementBytes;
    const cost = filtered ? declared / MAX_FILTER_RATIO : declared;
    if (!(cost <= this.left))
      throw new Refusal(
        `${what} declares ${declared} bytes ([${dims.join(', ')}] × ${elementBytes}${filtered ? ', compressed' : ''}) but the ${this.fileBytes}-byte file cannot hold them beside what was read before it`,
      );
    this.left -= cost;
  }
}

function asString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return String(v);
}

/** An attribute's string list: h5wasm gives an array (empty layers give an empty numeric array). */
function asStrings(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(asString);
  return typeof v === 'string' ? [v] : [];
}

/** An attribute's value, after its declared size is checked against the budget. */
function attributeValue(attr: Attribute | undefined, what: string, budget: ReadBudget): unknown {
  if (!attr) return undefined;
  budget.spend(what, attr.shape ?? [], attr.metadata.size, false);
  return attr.value;
}

function readWeight(ds: Dataset, layer: string, name: string, budget: ReadBudget, maxElements: number): H5Weight {
  const what = `${layer}/${name}`;
  const meta = ds.metadata;
  if (meta.type !== H5T_FLOAT || (meta.size !== 4 && meta.size !== 8))
    throw new Refusal(`its weight ${what} is not a float32 or float64 dataset`);
  const dims = meta.shape;
  if (!Array.isArray(dims)) throw new Refusal(`its weight ${what} has no shape`);
  const elements = dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(elements) || elements > maxElements)
    throw new Refusal(`its weight ${what} declares ${elements} elements; the limit is ${maxElements}`);
  budget.spend(`its weight ${what}`, dims, meta.size, ds.filters.length > 0);
  const v = ds.value;
  if (!(v instanceof Float32Array || v instanceof Float64Array) || v.length !== elements)
    throw new Refusal(`its weight ${what} did not read as the ${elements} floats its shape declares`);
  return { name, dims, values: v instanceof Float32Array ? v : Float32Array.from(v) };
}

/** The model_config, weights, training_config and digest of an open file. */
function readContents(h5: typeof h5wasm, file: Group, job: H5Job): H5Contents {
  const budget = new ReadBudget(job.bytes.byteLength);
  const attrs = file.attrs;
  const text = (name: string): string | null => {
    const v = attributeValue(attrs[name], `its root attribute ${name}`, budget);
    return v === undefined || v === null ? null : asString(v);
  };
  const group = (file.keys().includes('model_weights') ? file.get('model_weights') : file) as Group | null;
  if (!(group instanceof h5.Group)) throw new Refusal('its model_weights is not a group');
  const layers: H5Contents['layers'] = [];
  for (const layer of group.keys()) {
    const lg = group.get(layer);
    if (!(lg instanceof h5.Group)) continue;
    const names = asStrings(attributeValue(lg.attrs.weight_names, `the weight_names of its layer ${layer}`, budget));
    if (names.length === 0) continue;
    const weights = names.map((n) => {
      const ds = lg.get(n);
      if (!(ds instanceof h5.Dataset)) throw new Refusal(`its weight ${layer}/${n} is not a numeric dataset`);
      return readWeight(ds, layer, n, budget, job.maxElements);
    });
    layers.push({ name: layer, weights });
  }
  return {
    modelConfig: text('model_config'),
    trainingConfig: text('training_config'),
    kerasVersion: text('keras_version'),
    digest: text('maas_sha256'),
    layers,
  };
}

/** The HDF5 library's own reason (the innermost frame of its error stack), for a message. */
function hdf5Reason(): string {
  const frames = diagnostics
    .join('\n')
    .split('\n')
    .map((l) => /#\d+: .* in [\w]+\(\): (.*)$/.exec(l)?.[1]?.trim())
    .filter((m): m is string => !!m);
  return frames.length ? frames[frames.length - 1]! : '';
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 300);
}

async function parse(job: H5Job): Promise<H5Reply> {
  const library = await import('h5wasm');
  const h5 = library.default;
  await h5.ready;
  const FS = library.FS!; // set once the module is ready
  const name = '/model.h5';
  const stream = FS.open(name, 'w');
  FS.write(stream, job.bytes, 0, job.bytes.byteLength, 0, true); // MEMFS takes the bytes, no copy
  FS.close(stream);
  let file: InstanceType<typeof h5.File>;
  try {
    file = new h5.File(name, 'r');
  } catch (e) {
    return { ok: false, message: `HDF5 cannot open it: ${errorText(e)}`, hdf5: hdf5Reason() };
  }
  // h5wasm returns a File even when HDF5 failed to open it; the error stack tells.
  if (diagnostics.length > 0) return { ok: false, message: 'HDF5 cannot open it', hdf5: hdf5Reason() };
  try {
    return { ok: true, contents: readContents(h5, file, job) };
  } catch (e) {
    return {
      ok: false,
      message: e instanceof Refusal ? e.message : `it is not a readable Keras model: ${errorText(e)}`,
      hdf5: e instanceof Refusal ? '' : hdf5Reason(),
    };
  }
}

/** Parses the job and answers; no top-level await, so the source also runs under a CommonJS hook. */
async function main(job: H5Job): Promise<void> {
  const reply = await parse(job).catch((e: unknown): H5Reply => ({
    ok: false,
    message: `HDF5 failed: ${errorText(e)}`,
    hdf5: hdf5Reason(),
  }));
  // Each weight's buffer moves to the opener rather than being copied (a set: a buffer listed twice cannot move).
  const buffers = new Set(reply.ok ? reply.contents.layers.flatMap((l) => l.weights.map((w) => w.values.buffer)) : []);
  parentPort!.postMessage(reply, [...buffers] as ArrayBuffer[]);
}

void main(workerData as H5Job);
