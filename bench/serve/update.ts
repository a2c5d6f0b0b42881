/**
 * Update bench: model S (100 → 64 → 32 → 1) updated from 10 000 new rows for 10 epochs through
 * maas.UpdateService while batch-1 gRPC inference runs open loop. Reports, per round, the time
 * from the end of the update's stream to the promoted version serving (its result event, sent once
 * the version is READY, and checked by an unversioned request that must reach it), the p99 of the
 * inference requests due while the update trained against the p99 of those due in the idle window
 * before it, and the inference requests that failed over the whole round (promotion included).
 * Each round is a fresh repository and a fresh server child (the built package, 2 workers).
 *
 *   npm run build:ts && npx tsx bench/serve/update.ts [--rounds 3] [--rate 400] [--idle-seconds 3] [--out FILE|-]
 */
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { GrpcInferenceClient } from '../../src/client/index.js';
import type { UpdateRowsBatch } from '../../src/client/types.js';
import { Random } from '../../src/core/random.js';
import { inputRows, modelS, workloadModel } from '../workloads.js';
import { startChild, stopChild } from './children.js';
import { fmt, percentile, sleep } from './server-process.js';

interface Args {
  part: 'update' | 'federated' | 'all';
  clients: number;
  rounds: number;
  rate: number;
  idleSeconds: number;
  rows: number;
  epochs: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    part: 'all',
    clients: 100,
    rounds: 3,
    rate: 400,
    idleSeconds: 3,
    rows: 10_000,
    epochs: 10,
    out: join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'RESULTS-serve.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i]!;
    if (a === '--rounds') args.rounds = Number(next());
    else if (a === '--part') args.part = next() as Args['part'];
    else if (a === '--clients') args.clients = Number(next());
    else if (a === '--rate') args.rate = Number(next());
    else if (a === '--idle-seconds') args.idleSeconds = Number(next());
    else if (a === '--rows') args.rows = Number(next());
    else if (a === '--epochs') args.epochs = Number(next());
    else if (a === '--out') args.out = next();
    else
      throw new Error(
        `update: unknown argument ${a} (use --part update|federated|all --rounds N --rate REQ_PER_S --idle-seconds S --rows N --epochs N --clients N --out FILE|-)`,
      );
  }
  return args;
}

const D = 100;

/** Labelled rows model S can learn: a fixed random hyperplane through the inputs. */
function rows(n: number, random: Random, w: Float32Array): { x: Float32Array; y: Float32Array } {
  const x = Float32Array.from({ length: n * D }, () => random.uniform(-1, 1));
  const y = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += w[j]! * x[r * D + j]!;
    y[r] = s > 0 ? 1 : 0;
  }
  return { x, y };
}

/** A repository with model S, compiled (adam, binary cross-entropy), as version 1; with `holdout`, its held-out file too. */
async function repository(holdout?: { x: Float32Array; y: Float32Array }): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'maas-update-bench-'));
  await mkdir(join(root, 's'), { recursive: true });
  const s = workloadModel(modelS().layers);
  s.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
  await s.save(join(root, 's', '1'));
  s.dispose();
  if (holdout) {
    const rows = holdout.y.length;
    await writeFile(
      join(root, 's', 'holdout.json'),
      JSON.stringify({
        x: Array.from({ length: rows }, (_, r) => Array.from(holdout.x.subarray(r * D, (r + 1) * D))),
        y: Array.from(holdout.y),
      }),
    );
    await writeFile(
      join(root, 's', 'config.json'),
      JSON.stringify({ parameters: { update_holdout: { string_value: 'holdout.json' } } }),
    );
  }
  return root;
}

interface FederatedResult {
  /** 100 SubmitUpdate calls, one after another (each validated as it arrives), ms. */
  submitMs: number;
  /** CloseRound: average, apply, judge, stage, commit, load — ms. */
  closeMs: number;
  promoted: boolean;
}

