/**
 * `npm run bench:kernels`: kernels of the addon compared head to head on one workload, for tuning a
 * CPU class. Each kernel gets its own packed copy of the same seeded weights; the kernels run in
 * turn, round after round, in one process, so the machine's drift hits each alike; outputs are
 * checked against the first kernel's. Kernels tuned for no class (a tiling being tried) run here
 * by name, as `native.packStack` takes any kernel the CPU supports.
 *
 *   npm run bench:kernels -- --kernels f32_gemm_bias_act_6x64__avx512f_broadcast,f32_gemm_bias_act_14x32__avx512f
 *   npm run bench:kernels -- --workload L --batch 256 --threads 2 --seconds 30 --kernels ...
 *   npm run bench:kernels -- --dims 256,4096 --batch 1024 --kernels ...   (one K → N layer)
 *
 * int8 kernels (names starting `qu`) run the same layers with per-channel s8 weights and dynamic
 * activations. Prints best and median GFLOP/s (GOP/s) per kernel; writes nothing.
 */
import { setThreads, backendInfo } from '../src/index.js';
import { native, ACTIVATION_CODES, type NativeLayerSpec, type NativeQuantLayerSpec } from '../src/native/index.js';
import { gemm, inputRows, layerKxN, modelL, modelS, type Workload } from './workloads.js';
import type { DenseSpec } from './peers/onnx.js';

interface Args {
  kernels: string[];
  workload: Workload;
  batch: number;
  threads: number;
  seconds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { kernels: [], workload: gemm(), batch: 1024, threads: 1, seconds: 20 };
  let batch: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new Error(`${a} needs a value`);
    if (a === '--kernels') args.kernels = value.split(',');
    else if (a === '--workload') {
      const workloads: Record<string, () => Workload> = { gemm, L: modelL, S: modelS };
      const make = workloads[value];
      if (!make) throw new Error(`--workload: one of ${Object.keys(workloads).join(', ')}`);
      args.workload = make();
    } else if (a === '--dims') {
      const [k, n] = value.split(',').map(Number);
      if (!(k! > 0 && n! > 0)) throw new Error('--dims K,N: one linear layer K → N');
      args.workload = layerKxN(k!, n!);
    } else if (a === '--batch') batch = Number(value);
    else if (a === '--threads') args.threads = Number(value);
    else if (a === '--seconds') args.seconds = Number(value);
    else throw new Error(`unknown option ${a}`);
  }
  args.batch = batch ?? args.workload.batches[args.workload.batches.length - 1]!;
  if (args.kernels.length === 0) throw new Error('--kernels a,b,...: the kernels to compare (see backendInfo())');
  return args;
}

/** Per-output-channel symmetric s8 weights of one layer ([in, out], as the packers take them). */
function s8Weights(l: DenseSpec): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(l.out);
  for (let i = 0; i < l.in; i++)
    for (let j = 0; j < l.out; j++) scales[j] = Math.max(scales[j]!, Math.abs(l.weights[i * l.out + j]!) / 127);
  const q = new Int8Array(l.in * l.out);
  for (let i = 0; i < l.in; i++)
    for (let j = 0; j < l.out; j++) q[i * l.out + j] = Math.round(l.weights[i * l.out + j]! / (scales[j]! || 1));
  return { q, scales };
}

/** The workload's stack packed for one kernel, as a handle. */
function handleFor(
  kernel: string,
  layers: DenseSpec[],
): { predict(x: Float32Array, rows: number, y: Float32Array): void } {
  const specs: NativeLayerSpec[] = layers.map((l) => ({
    in: l.in,
    out: l.out,
    activation: ACTIVATION_CODES[l.activation],
    alpha: l.alpha,
    hasBias: l.bias !== null,
  }));
  const biases = layers.map((l) => l.bias);
  if (kernel.startsWith('qu')) {
    const qspecs: NativeQuantLayerSpec[] = specs.map((s) => ({ ...s, int8: true, inMin: 0, inMax: 0 }));
    const weights = layers.map(s8Weights);
    const bytes = new Uint8Array(native.packedQuantizedByteLength(qspecs, kernel));
    native.packQuantized(
      qspecs,
      true,
      weights.map((w) => w.q),
      weights.map((w) => w.scales),
      biases,
      bytes,
      kernel,
    );
    return new native.QuantizedStackHandle(bytes);
  }
  const bytes = new Uint8Array(native.packedStackByteLength(specs, kernel));
  native.packStack(
    specs,
    layers.map((l) => l.weights),
    biases,
    bytes,
    kernel,
  );
  return new native.DenseStackHandle(bytes);
}

function main(): void {
  const { kernels, workload, batch, threads, seconds } = parseArgs(process.argv.slice(2));
  setThreads(threads);
  const info = backendInfo();
  console.log(`${info.brand} (${info.vendor} family ${info.family} model ${info.model}), class ${info.cpuClass}`);
  const handles = kernels.map((k) => handleFor(k, workload.layers));
  const x = inputRows(batch, workload.layers[0]!.in);
  const width = workload.layers[workload.layers.length - 1]!.out;
  const first = new Float32Array(batch * width);
  const y = new Float32Array(batch * width);
  handles.forEach((h, i) => {
    h.predict(x, batch, i === 0 ? first : y);
    if (i === 0) return;
    let worst = 0;
    for (let j = 0; j < y.length; j++) worst = Math.max(worst, Math.abs(y[j]! - first[j]!) / (1 + Math.abs(first[j]!)));
    // bf16 and int8 differ from fp32 by their rounding; anything near 1 is a wrong result.
    if (worst > 0.1) throw new Error(`${kernels[i]} disagrees with ${kernels[0]}: relative error ${worst}`);
  });
  const times = kernels.map(() => [] as number[]);
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    handles.forEach((h, i) => {
      const t0 = process.hrtime.bigint();
      h.predict(x, batch, y);
      times[i]!.push(Number(process.hrtime.bigint() - t0) / 1e9);
    });
  }
  const ops = 2 * workload.macsPerRow * batch;
  console.log(`${workload.name} batch ${batch}, ${threads} thread(s), ${times[0]!.length} rounds; G(FL)OP/s`);
  kernels.forEach((k, i) => {
    const t = times[i]!.sort((a, b) => a - b);
    const rate = (s: number): string => (ops / s / 1e9).toFixed(1).padStart(7);
    console.log(`${k.padEnd(56)} best ${rate(t[0]!)}  median ${rate(t[t.length >> 1]!)}`);
  });
}

main();
