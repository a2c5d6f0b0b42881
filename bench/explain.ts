/**
 * `npm run bench:explain`: explanations per second, maas against the same estimators run over
 * TensorFlow.js's wasm backend (the path a Node user has today: tfjs predictions, and tf.grad for
 * the gradients), on model S (100 → 64 → 32 → 1) and a 784 → 256 → 128 → 10 classifier:
 * integrated gradients (50 steps), Kernel SHAP (nsamples 2·d + 2048; 100 background rows on model
 * S, 10 on the 784 model) and LIME (5000 samples). Both sides run src/explain's estimators; maas
 * runs Kernel SHAP's coalitions and LIME's samples natively (the peer's target has no such entries,
 * so it runs the same formulas in JS), so the ratio is the model's evaluation and those loops.
 * Interleaved rounds, one thread each (tfjs-wasm runs its own threads, reported), tfjs fed in
 * batches of TFJS_BATCH rows (its fast range); outputs checked to agree. Writes bench/RESULTS-explain.md with --out.
 *
 *   npm run bench:explain -- [--seconds 6] [--out bench/RESULTS-explain.md]
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, setThreads } from '../src/index.js';
import { integratedGradientsOf } from '../src/explain/integrated-gradients.js';
import { kernelShapOf } from '../src/explain/shap.js';
import { limeOf } from '../src/explain/lime.js';
import { modelTarget, type ExplainTarget } from '../src/explain/target.js';
import type { Explanation } from '../src/explain/explanation.js';
import { timeInterleaved } from './harness.js';
import { createTfjsPeer } from './peers/tfjs.js';
import { inputRows, model784, modelS, workloadModel, type Workload } from './workloads.js';

interface Args {
  seconds: number;
  out: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seconds: 6, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seconds') args.seconds = Number(argv[++i]);
    else if (a === '--out') args.out = argv[++i]!;
    else throw new Error(`bench:explain: unknown argument ${a} (use --seconds S --out FILE)`);
  }
  return args;
}

/** Rows per tfjs-wasm predict call (its fast range; see tfjsTarget). */
const TFJS_BATCH = 512;

/** The workload as an ExplainTarget over tfjs-wasm: model.predict, and tf.grad of dy·y for the gradient. */
async function tfjsTarget(w: Workload): Promise<{ target: ExplainTarget; threads: number | undefined }> {
  const peer = await createTfjsPeer('wasm', w.layers);
  const inputs = w.layers[0]!.in;
  const outputs = w.layers[w.layers.length - 1]!.out;
  // The same stack as a function of tensors, for tf.grad (layers models are not differentiable as a whole).
  const weights = w.layers.map((l) => ({
    w: tf.tensor2d(l.weights, [l.in, l.out]),
    b: l.bias ? tf.tensor1d(l.bias) : null,
    act: l.activation,
  }));
  const forward = (x: tf.Tensor2D): tf.Tensor => {
    let h: tf.Tensor = x;
    for (const l of weights) {
      const z: tf.Tensor = l.b ? tf.add(tf.matMul(h as tf.Tensor2D, l.w), l.b) : tf.matMul(h, l.w);
      h = l.act === 'relu' ? tf.relu(z) : l.act === 'sigmoid' ? tf.sigmoid(z) : l.act === 'softmax' ? tf.softmax(z) : z;
    }
    return h;
  };
  const target: ExplainTarget = {
    inputs,
    outputs,
    pipeline: null,
    background: null,
    // In batches of TFJS_BATCH rows: tfjs-wasm's throughput falls with larger ones (model S, this
    // machine: 331 k rows/s at 256, 248 k at 1024, 9.4 k at 16 384).
    predict: (x, rows) => {
      const y = new Float32Array(rows * outputs);
      for (let r0 = 0; r0 < rows; r0 += TFJS_BATCH) {
        const count = Math.min(TFJS_BATCH, rows - r0);
        y.set(peer.run(x.slice(r0 * inputs, (r0 + count) * inputs), count), r0 * outputs);
      }
      return y;
    },
    gradient: (x, rows, dy) =>
      tf.tidy(() => {
        const weightsOut = tf.tensor2d(dy, [rows, outputs]);
        const g = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(forward(input as tf.Tensor2D), weightsOut)))(
          tf.tensor2d(x, [rows, inputs]),
        );
        return new Float32Array(g.dataSync());
      }),
  };
  return { target, threads: peer.info.threads };
}

