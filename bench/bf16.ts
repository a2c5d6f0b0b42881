/**
 * The bf16 suite: the same fp32 model served by maas in fp32 and in bf16 (setPrecision) and by
 * onnxruntime fp32, on the GEMM 1024×4096×4096, model L at batch 1, 16 and 256 and model S at
 * 1024, one thread and two, against the bf16 peak measured in the same run; and what bf16
 * costs in accuracy on the bundled classic model and on model L.
 */
import { join } from 'node:path';
import { classicData } from '../examples/classic.js';
import { loadModel, setThreads, tensor } from '../src/index.js';
import { packageRoot } from '../src/core/package-root.js';
import { native } from '../src/native/index.js';
import { bestPeak, timeInterleaved, formatSeconds, type Measurement } from './harness.js';
import { inputRows, workloadModel, type Workload } from './workloads.js';
import { buildDenseOnnx, createOrtSession } from './peers/onnx.js';

/** One measured bf16-suite case. */
export interface Bf16Row {
  workload: string;
  impl: 'maas-bf16' | 'maas-fp32' | 'ort-fp32';
  threads: number;
  m: Measurement;
  flops: number;
  note: string;
}

/** A bf16 peak probe's best of three runs, in GFLOP/s. */
function bestBf16Peak(isa: 'amx-bf16' | 'avx512bf16', threads: number): number {
  return bestPeak((n) => {
    const r = native._peakFma(isa, n, threads);
    return { work: r.flops, seconds: r.seconds };
  }, 1e4);
}

/**
 * The vdpbf16ps peak in GFLOP/s per thread count (4 flops per lane per instruction), best of three,
 * the AMX-BF16 tdpbf16ps peak where AMX is granted, and the peak a bf16-weight kernel can reach: the
 * highest of those and the fp32 FMA peak (`fmaPeaks`, keyed `avx512/<threads>`), since where
 * vdpbf16ps is the slower of the two (Intel without AMX) the kernel widens its products to fp32
 * FMAs. "% of bf16 peak" is against that.
 */
export function measureBf16Peaks(fmaPeaks: Map<string, number>): { lines: string[]; peaks: Map<string, number> } {
  const peaks = new Map<string, number>();
  const lines = ['| peak | threads | GFLOP/s |', '| --- | --- | --- |'];
  const info = native.cpuInfo();
  if (!info.features.avx512Bf16) {
    lines.push(`| bf16 vdpbf16ps (zmm) | – | n/a: no AVX512_BF16 (bf16 runs on ${info.bf16Kernel}) |`);
    return { lines, peaks };
  }
  const amx = info.features.amxInt8 && info.features.amxPermitted;
  setThreads(2);
  for (const threads of [1, 2]) {
    const dot = bestBf16Peak('avx512bf16', threads);
    const tiles = amx ? bestBf16Peak('amx-bf16', threads) : 0;
    const fma = fmaPeaks.get(`avx512/${threads}`) ?? 0;
    peaks.set(`bf16/${threads}`, Math.max(dot, tiles, fma));
    lines.push(`| bf16 vdpbf16ps (zmm) | ${threads} | ${dot.toFixed(1)} |`);
    if (amx) lines.push(`| bf16 AMX tdpbf16ps | ${threads} | ${tiles.toFixed(1)} |`);
    else if (fma > dot)
      lines.push(`| bf16 weights widened to fp32 FMAs (the fp32 peak) | ${threads} | ${fma.toFixed(1)} |`);
  }
  if (!amx && info.features.amxInt8) lines.push('| bf16 AMX tdpbf16ps | – | n/a: arch_prctl refused XTILEDATA |');
  return { lines, peaks };
}

/** Runs one workload in maas fp32, maas bf16 and ORT fp32, interleaved per thread count. */
export async function runBf16Workload(
  w: Workload,
  batches: number[],
  budget: number,
  rows: Bf16Row[],
  print: (r: Bf16Row) => void,
): Promise<void> {
  const fp32 = workloadModel(w.layers);
  const bf16 = workloadModel(w.layers);
  bf16.setPrecision('bf16');
  const onnx = buildDenseOnnx(w.layers);
  const ort = [await createOrtSession(onnx, 1), await createOrtSession(onnx, 2)];
  for (const batch of batches) {
    const x = inputRows(batch, w.layers[0]!.in);
    const flops = 2 * w.macsPerRow * batch;
    const label = `${w.name}${w.name.startsWith('GEMM') ? '' : ` b${batch}`}`;
    for (const threads of [1, 2]) {
      setThreads(threads);
      const add = (impl: Bf16Row['impl'], m: Measurement, weightBytes: number): void => {
        const note =
          batch === 1
            ? `weights ${(weightBytes / 1e6).toFixed(0)} MB → ${(weightBytes / m.median / 1e9).toFixed(1)} GB/s`
            : '';
        const row = { workload: label, impl, threads, m, flops, note };
        rows.push(row);
        print(row);
      };
      const [mb, mf, of] = await timeInterleaved(
        [() => bf16.predict(x).dispose(), () => fp32.predict(x).dispose(), () => ort[threads - 1]!.run(x, batch)],
        { budget: 3 * budget },
      );
      add('maas-bf16', mb!, w.weightBytes / 2);
      add('maas-fp32', mf!, w.weightBytes);
      add('ort-fp32', of!, w.weightBytes);
    }
  }
  fp32.dispose();
  bf16.dispose();
  for (const s of ort) await s.release();
}

