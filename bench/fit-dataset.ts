/**
 * `npm run bench:data`: training from a CSV larger than memory (csvDataset + fitDataset) against
 * fit on the same kind of rows held in memory, on a generated table (make-table-csv.ts: 10
 * numbers, two categories, a date, a 3-class label; 44 features once prepared). Each measurement
 * runs in a child process of its own, so one's memory never counts in another's:
 *
 * - the fitting pass over the whole file (seconds, MB/s, peak RSS);
 * - per model width, fit on the file's first rows in memory, then fitDataset over the whole file,
 *   then fit again (samples/s; the ratio takes the mean of the two fits around the stream run);
 * - the peak RSS of a fitDataset run on a tenth of the file and on all of it (memory stays flat).
 *
 * Writes bench/RESULTS-data.md.
 *
 *   npm run bench:data -- [--mb 2048] [--widths 64,256,512] [--memory-rows 2000000] [--csv PATH]
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { backendInfo, csvDataset, dense, Pipeline, sequential } from '../src/index.js';
import { packageRoot } from '../src/core/package-root.js';
import { writeTableCsv } from './make-table-csv.js';

const BATCH = 256;

interface Args {
  mb: number;
  widths: number[];
  memoryRows: number;
  csv: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { mb: 2048, widths: [64, 256, 512], memoryRows: 2_000_000, csv: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--mb') args.mb = Number(argv[++i]);
    else if (a === '--widths') args.widths = argv[++i]!.split(',').map(Number);
    else if (a === '--memory-rows') args.memoryRows = Number(argv[++i]);
    else if (a === '--csv') args.csv = argv[++i]!;
    else throw new Error(`bench:data: unknown argument ${a}`);
  }
  args.csv ||= join(tmpdir(), `maas-bench-table-${args.mb}mb.csv`);
  return args;
}

/** Peak resident set of this process so far (VmHWM: every thread, the addon's memory included), in MB. */
function peakRssMb(): number {
  const line = readFileSync('/proc/self/status', 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
  return line ? Number(line[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
}

function model(width: number, inputs: number) {
  const m = sequential({
    layers: [
      dense({ units: width, activation: 'relu', inputShape: [inputs] }),
      dense({ units: width, activation: 'relu' }),
      dense({ units: 3, activation: 'softmax' }),
    ],
  });
  m.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  return m;
}

/** A child's part of the bench; prints one JSON line. */
async function child(part: string, argv: string[]): Promise<void> {
  const [csv, a, b] = argv;
  if (part === 'prepare') {
    const started = performance.now();
    const ds = await csvDataset(csv!, { label: 'label', onWarning: 'ignore' });
    const seconds = (performance.now() - started) / 1000;
    writeFileSync(a!, JSON.stringify(ds.pipeline.toJSON()));
    console.log(JSON.stringify({ seconds, rows: ds.rows, width: ds.width, peakRssMb: peakRssMb() }));
    return;
  }
  const pipeline = Pipeline.fromJSON(JSON.parse(readFileSync(a!, 'utf8')));
  const width = Number(b);
  if (part === 'stream') {
    const before = peakRssMb();
    const ds = await csvDataset(csv!, { pipeline, batchSize: BATCH, seed: 1 });
    const m = model(width, ds.width);
    let rows = 0;
    const started = performance.now();
    const history = await m.fitDataset(ds, {
      verbose: 0,
      callbacks: { onBatchEnd: (_batch, logs) => void (rows += logs?.size ?? 0) },
    });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      JSON.stringify({ rows, seconds, peakRssMb: peakRssMb(), baseRssMb: before, accuracy: history.history.acc![0] }),
    );
    return;
  }
  // memory: the file's first rows, prepared and held, then one epoch of fit.
  const ds = await csvDataset(csv!, { pipeline, batchSize: 65_536, shuffle: false });
  const xs: Float32Array[] = [];
  const ys: Float32Array[] = [];
  let rows = 0;
  for await (const batch of ds) {
    xs.push(batch.xs.dataSync());
    ys.push(batch.ys.dataSync());
    rows += batch.xs.shape[0]!;
  }
  const x = new Float32Array(rows * ds.width);
  const y = new Float32Array(rows);
  xs.reduce((at, part) => (x.set(part, at), at + part.length), 0);
  ys.reduce((at, part) => (y.set(part, at), at + part.length), 0);
  const m = model(width, ds.width);
  const started = performance.now();
  const history = await m.fit(x, y, { batchSize: BATCH, epochs: 1, verbose: 0, seed: 1 });
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ rows, seconds, accuracy: history.history.acc![0] }));
}

