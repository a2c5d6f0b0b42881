/**
 * The file phase: mutant i of seed s changes one file of one seed model (bytes, or the JSON
 * structure of a model.json, or the protobuf fields of an .onnx), is written beside copies of the
 * model's other files, and is loaded by a child the way the repository loads it. Its outputs on
 * a fixed input are compared with the original model's: a mutant must be refused with a coded
 * error or load to the very same outputs; one that loads to other outputs under a digest is a
 * failure, and without a digest is reported per format.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Random } from '../../src/core/random.js';
import { mutateJson, type Json } from '../json.js';
import { mutateMessage } from '../protobuf.js';
import { Rng, mutateBytes } from '../random.js';
import {
  FAILING,
  FILE_CLASSES,
  Tally,
  printable,
  type FileClass,
  type FindingsWriter,
  type Verdict,
} from '../report.js';
import { LoaderPool } from './children.js';
import type { JobOutcome, LoadJob } from './messages.js';
import { writeSeedModels, type SeedModel } from './seeds.js';

/** Rows of the fixed input each model runs. */
const ROWS = 3;

/** One mutant: which model and file, the new bytes, and how they were made. */
export interface Mutant {
  seed: SeedModel;
  file: string;
  data: Buffer;
  description: string;
}

/** Mutant `index` of the run seeded `seed`, from the original files' bytes. */
export function fileMutant(
  seed: number,
  index: number,
  seeds: readonly SeedModel[],
  originals: Map<string, Buffer>,
): Mutant {
  const rng = Rng.forCase(seed, 'files', index);
  const model = rng.pick(seeds);
  const file = rng.pick(model.files);
  const original = originals.get(join(model.dir, file))!;
  let mutated: { data: Buffer; what: string };
  if (file.endsWith('.json') && rng.chance(0.6)) {
    const { text, what } = mutateJson(rng, JSON.parse(original.toString('utf8')) as Json);
    mutated = { data: Buffer.from(text), what };
  } else if (file.endsWith('.onnx') && rng.chance(0.5)) mutated = mutateMessage(rng, original);
  else mutated = mutateBytes(rng, original);
  return { seed: model, file, data: mutated.data, description: `${model.name}/${file}: ${mutated.what}` };
}

/** The original model's answer, which every mutant of it is compared with. */
interface Baseline {
  inputSize: number;
  outputSize: number;
  input: Float32Array;
  output: Float32Array;
}