/** A round of `clients` simulated clients of model S: deltas of a local step's size, submitted, then closed. */
async function federatedRound(args: Args, seed: number): Promise<FederatedResult> {
  const random = new Random(seed);
  const w = Float32Array.from({ length: D }, () => random.normal(0, 1));
  const root = await repository(rows(1000, random, w));
  const { child, port } = await startChild(['maas', root, '2']);
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`);
  try {
    const round = await client.openRound('s', { maxNorm: 10 });
    const base = await client.getRound('s', round.roundId);
    const deltas = Array.from({ length: args.clients }, () =>
      base.weights.map((t) => Float32Array.from({ length: t.values.length }, () => random.normal(0, 1e-3))),
    );
    const t0 = performance.now();
    for (let i = 0; i < args.clients; i++)
      await client.submitUpdate('s', round.roundId, { client: `c${i}`, samples: 100 + i, delta: deltas[i]! });
    const t1 = performance.now();
    const result = await client.closeRound('s', round.roundId);
    const t2 = performance.now();
    return { submitMs: t1 - t0, closeMs: t2 - t1, promoted: result.promoted };
  } finally {
    client.close();
    await stopChild(child, 5000);
    await rm(root, { recursive: true, force: true });
  }
}

interface RoundResult {
  idle: number[];
  training: number[];
  errors: number;
  /** End of the stream → result (the promoted version READY), ms. */
  toServingMs: number;
  /** 'training' event → result, ms. */
  trainMs: number;
  promoted: boolean;
  servedVersion: string;
  improvement: number;
}

async function round(args: Args, seed: number): Promise<RoundResult> {
  const root = await repository();
  const { child, port } = await startChild(['maas', root, '2']);
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`);
  const updater = new GrpcInferenceClient(`127.0.0.1:${port}`);
  const request = {
    model: 's',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, D], data: inputRows(1, D, 3) }],
  };
  const samples: { due: number; ms: number }[] = [];
  let errors = 0;
  const send = (due: number) =>
    client.infer(request).then(
      () => samples.push({ due, ms: performance.now() - due }),
      () => errors++,
    );
  const t0 = performance.now();
  let sent = 0;
  // Open loop: a latency counts from the request's due time (no coordinated omission).
  const ticker = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * args.rate);
    for (; sent < due; sent++) void send(t0 + (sent * 1000) / args.rate);
  }, 2);
  const random = new Random(seed);
  const w = Float32Array.from({ length: D }, () => random.normal(0, 1));
  const train = rows(args.rows, random, w);
  const holdout = rows(2000, random, w);
  try {
    await sleep(1000); // warm-up
    const idleFrom = performance.now();
    await sleep(args.idleSeconds * 1000);
    const idleTo = performance.now();
    let streamEnd = 0;
    let trainingFrom = 0;
    const perBatch = 1000;
    async function* batches(): AsyncGenerator<UpdateRowsBatch> {
      await Promise.resolve(); // rows read as they stream, as a client reading a file would
      for (let r = 0; r < args.rows; r += perBatch)
        yield { x: train.x.subarray(r * D, (r + perBatch) * D), y: train.y.subarray(r, r + perBatch) };
      yield { set: 'holdout', x: holdout.x, y: holdout.y };
      streamEnd = performance.now(); // asked for the next batch: the last one is written
    }
    const outcome = await updater.update({
      model: 's',
      parameters: { epochs: args.epochs, batch_size: 32, seed },
      batches: batches(),
      onProgress: (p) => {
        if (p.event === 'training') trainingFrom = performance.now();
      },
    });
    const resultAt = performance.now();
    const check = await updater.infer(request);
    await sleep(1000);
    clearInterval(ticker);
    await sleep(1000); // the last answers arrive
    const within = (a: number, b: number) => samples.filter((s) => s.due >= a && s.due < b).map((s) => s.ms);
    return {
      idle: within(idleFrom, idleTo),
      training: within(trainingFrom, resultAt),
      errors,
      toServingMs: resultAt - streamEnd,
      trainMs: resultAt - trainingFrom,
      promoted: outcome.promoted && outcome.serving,
      servedVersion: check.version,
      improvement: outcome.improvement,
    };
  } finally {
    clearInterval(ticker);
    client.close();
    updater.close();
    await stopChild(child, 5000);
    await rm(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const lines: string[] = [];
  if (args.part !== 'federated') lines.push(...(await updatePart(args)));
  if (args.part !== 'update') lines.push(...(await federatedPart(args)));
  const text = lines.join('\n') + '\n';
  process.stdout.write(`\n${text}`);
  if (args.out !== '-') await appendFile(args.out, `\n${text}`);
}

async function federatedPart(args: Args): Promise<string[]> {
  const results: FederatedResult[] = [];
  for (let i = 1; i <= args.rounds; i++) {
    const r = await federatedRound(args, 100 + i);
    results.push(r);
    console.error(
      `round ${i}: ${args.clients} submits ${fmt(r.submitMs, 0)} ms, close ${fmt(r.closeMs, 0)} ms, promoted ${r.promoted}`,
    );
  }
  const lines: string[] = [];
  lines.push(`## Federated round: ${args.clients} simulated clients of model S through maas.FederatedService`);
  lines.push('');
  lines.push(`- date: ${new Date().toISOString()}`);
  lines.push(`- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores); server: the built package, 2 workers`);
  lines.push(`- command: \`npx tsx bench/serve/update.ts ${process.argv.slice(2).join(' ')}\``);
  lines.push(
    `- each client's delta: N(0, 1e-3) per weight (8 577 values), sent by SubmitUpdate one after another from one gRPC client (each checked on arrival: tensors, finite values, max_norm 10); CloseRound averages by samples in the update thread, applies, judges on 1000 held-out rows, stages, commits and loads the version when it wins`,
  );
  lines.push('');
  lines.push(
    '| round | validate: ' +
      args.clients +
      ' submits (ms) | close: aggregate → judged → serving (ms) | total (ms) | promoted |',
  );
  lines.push('|---|---|---|---|---|');
  results.forEach((r, i) =>
    lines.push(
      `| ${i + 1} | ${fmt(r.submitMs, 0)} | ${fmt(r.closeMs, 0)} | ${fmt(r.submitMs + r.closeMs, 0)} | ${r.promoted} |`,
    ),
  );
  lines.push('');
  return lines;
}

async function updatePart(args: Args): Promise<string[]> {
  const results: RoundResult[] = [];
  for (let i = 1; i <= args.rounds; i++) {
    const r = await round(args, i);
    results.push(r);
    console.error(
      `round ${i}: stream end → serving ${fmt(r.toServingMs, 0)} ms (training ${fmt(r.trainMs, 0)} ms), ` +
        `idle p99 ${fmt(percentile(r.idle, 0.99))} ms (${r.idle.length}), training p99 ${fmt(percentile(r.training, 0.99))} ms (${r.training.length}), ` +
        `errors ${r.errors}, promoted ${r.promoted} → version ${r.servedVersion}`,
    );
  }
  const lines: string[] = [];
  lines.push(`## Update: model S from ${args.rows} new rows, ${args.epochs} epochs, under inference`);
  lines.push('');
  lines.push(`- date: ${new Date().toISOString()}`);
  lines.push(
    `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with the load generator); server: the built package, 2 workers × 1 native thread, update_worker_share 0.5 (one worker trains)`,
  );
  lines.push(`- command: \`npx tsx bench/serve/update.ts ${process.argv.slice(2).join(' ')}\``);
  lines.push(
    `- inference: model S, batch 1, gRPC, ${args.rate} req/s open loop (latency from each request's due time); idle window ${args.idleSeconds} s before the update; training window from its "training" event to its result. Update: maas.UpdateService, ${args.rows} rows in batches of 1000 + 2000 held-out rows, batch_size 32, judged on loss`,
  );
  lines.push('');
  lines.push(
    '| round | stream end → serving (ms) | training (ms) | idle p99 (ms) | training p99 (ms) | p99 ratio | failed requests | served after |',
  );
  lines.push('|---|---|---|---|---|---|---|---|');
  results.forEach((r, i) => {
    const idle = percentile(r.idle, 0.99);
    const training = percentile(r.training, 0.99);
    lines.push(
      `| ${i + 1} | ${fmt(r.toServingMs, 0)} | ${fmt(r.trainMs, 0)} | ${fmt(idle)} | ${fmt(training)} | ${fmt(training / idle)} | ${r.errors} | version ${r.servedVersion} |`,
    );
  });
  lines.push('');
  return lines;
}

await main();