/** Runs a part in a fresh process; returns its JSON line. */
function runChild(part: string, ...params: string[]): Record<string, number> {
  const self = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, [...process.execArgv, self, '--child', part, ...params], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

/** The first `rows` data rows of a CSV, with its header, as a new file. */
async function head(from: string, to: string, rows: number): Promise<void> {
  const out = createWriteStream(to);
  let n = -1;
  for await (const line of createInterface({ input: createReadStream(from), crlfDelay: Infinity })) {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
    if (++n >= rows) break;
  }
  out.end();
  await once(out, 'finish');
}

async function main(args: Args): Promise<void> {
  const info = backendInfo();
  const cpu = `${info.brand.trim() || cpus()[0]?.model} (${cpus().length} logical cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB), class ${info.cpuClass}`;
  console.log(cpu);
  if (!existsSync(args.csv) || statSync(args.csv).size < args.mb * 2 ** 20 * 0.99) {
    console.log(`writing ${args.csv} (${args.mb} MB)…`);
    await writeTableCsv(args.csv, args.mb * 2 ** 20, 7);
  }
  const bytes = statSync(args.csv).size;
  const pipelineFile = join(tmpdir(), `maas-bench-pipeline-${process.pid}.json`);
  const memoryCsv = join(tmpdir(), `maas-bench-head-${process.pid}.csv`);
  const tenthCsv = join(tmpdir(), `maas-bench-tenth-${process.pid}.csv`);

  const prep = runChild('prepare', args.csv, pipelineFile);
  const fileRows = prep.rows!;
  console.log(
    `fitting pass: ${prep.seconds!.toFixed(1)} s, ${fileRows} rows, peak RSS ${prep.peakRssMb!.toFixed(0)} MB`,
  );
  await head(args.csv, memoryCsv, args.memoryRows);
  await head(args.csv, tenthCsv, Math.floor(fileRows / 10));

  const rows: string[] = [];
  for (const width of args.widths) {
    const before = runChild('memory', memoryCsv, pipelineFile, String(width));
    const stream = runChild('stream', args.csv, pipelineFile, String(width));
    const after = runChild('memory', memoryCsv, pipelineFile, String(width));
    const fitRate = (before.rows! / before.seconds! + after.rows! / after.seconds!) / 2;
    const streamRate = stream.rows! / stream.seconds!;
    const line = `| 44→${width}→${width}→3 | ${(fitRate / 1000).toFixed(0)}k | ${(streamRate / 1000).toFixed(0)}k | **${(streamRate / fitRate).toFixed(2)}** | ${stream.peakRssMb!.toFixed(0)} MB | ${(stream.seconds! / 60).toFixed(1)} min | ${stream.accuracy!.toFixed(3)} |`;
    console.log(line);
    rows.push(line);
  }
  const width = args.widths.includes(256) ? 256 : args.widths[0]!;
  const tenth = runChild('stream', tenthCsv, pipelineFile, String(width));
  const whole = runChild('stream', args.csv, pipelineFile, String(width));
  const flat = `| ${(bytes / 10 / 2 ** 20).toFixed(0)} MB | ${tenth.peakRssMb!.toFixed(0)} MB |\n| ${(bytes / 2 ** 20).toFixed(0)} MB | ${whole.peakRssMb!.toFixed(0)} MB |`;
  console.log(flat);

  const report = [
    '# Training from a CSV larger than memory',
    '',
    `- Date: ${new Date().toISOString()}`,
    `- CPU: ${cpu}; maas ISA ${info.isa}, ${info.threads} native threads`,
    `- Command: \`npm run bench:data -- --mb ${args.mb} --widths ${args.widths.join(',')} --memory-rows ${args.memoryRows}\``,
    `- File: ${(bytes / 2 ** 20).toFixed(0)} MB, ${fileRows} rows (bench/make-table-csv.ts, seed 7), 44 features once prepared, batch ${BATCH}`,
    '',
    `Fitting pass (kinds, means, variances, categories in one pass, in a thread): ${prep.seconds!.toFixed(1)} s, ${(bytes / 2 ** 20 / prep.seconds!).toFixed(0)} MB/s, peak RSS ${prep.peakRssMb!.toFixed(0)} MB.`,
    '',
    `fit: one epoch on the file's first ${args.memoryRows} rows, prepared and held in memory (mean of a run before and after the stream run). fitDataset: one epoch over the whole file, read in a thread. Peak RSS is the fitDataset process's VmHWM.`,
    '',
    '| model | fit samples/s | fitDataset samples/s | ratio | peak RSS | epoch | accuracy |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Peak RSS of fitDataset (model 44→${width}→${width}→3) as the file grows:`,
    '',
    '| file | peak RSS |',
    '| --- | --- |',
    flat,
    '',
  ].join('\n');
  writeFileSync(join(packageRoot(), 'bench', 'RESULTS-data.md'), report);
  console.log('wrote bench/RESULTS-data.md');
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(argv[1]!, argv.slice(2));
else await main(parseArgs(argv));
