/**
 * `npm run bench`: the FMA peak, then model S, model L and the GEMM 1024×4096×4096 on maas and
 * every peer (onnxruntime-node, tfjs wasm and cpu, a naive JS loop), one and two threads, in one
 * process run. Prints a table and writes bench/RESULTS.md with the date, CPU and command.
 *
 *   npm run bench                      # everything (about 5 minutes)
 *   npm run bench -- --suites S,gemm   # a subset of S, L, gemm, train, int8, bf16: peak is always measured
 *   npm run bench -- --budget 0.5      # seconds of timed calls per case
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setThreads, backendInfo } from '../src/index.js';
import { packageRoot } from '../src/core/package-root.js';
import { native } from '../src/native/index.js';
import { bestPeak, time, timeInterleaved, formatSeconds, type Measurement } from './harness.js';
import { modelS, modelL, gemm, inputRows, workloadModel, type Workload } from './workloads.js';
import { buildDenseOnnx, createOrtSession } from './peers/onnx.js';
import { createTfjsPeer } from './peers/tfjs.js';
import { createNaivePeer } from './peers/naive.js';
import { runTrainWorkload, type TrainRow } from './train.js';
import { int8Table, measureInt8Peaks, runInt8Workload, type Int8Row } from './int8.js';
import { bf16Accuracy, bf16Table, measureBf16Peaks, runBf16Workload, type Bf16Row } from './bf16.js';

interface Args {
  suites: Set<string>;
  budget: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    suites: new Set(['S', 'L', 'gemm', 'train', 'int8', 'bf16']),
    budget: 1.5,
    out: join(packageRoot(), 'bench', 'RESULTS.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--suites') args.suites = new Set(argv[++i]!.split(','));
    else if (a === '--budget') args.budget = Number(argv[++i]);
    else if (a === '--out') args.out = argv[++i]!;
    else
      throw new Error(
        `bench: unknown argument ${a} (use --suites S,L,gemm,train,int8,bf16 --budget SECONDS --out FILE)`,
      );
  }
  return args;
}

/** Peak GFLOP/s per ISA and thread count, best of three ~0.3 s runs. */
function measurePeaks(): Map<string, number> {
  const peaks = new Map<string, number>();
  const info = native.cpuInfo();
  setThreads(2);
  for (const isa of ['avx512', 'avx2'] as const) {
    if ((isa === 'avx512' && !info.features.avx512) || (isa === 'avx2' && !info.features.avx2Fma)) continue;
    for (const threads of [1, 2]) {
      const fma = (n: number) => {
        const r = native._peakFma(isa, n, threads);
        return { work: r.flops, seconds: r.seconds };
      };
      peaks.set(`${isa}/${threads}`, bestPeak(fma, 1e6));
    }
  }
  return peaks;
}

/** FMA pipes × lanes per cycle of each ISA on each CPU class (Zen 4 runs a zmm FMA as two halves). */
const FMA_LANES_PER_CYCLE: Record<string, { avx512?: number; avx2: number }> = {
  zen4: { avx512: 2 * 8, avx2: 2 * 8 },
  zen5: { avx512: 2 * 16, avx2: 2 * 8 },
  'intel-avx512': { avx512: 2 * 16, avx2: 2 * 8 },
  avx2: { avx2: 2 * 8 },
  generic: { avx2: 2 * 8 },
};

/**
 * The peaks estimated independently of the FMA probes: the running clock (dependent multiplies,
 * three cycles each) × FMA lanes per cycle × 2 flops. Lines for the results, with a warning where the
 * estimate and the measured peak disagree by more than 15%.
 */
function peakEstimates(peaks: Map<string, number>, cpuClass: string): string[] {
  setThreads(1);
  let ghz = 0;
  for (let r = 0; r < 3; r++) {
    const { cycles, seconds } = native._clockProbe(3e7, 1);
    ghz = Math.max(ghz, cycles / seconds / 1e9);
  }
  const lines = [`- clock ${ghz.toFixed(2)} GHz (dependent multiplies, 1 thread); CPU class ${cpuClass}`];
  for (const isa of ['avx512', 'avx2'] as const) {
    const lanes = FMA_LANES_PER_CYCLE[cpuClass]?.[isa];
    const measured = peaks.get(`${isa}/1`);
    if (lanes === undefined || measured === undefined) continue;
    const estimate = ghz * lanes * 2;
    const ratio = measured / estimate;
    const warn =
      Math.abs(ratio - 1) > 0.15
        ? ' **WARNING: more than 15% apart: the class or the probe is wrong for this CPU**'
        : '';
    lines.push(
      `- ${isa} 1-thread peak: measured ${measured.toFixed(1)} GFLOP/s, estimated ${estimate.toFixed(1)} (clock × ${lanes} FMA lanes/cycle × 2): ${ratio.toFixed(2)}×${warn}`,
    );
  }
  return lines;
}

