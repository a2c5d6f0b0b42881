/**
 * Raw records against prepared tensors: one record per request through the model's saved
 * pipeline (JSON records over REST, one input per column over gRPC) against the same row sent as
 * its prepared FP32 features, on one server, one caller, the two alternating round by round.
 * The target: the raw request's p50 at most 1.5× the prepared one's.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcInferenceClient, HttpInferenceClient, type InferOptions } from '../../src/client/index.js';
import { DataFrame, dense, initializers, prepare, sequential } from '../../src/index.js';
import { startChild, stopChild } from './children.js';
import { closedLoopOf, type LoadResult } from './loadgen.js';

const ORIGINS = ['europe', 'japan', 'usa'];

/** The classification table of the tests: numbers, a category, a date and a class label. */
function cars(rows: number) {
  return Array.from({ length: rows }, (_, i) => ({
    weight: 1800 + ((i * 37) % 2500),
    cylinders: 4 + 2 * (i % 3),
    origin: ORIGINS[i % 3]!,
    built: `${1970 + (i % 12)}-0${1 + (i % 9)}-15`,
    size: i % 4 === 0 ? 'large' : i % 4 === 1 ? 'medium' : 'small',
  }));
}

const fmt = (n: number, digits = 3) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const median = (runs: LoadResult[]) => [...runs].sort((x, y) => x.p50 - y.p50)[Math.floor(runs.length / 2)]!;

/** Markdown lines: p50 of raw and prepared requests, both transports. */
export async function recordsSection(options: { seconds: number; rounds: number; workers: number }): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'maas-bench-records-'));
  const frame = DataFrame.fromRecords(cars(200), { onWarning: 'ignore' });
  const { pipeline } = prepare(frame, { label: 'size', onWarning: 'ignore' });
  const model = sequential({
    layers: [
      dense({
        units: 32,
        activation: 'relu',
        inputShape: [pipeline.width],
        kernelInitializer: initializers.glorotUniform({ seed: 3 }),
      }),
      dense({ units: 3, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  model.setPreparation(pipeline);
  await mkdir(join(root, 'cars'), { recursive: true });
  await model.save(join(root, 'cars', '1'));
  await writeFile(join(root, 'cars', 'config.json'), JSON.stringify({ max_batch_size: 64, dynamic_batching: {} }));
  const { size: _size, ...record } = cars(1)[0]!;
  const x = pipeline.transform([record]);
  const requests: Record<string, InferOptions> = {
    prepared: { model: 'cars', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, x.length], data: x }] },
    raw: { model: 'cars', records: [record] },
  };
  const server = await startChild(['maas', root, String(options.workers)]);
  const http = await startChild(['maas-http', root, String(options.workers)]);
  const grpc = new GrpcInferenceClient(`127.0.0.1:${server.port}`);
  const rest = new HttpInferenceClient(`http://127.0.0.1:${http.port}`);
  const runs = new Map<string, LoadResult[]>();
  try {
    for (let round = 0; round < options.rounds; round++)
      for (const [transport, client] of [
        ['gRPC', grpc],
        ['REST', rest],
      ] as const)
        for (const kind of ['prepared', 'raw'] as const) {
          const r = await closedLoopOf((q) => client.infer(q), requests[kind]!, 1, options.seconds);
          const key = `${transport}|${kind}`;
          runs.set(key, [...(runs.get(key) ?? []), r]);
          console.log(
            `records ${transport.padEnd(4)} ${kind.padEnd(8)} p50 ${fmt(r.p50)} ms  ${fmt(r.rps, 0)} req/s  errors ${r.errors}`,
          );
        }
    const lines = [
      '## Raw records against prepared tensors (one record per request, one caller)',
      '',
      `- model: 4 raw columns (2 numbers, a category, a date) → ${pipeline.width} features → 32 → 3 classes, max_batch_size 64, ${options.workers} workers; median p50 of ${options.rounds} alternating rounds of ${options.seconds} s`,
      '- raw: JSON records over REST, one input per column (content_type "pd", BYTES for text) over gRPC; answered with the scores and the class name',
      '',
      '| transport | prepared p50 ms | raw p50 ms | raw/prepared | errors |',
      '| --- | --- | --- | --- | --- |',
    ];
    for (const transport of ['gRPC', 'REST']) {
      const p = median(runs.get(`${transport}|prepared`)!);
      const r = median(runs.get(`${transport}|raw`)!);
      lines.push(
        `| ${transport} | ${fmt(p.p50)} | ${fmt(r.p50)} | **${fmt(r.p50 / p.p50, 2)}** | ${p.errors + r.errors} |`,
      );
    }
    lines.push('', 'Every round (p50 ms):');
    for (const [key, rs] of runs) lines.push(`- ${key.replace('|', ', ')}: ${rs.map((r) => fmt(r.p50)).join(' / ')}`);
    lines.push('');
    return lines;
  } finally {
    grpc.close();
    await rest.close();
    await stopChild(server.child);
    await stopChild(http.child);
    await rm(root, { recursive: true, force: true });
  }
}
