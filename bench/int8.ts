/**
 * The int8 suite: maas int8 vs maas fp32 vs onnxruntime int8 (dynamic quantization graph) vs
 * onnxruntime fp32, on the GEMM 1024×4096×4096 and model L at batch 1, 16 and 256, one thread
 * and two, plus the int8 peaks (AVX512-VNNI; AMX where present) measured in the same run.
 */
import { setThreads, quantize, type Sequential } from '../src/index.js';
import { native } from '../src/native/index.js';
import { bestPeak, timeInterleaved, formatSeconds, type Measurement } from './harness.js';
import { inputRows, type Workload } from './workloads.js';
import { buildDenseOnnx, createOrtSession } from './peers/onnx.js';
import { buildDynamicQuantOnnx } from './peers/onnx-int8.js';

/** One measured int8-suite case. */
export interface Int8Row {
  workload: string;
  impl: 'maas-int8' | 'maas-fp32' | 'ort-int8' | 'ort-fp32';
  threads: number;
  m: Measurement | null;
  ops: number;
  note: string;
}

/** int8 peaks in GOP/s (2 ops per multiply-add), best of three; 'n/a' lines for what is missing. */
export function measureInt8Peaks(): { lines: string[]; peaks: Map<string, number> } {
  const info = native.cpuInfo();
  const peaks = new Map<string, number>();
  const lines = ['| peak | threads | GOP/s |', '| --- | --- | --- |'];
  for (const isa of ['avx512vnni', 'amx'] as const) {
    const supported =
      isa === 'avx512vnni'
        ? info.features.avx512 && info.features.avx512Vnni
        : info.int8Kernels.some((k) => k.isa === 'amx' && k.supported);
    const label = isa === 'avx512vnni' ? 'int8 VNNI vpdpbusd (zmm)' : 'int8 AMX tdpbusd';
    if (!supported) {
      lines.push(
        `| ${label} | – | n/a: ${isa === 'amx' ? `no AMX${info.features.amxInt8 ? ' permission (arch_prctl refused XTILEDATA)' : ''}` : 'no AVX512-VNNI'} |`,
      );
      continue;
    }
    setThreads(2);
    for (const threads of [1, 2]) {
      const best = bestPeak((n) => {
        const r = native._peakInt8(isa, n, threads);
        return { work: r.ops, seconds: r.seconds };
      }, 1e5);
      peaks.set(`${isa}/${threads}`, best);
      lines.push(`| ${label} | ${threads} | ${best.toFixed(1)} |`);
    }
  }
  return { lines, peaks };
}

/** Runs one workload on the four implementations. `ours` is the fp32 model of the workload. */
export async function runInt8Workload(
  w: Workload,
  ours: Sequential,
  budget: number,
  rows: Int8Row[],
  print: (r: Int8Row) => void,
): Promise<void> {
  const calibration = inputRows(64, w.layers[0]!.in, 11);
  const int8 = quantize(ours, { calibrationData: calibration });
  const onnxInt8 = buildDynamicQuantOnnx(w.layers),
    onnxFp32 = buildDenseOnnx(w.layers);
  const ort = {
    int8: [await createOrtSession(onnxInt8, 1), await createOrtSession(onnxInt8, 2)],
    fp32: [await createOrtSession(onnxFp32, 1), await createOrtSession(onnxFp32, 2)],
  };
  for (const batch of w.batches) {
    const x = inputRows(batch, w.layers[0]!.in);
    const ops = 2 * w.macsPerRow * batch;
    const label = `${w.name}${w.name.startsWith('GEMM') ? '' : ` b${batch}`}`;
    for (const threads of [1, 2]) {
      setThreads(threads);
      const add = (impl: Int8Row['impl'], m: Measurement, weightBytes: number): void => {
        const note =
          batch === 1
            ? `weights ${(weightBytes / 1e6).toFixed(0)} MB → ${(weightBytes / m.median / 1e9).toFixed(1)} GB/s`
            : '';
        const row = { workload: label, impl, threads, m, ops, note };
        rows.push(row);
        print(row);
      };
      const [mi, mf, oi, of] = await timeInterleaved(
        [
          () => int8.predict(x).dispose(),
          () => ours.predict(x).dispose(),
          () => ort.int8[threads - 1]!.run(x, batch),
          () => ort.fp32[threads - 1]!.run(x, batch),
        ],
        { budget: 4 * budget },
      );
      add('maas-int8', mi!, w.macsPerRow);
      add('maas-fp32', mf!, w.weightBytes);
      add('ort-int8', oi!, w.macsPerRow);
      add('ort-fp32', of!, w.weightBytes);
    }
  }
  int8.dispose();
  for (const s of [...ort.int8, ...ort.fp32]) await s.release();
}

/**
 * The suite's table: GOP/s and ratios against ort-int8 and maas-fp32 at the same threads, % of the
 * VNNI peak, and % of the AMX peak where AMX was measured (both int8 paths there run on tiles).
 */
export function int8Table(rows: Int8Row[], peaks: Map<string, number>): string[] {
  const amx = [...peaks.keys()].some((k) => k.startsWith('amx/'));
  const lines = [
    `| workload | impl | threads | median latency | GOP/s | vs ort-int8 | vs maas-fp32 | % of VNNI peak |${amx ? ' % of AMX peak |' : ''} notes |`,
    `| --- | --- | --- | --- | --- | --- | --- | --- |${amx ? ' --- |' : ''} --- |`,
  ];
  for (const r of rows) {
    if (!r.m) continue;
    const find = (impl: Int8Row['impl']) =>
      rows.find((o) => o.workload === r.workload && o.impl === impl && o.threads === r.threads)?.m;
    const ratio = (m: Measurement | null | undefined) => (m ? `${(m.median / r.m!.median).toFixed(2)}×` : '–');
    const gops = r.ops / r.m.median / 1e9;
    const ofPeak = (isa: string): string => {
      const peak = peaks.get(`${isa}/${r.threads}`);
      return peak && r.impl.endsWith('int8') ? `${((100 * gops) / peak).toFixed(1)}%` : '–';
    };
    lines.push(
      `| ${r.workload} | ${r.impl} | ${r.threads} | ${formatSeconds(r.m.median)} | ${gops.toFixed(1)} | ${ratio(find('ort-int8'))} | ${ratio(find('maas-fp32'))} | ${ofPeak('avx512vnni')} |${amx ? ` ${ofPeak('amx')} |` : ''} ${[r.note, `runs ${formatSeconds(r.m.min)}..${formatSeconds(r.m.max)}`].filter(Boolean).join('; ')} |`,
    );
  }
  return lines;
}