interface Row {
  workload: string;
  impl: string;
  threads: number;
  m: Measurement | null;
  flops: number;
  note: string;
}

/** Estimated GFLOP/s of the slow peers, to skip calls that would take minutes. */
const SLOW_PEER_GFLOPS: Record<string, number> = { 'tfjs-cpu': 0.7, 'naive-js': 1.0, 'tfjs-wasm': 8 };
const MAX_CALL_SECONDS = 5;

async function runWorkload(w: Workload, budget: number, rows: Row[], print: (r: Row) => void): Promise<void> {
  const ours = workloadModel(w.layers);
  const ort = [
    await createOrtSession(buildDenseOnnx(w.layers), 1),
    await createOrtSession(buildDenseOnnx(w.layers), 2),
  ];
  const naive = createNaivePeer(w.layers);
  for (const batch of w.batches) {
    const x = inputRows(batch, w.layers[0]!.in);
    const flops = 2 * w.macsPerRow * batch;
    const label = `${w.name}${w.name.startsWith('GEMM') ? '' : ` b${batch}`}`;
    const add = (impl: string, threads: number, m: Measurement | null, note = ''): void => {
      const row = { workload: label, impl, threads, m, flops, note };
      rows.push(row);
      print(row);
    };
    const bw = (m: Measurement): string =>
      batch === 1
        ? `weights ${(w.weightBytes / 1e6).toFixed(0)} MB → ${(w.weightBytes / m.median / 1e9).toFixed(1)} GB/s`
        : '';
    for (const threads of [1, 2]) {
      setThreads(threads);
      // A caller done with an output disposes it, as with tfjs: its memory is the next call's.
      const [mine, theirs] = await timeInterleaved(
        [() => ours.predict(x).dispose(), () => ort[threads - 1]!.run(x, batch)],
        { budget: 2 * budget },
      );
      add('maas', threads, mine!, bw(mine!));
      add('ort-fp32', threads, theirs!, bw(theirs!));
    }
    for (const peer of ['tfjs-wasm', 'tfjs-cpu', 'naive-js'] as const) {
      const estimate = flops / 1e9 / SLOW_PEER_GFLOPS[peer]!;
      if (estimate > MAX_CALL_SECONDS) {
        add(peer, 1, null, `skipped: ≈ ${estimate.toFixed(0)} s per call at ≈ ${SLOW_PEER_GFLOPS[peer]} GFLOP/s`);
        continue;
      }
      const opts = {
        budget: estimate > 0.5 ? 0 : budget,
        warmup: estimate > 0.5 ? 1 : 3,
        minSamples: estimate > 0.5 ? 2 : 5,
      };
      if (peer === 'naive-js') {
        add(peer, 1, await time(() => naive.run(x, batch), opts));
      } else {
        const tf = await createTfjsPeer(peer === 'tfjs-wasm' ? 'wasm' : 'cpu', w.layers);
        add(peer, 1, await time(() => tf.run(x, batch), opts));
        tf.dispose();
      }
    }
  }
  ours.dispose();
  for (const s of ort) await s.release();
}

function table(rows: Row[], peaks: Map<string, number>, isa: string): string[] {
  const lines = [
    '| workload | impl | threads | median latency | GFLOP/s | vs ort-fp32 (same threads) | % of peak | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    if (!r.m) {
      lines.push(`| ${r.workload} | ${r.impl} | ${r.threads} | – | – | – | – | ${r.note} |`);
      continue;
    }
    const gflops = r.flops / r.m.median / 1e9;
    const ort = rows.find((o) => o.workload === r.workload && o.impl === 'ort-fp32' && o.threads === r.threads)?.m;
    const ratio = ort ? `${(ort.median / r.m.median).toFixed(2)}×` : '–';
    const peak = peaks.get(`${isa}/${r.threads}`);
    const ofPeak = peak ? `${((100 * gflops) / peak).toFixed(1)}%` : '–';
    const spread = `runs ${formatSeconds(r.m.min)}..${formatSeconds(r.m.max)}`;
    lines.push(
      `| ${r.workload} | ${r.impl} | ${r.threads} | ${formatSeconds(r.m.median)} | ${gflops.toFixed(1)} | ${ratio} | ${ofPeak} | ${[r.note, spread].filter(Boolean).join('; ')} |`,
    );
  }
  return lines;
}