function sameOutputs(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/** A mutant's class from its outcome. */
export function judgeMutant(mutant: Mutant, outcome: JobOutcome, baseline: Baseline): Verdict<FileClass> {
  switch (outcome.kind) {
    case 'crash':
      return { class: 'crash', detail: outcome.detail };
    case 'hang':
      return { class: 'hang', detail: 'the load outlived its timeout' };
    case 'refused-at-warmup':
      return { class: 'refused' };
    case 'refused':
      if (outcome.coded && outcome.unforeseen) return { class: 'caught', detail: outcome.unforeseen };
      return outcome.coded
        ? { class: 'refused' }
        : {
            class: 'uncoded',
            detail: `${outcome.name}${outcome.code ? ` (${outcome.code})` : ''}: ${outcome.message}`,
          };
    case 'loaded': {
      if (
        outcome.inputSize === baseline.inputSize &&
        outcome.outputSize === baseline.outputSize &&
        sameOutputs(outcome.output, baseline.output)
      )
        return { class: 'identical' };
      const detail =
        outcome.inputSize !== baseline.inputSize || outcome.outputSize !== baseline.outputSize
          ? `loads as ${outcome.inputSize}→${outcome.outputSize} instead of ${baseline.inputSize}→${baseline.outputSize}`
          : 'loads with other outputs on the same input';
      return { class: mutant.seed.digestCovers.has(mutant.file) ? 'wrong-digest' : 'wrong-no-digest', detail };
    }
  }
}

/** The file phase's settings. */
export interface FileOptions {
  seed: number;
  /** Mutants to load (indices 0 … cases−1), unless `indices` names them. */
  cases: number;
  indices?: number[];
  timeLimitMs: number;
  /** Loader children. */
  children: number;
  /** A load that takes longer hangs. */
  loadTimeoutMs: number;
  /** Each child's JavaScript heap cap. */
  heapMb: number;
  findings?: FindingsWriter;
  log?: (line: string) => void;
}

/** What the file phase measured. */
export interface FileResult {
  tally: Tally<FileClass>;
  cases: number;
  stoppedByTime: boolean;
  childrenStarted: number;
  wallMs: number;
}

/** Runs the file phase: seeds written, baselines taken, mutants loaded by the children. */
export async function runFileFuzz(options: FileOptions): Promise<FileResult> {
  const started = Date.now();
  const root = await mkdtemp(join(tmpdir(), 'maas-fuzz-files-'));
  const tally = new Tally<FileClass>(FILE_CLASSES);
  const pool = await LoaderPool.start(options.children, options.loadTimeoutMs, options.heapMb);
  let ran = 0;
  let stoppedByTime = false;
  try {
    const seeds = await writeSeedModels(join(root, 'seeds'));
    const originals = new Map<string, Buffer>();
    for (const s of seeds) for (const f of s.files) originals.set(join(s.dir, f), await readFile(join(s.dir, f)));
    const baselines = new Map<SeedModel, Baseline>();
    for (const s of seeds) baselines.set(s, await baseline(pool, s));

    const indices = options.indices ?? Array.from({ length: options.cases }, (_, i) => i);
    let next = 0;
    const worker = async () => {
      while (next < indices.length) {
        if (Date.now() - started > options.timeLimitMs) {
          stoppedByTime = true;
          return;
        }
        const index = indices[next++]!;
        const mutant = fileMutant(options.seed, index, seeds, originals);
        const dir = await writeMutant(root, index, mutant);
        const b = baselines.get(mutant.seed)!;
        const outcome = await pool.run({ ...jobFor(b), path: join(dir, mutant.seed.entry) });
        const verdict = judgeMutant(mutant, outcome, b);
        tally.add(mutant.seed.name, verdict.class);
        ran++;
        // Caught cases are not failures, but each is a reader's oversight worth mending: listed too.
        if (FAILING.has(verdict.class) || verdict.class === 'caught') {
          options.log?.(printable(`files #${index} ${verdict.class}: ${mutant.description} → ${verdict.detail ?? ''}`));
          await options.findings?.add(
            {
              phase: 'files',
              index,
              target: mutant.seed.name,
              class: verdict.class,
              description: mutant.description,
              detail: verdict.detail ?? '',
            },
            new Map([[mutant.file, mutant.data]]),
          );
        }
        await rm(dir, { recursive: true, force: true });
        if (ran % 500 === 0) options.log?.(`files: ${ran} mutants, ${tally.failures} failing`);
      }
    };
    await Promise.all(Array.from({ length: options.children }, worker));
  } finally {
    await pool.close();
    await rm(root, { recursive: true, force: true });
  }
  return { tally, cases: ran, stoppedByTime, childrenStarted: pool.started, wallMs: Date.now() - started };
}

function jobFor(b: Baseline): Omit<LoadJob, 'path'> {
  return { input: b.input, rows: ROWS, inputSize: b.inputSize, outputSize: b.outputSize };
}

/** Loads the unmutated model: its widths and outputs on a seeded input. */
async function baseline(pool: LoaderPool, seed: SeedModel): Promise<Baseline> {
  const path = join(seed.dir, seed.entry);
  const probe = await pool.run({ path, input: new Float32Array(0), rows: 0, inputSize: -1, outputSize: -1 });
  if (probe.kind !== 'loaded') throw new Error(`The seed model ${seed.name} does not load: ${JSON.stringify(probe)}`);
  const random = new Random(99);
  const input = Float32Array.from({ length: ROWS * probe.inputSize }, () => random.uniform(-1, 1));
  const b = { inputSize: probe.inputSize, outputSize: probe.outputSize, input, output: new Float32Array(0) };
  const answer = await pool.run({ ...jobFor(b), path });
  if (answer.kind !== 'loaded') throw new Error(`The seed model ${seed.name} does not load: ${JSON.stringify(answer)}`);
  return { ...b, output: answer.output };
}

/** The mutant's directory: the seed model's files, one of them replaced. */
async function writeMutant(root: string, index: number, mutant: Mutant): Promise<string> {
  const dir = join(root, 'mutants', String(index));
  await mkdir(dir, { recursive: true });
  for (const f of mutant.seed.files) {
    if (f === mutant.file) await writeFile(join(dir, f), mutant.data);
    else await copyFile(join(mutant.seed.dir, f), join(dir, f));
  }
  return dir;
}