/** The suite's table: GFLOP/s, bf16 against maas fp32 and ORT fp32 at the same threads, % of the bf16 peak. */
export function bf16Table(rows: Bf16Row[], peaks: Map<string, number>): string[] {
  const lines = [
    '| workload | impl | threads | median latency | GFLOP/s | vs maas-fp32 | vs ort-fp32 | % of bf16 peak | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const find = (impl: Bf16Row['impl']) =>
      rows.find((o) => o.workload === r.workload && o.impl === impl && o.threads === r.threads)?.m;
    const ratio = (m: Measurement | undefined) => (m ? `${(m.median / r.m.median).toFixed(2)}×` : '–');
    const gflops = r.flops / r.m.median / 1e9;
    const peak = peaks.get(`bf16/${r.threads}`);
    const ofPeak = peak && r.impl === 'maas-bf16' ? `${((100 * gflops) / peak).toFixed(1)}%` : '–';
    lines.push(
      `| ${r.workload} | ${r.impl} | ${r.threads} | ${formatSeconds(r.m.median)} | ${gflops.toFixed(1)} | ${ratio(find('maas-fp32'))} | ${ratio(find('ort-fp32'))} | ${ofPeak} | ${[r.note, `runs ${formatSeconds(r.m.min)}..${formatSeconds(r.m.max)}`].filter(Boolean).join('; ')} |`,
    );
  }
  return lines;
}

/** How far bf16 outputs are from fp32, each difference taken relative to its row's largest |fp32| output. */
function compare(fp32: Float32Array, bf16: Float32Array, width: number) {
  let max = 0,
    sum = 0,
    agree = 0;
  const rows = fp32.length / width;
  for (let r = 0; r < rows; r++) {
    let scale = 0,
      best = 0,
      bestB = 0;
    for (let j = 0; j < width; j++) {
      const i = r * width + j;
      scale = Math.max(scale, Math.abs(fp32[i]!));
      if (fp32[i]! > fp32[r * width + best]!) best = j;
      if (bf16[i]! > bf16[r * width + bestB]!) bestB = j;
    }
    for (let j = 0; j < width; j++) {
      const e = Math.abs(bf16[r * width + j]! - fp32[r * width + j]!) / (scale || 1);
      max = Math.max(max, e);
      sum += e;
    }
    // One output: the decision is p > 0.5; several: the argmax.
    if (width === 1 ? fp32[r]! > 0.5 === bf16[r]! > 0.5 : best === bestB) agree++;
  }
  return { max, mean: sum / fp32.length, agree: agree / rows, rows };
}

/** bf16 against fp32 on the bundled classic model (20,000 rows) and model L (1,024 rows). */
export async function bf16Accuracy(modelL: Workload): Promise<string[]> {
  setThreads(2);
  const lines = [
    '| model | rows | decisions identical to fp32 | max relative error | mean relative error |',
    '| --- | --- | --- | --- | --- |',
  ];
  const add = (name: string, c: ReturnType<typeof compare>, decision: string) =>
    lines.push(
      `| ${name} | ${c.rows} | ${(100 * c.agree).toFixed(2)}% (${decision}) | ${c.max.toExponential(2)} | ${c.mean.toExponential(2)} |`,
    );
  const path = join(packageRoot(), 'models', 'classic', '1');
  const fp32 = await loadModel(path);
  const bf16 = await loadModel(path, { precision: 'bf16' });
  const { x } = classicData(20_000, 7);
  const input = tensor(x, [20_000, 100]);
  add('classic (bundled)', compare(fp32.predict(input).values, bf16.predict(input).values, 1), 'p > 0.5');
  fp32.dispose();
  bf16.dispose();
  const l32 = workloadModel(modelL.layers);
  const l16 = workloadModel(modelL.layers);
  l16.setPrecision('bf16');
  const xl = inputRows(1024, modelL.layers[0]!.in, 13);
  const width = modelL.layers.at(-1)!.out;
  add('model L', compare(l32.predict(xl).values, l16.predict(xl).values, width), 'argmax');
  l32.dispose();
  l16.dispose();
  lines.push(
    '',
    "Relative error: |bf16 − fp32| over the largest |fp32| output of the same row (probabilities for classic, model L's linear outputs).",
  );
  return lines;
}