function trainTable(rows: TrainRow[], peaks: Map<string, number>, isa: string): string[] {
  const lines = [
    '| workload | impl | threads | median step | samples/s | GFLOP/s (3× forward) | vs tfjs-wasm | % of peak | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    if (!r.m) {
      lines.push(`| ${r.workload} | ${r.impl} | ${r.threads} | – | – | – | – | – | ${r.note} |`);
      continue;
    }
    const wasm = rows.find((o) => o.workload === r.workload && o.impl === 'tfjs-wasm')?.m;
    const gflops = r.flops / r.m.median / 1e9;
    // Mixed precision runs its products on bf16 dots (or AMX): the fp32 peak is not its bound, so
    // its rows read against maas fp32 at the same threads instead.
    const mixed = r.impl === 'maas-bf16';
    const fp32 = rows.find((o) => o.workload === r.workload && o.impl === 'maas' && o.threads === r.threads)?.m;
    const peak = mixed ? undefined : peaks.get(`${isa}/${r.threads}`);
    const note = mixed && fp32 ? `${(fp32.median / r.m.median).toFixed(2)}× maas fp32` : r.note;
    lines.push(
      `| ${r.workload} | ${r.impl} | ${r.threads} | ${formatSeconds(r.m.median)} | ${(r.batch / r.m.median).toFixed(0)} | ${gflops.toFixed(1)} | ${wasm ? `${(wasm.median / r.m.median).toFixed(1)}×` : '–'} | ${peak ? `${((100 * gflops) / peak).toFixed(1)}%` : '–'} | ${[note, `runs ${formatSeconds(r.m.min)}..${formatSeconds(r.m.max)}`].filter(Boolean).join('; ')} |`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const info = backendInfo();
  const header = [
    `# maas benchmark results`,
    '',
    `- date: ${started.toISOString()}`,
    `- command: \`npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}\``,
    `- CPU: ${info.brand.trim() || cpus()[0]?.model} (${cpus().length} logical cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB), ${info.vendor} family ${info.family} model ${info.model}, class ${info.cpuClass}${info.cpuClass === info.detectedCpuClass ? '' : ` (forced; detected ${info.detectedCpuClass})`}; maas ISA ${info.isa}, kernel ${info.f32Kernel}`,
    `- node ${process.version}; onnxruntime-node, @tensorflow/tfjs and tfjs-backend-wasm as installed (see package-lock.json)`,
    `- latency: one call from a Float32Array to a JS-readable output, median of samples after warm-up`,
    '',
  ];
  console.log(header.join('\n'));
  const peaks = measurePeaks();
  const peakLines = ['| peak | threads | GFLOP/s |', '| --- | --- | --- |'];
  for (const [key, value] of peaks) {
    const [isa, threads] = key.split('/');
    peakLines.push(
      `| fp32 FMA ${isa === 'avx512' ? 'AVX-512 (zmm)' : 'AVX2 (ymm)'} | ${threads} | ${value.toFixed(1)} |`,
    );
  }
  peakLines.push('', ...peakEstimates(peaks, info.detectedCpuClass));
  console.log(peakLines.join('\n') + '\n');
  const rows: Row[] = [];
  const print = (r: Row): void =>
    console.log(
      `${r.workload.padEnd(22)} ${r.impl.padEnd(10)} t${r.threads}  ${r.m ? `${formatSeconds(r.m.median).padStart(10)}  ${(r.flops / r.m.median / 1e9).toFixed(1).padStart(7)} GFLOP/s` : ''}  ${r.note}`,
    );
  const suites: [string, () => Workload][] = [
    ['S', modelS],
    ['L', modelL],
    ['gemm', gemm],
  ];
  for (const [name, make] of suites) if (args.suites.has(name)) await runWorkload(make(), args.budget, rows, print);
  const trainRows: TrainRow[] = [];
  if (args.suites.has('train')) {
    const printTrain = (r: TrainRow): void =>
      console.log(
        `${r.workload.padEnd(22)} ${r.impl.padEnd(10)} t${r.threads}  ${r.m ? `${formatSeconds(r.m.median).padStart(10)}  ${(r.batch / r.m.median).toFixed(0).padStart(9)} samples/s` : ''}  ${r.note}`,
      );
    await runTrainWorkload(modelS(), [32, 1024], args.budget, trainRows, printTrain);
    await runTrainWorkload(modelL(), [16, 256], args.budget, trainRows, printTrain);
  }
  const int8Rows: Int8Row[] = [];
  let int8Peaks: string[] = [];
  let int8PeakMap = new Map<string, number>();
  if (args.suites.has('int8')) {
    const measured = measureInt8Peaks();
    int8Peaks = measured.lines;
    int8PeakMap = measured.peaks;
    console.log(int8Peaks.join('\n') + '\n');
    const printInt8 = (r: Int8Row): void =>
      console.log(
        `${r.workload.padEnd(22)} ${r.impl.padEnd(10)} t${r.threads}  ${r.m ? `${formatSeconds(r.m.median).padStart(10)}  ${(r.ops / r.m.median / 1e9).toFixed(1).padStart(7)} GOP/s` : ''}  ${r.note}`,
      );
    for (const make of [gemm, modelL]) {
      const w = make();
      const ours = workloadModel(w.layers);
      await runInt8Workload(w, ours, args.budget, int8Rows, printInt8);
      ours.dispose();
    }
  }
  const bf16Rows: Bf16Row[] = [];
  let bf16Peaks: string[] = [];
  let bf16PeakMap = new Map<string, number>();
  let bf16Errors: string[] = [];
  if (args.suites.has('bf16')) {
    const measured = measureBf16Peaks(peaks);
    bf16Peaks = measured.lines;
    bf16PeakMap = measured.peaks;
    console.log(bf16Peaks.join('\n') + '\n');
    const printBf16 = (r: Bf16Row): void =>
      console.log(
        `${r.workload.padEnd(22)} ${r.impl.padEnd(10)} t${r.threads}  ${formatSeconds(r.m.median).padStart(10)}  ${(r.flops / r.m.median / 1e9).toFixed(1).padStart(7)} GFLOP/s  ${r.note}`,
      );
    await runBf16Workload(gemm(), [1024], args.budget, bf16Rows, printBf16);
    await runBf16Workload(modelL(), [1, 16, 256], args.budget, bf16Rows, printBf16);
    await runBf16Workload(modelS(), [1024], args.budget, bf16Rows, printBf16);
    bf16Errors = await bf16Accuracy(modelL());
    console.log(bf16Errors.join('\n') + '\n');
  }
  const minutes = ((Date.now() - started.getTime()) / 60000).toFixed(1);
  const doc = [
    ...header.slice(0, -1),
    `- run took ${minutes} min`,
    '',
    '## Peak (measured in this run)',
    '',
    ...peakLines,
    '',
    '## Workloads',
    '',
    ...table(rows, peaks, info.isa),
    '',
  ];
  if (trainRows.length)
    doc.push('## Training (adam, one step per call)', '', ...trainTable(trainRows, peaks, info.isa), '');
  if (int8Rows.length) {
    doc.push(
      `## int8 (maas kernel ${info.int8Kernel}; ort-int8 is DynamicQuantizeLinear + MatMulInteger with the same s8 weights)`,
      '',
      ...int8Peaks,
      '',
      ...int8Table(int8Rows, int8PeakMap),
      '',
    );
  }
  if (bf16Rows.length) {
    doc.push(
      `## bf16 (maas kernel ${info.bf16Kernel}: the fp32 model with setPrecision('bf16'); ort-fp32 runs the fp32 model)`,
      '',
      ...bf16Peaks,
      '',
      ...bf16Table(bf16Rows, bf16PeakMap),
      '',
      '### bf16 accuracy against fp32',
      '',
      ...bf16Errors,
      '',
    );
  }
  writeFileSync(args.out, doc.join('\n'));
  console.log(`\nwrote ${args.out}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