interface Row {
  model: string;
  method: string;
  maas: number;
  tfjs: number;
  agree: number;
}

/** Largest attribution difference relative to the largest attribution. */
function disagreement(a: Explanation, b: Explanation): number {
  const scale = Math.max(...a.attributions.map(Math.abs), 1e-12);
  return Math.max(...a.attributions.map((v, i) => Math.abs(v - b.attributions[i]!))) / scale;
}

const args = parseArgs(process.argv.slice(2));
setThreads(1);
const info = backendInfo();
const lines: string[] = [];
const print = (line: string) => {
  console.log(line);
  lines.push(line);
};
print(`# Explanations: maas against the same estimators over tfjs-wasm`);
print('');
print(`${new Date().toISOString().slice(0, 10)}, \`npm run bench:explain -- --seconds ${args.seconds}\`.`);
print(`CPU: ${cpus()[0]?.model ?? 'unknown'} (class ${info.cpuClass}), ${info.f32Kernel}; maas on 1 thread.`);

const rows: Row[] = [];
let wasmThreads: number | undefined;
for (const [make, shapBackground] of [
  [modelS, 100],
  [model784, 10],
] as const) {
  const w = make();
  const model = workloadModel(w.layers);
  const ours = modelTarget(model);
  const peer = await tfjsTarget(w);
  wasmThreads = peer.threads;
  const d = w.layers[0]!.in;
  const x = inputRows(1, d, 11);
  const background = inputRows(Math.max(shapBackground, 100), d, 12);
  const shapRows = background.subarray(0, shapBackground * d);
  const cases: [string, (t: ExplainTarget) => Explanation][] = [
    ['integratedGradients (50 steps)', (t) => integratedGradientsOf(t, x, { steps: 50 })[0]!],
    [
      `kernelShap (${2 * d + 2048} samples, ${shapBackground} background)`,
      (t) => kernelShapOf(t, x, { background: shapRows, nsamples: 2 * d + 2048, seed: 1 })[0]!,
    ],
    ['lime (5000 samples)', (t) => limeOf(t, x, { background, samples: 5000, seed: 1 })[0]!],
  ];
  for (const [name, run] of cases) {
    const agree = disagreement(run(ours), run(peer.target));
    const [m, p] = await timeInterleaved([() => run(ours), () => run(peer.target)], {
      budget: args.seconds,
      rounds: 3,
      minSamples: 3,
      warmup: 1,
    });
    rows.push({ model: w.name, method: name, maas: m!.median, tfjs: p!.median, agree });
    console.log(`  ${w.name} ${name}: maas ${(1 / m!.median).toFixed(1)}/s, tfjs-wasm ${(1 / p!.median).toFixed(2)}/s`);
  }
  model.dispose();
}
print(`tfjs ${tf.version.tfjs}, wasm backend with ${wasmThreads ?? '?'} threads.`);
print('');
print('| model | method | maas expl/s | maas ms/expl | tfjs-wasm expl/s | ratio | max diff |');
print('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows)
  print(
    `| ${r.model} | ${r.method} | ${(1 / r.maas).toFixed(1)} | ${(r.maas * 1000).toFixed(2)} | ${(1 / r.tfjs).toFixed(2)} | ${(r.tfjs / r.maas).toFixed(1)}× | ${r.agree.toExponential(1)} |`,
  );
print('');
print(
  'ratio = tfjs-wasm time / maas time; max diff = largest attribution difference between the two, relative to the largest attribution.',
);
if (args.out) writeFileSync(args.out, lines.join('\n') + '\n');
