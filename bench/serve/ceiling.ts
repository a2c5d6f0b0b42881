/**
 * The transport ceiling, as the serving issue measured it: h2load driving ModelInfer on the
 * bundled `classic` model (the repository `npm start` serves) and on a bare @grpc/grpc-js echo
 * server answering the same request bytes with a response of the same size, alternating
 * target by target, `rounds` rounds per concurrency (median round reported).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GrpcInferenceClient, type InferOptions } from '../../src/client/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { inputRows } from '../workloads.js';
import { startChild, stopChild } from './children.js';
import { grpcBodyFile, h2load, type LoadResult } from './loadgen.js';

const IN_FLIGHT = [1, 16, 64, 256];

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const median = (runs: LoadResult[]) => [...runs].sort((x, y) => x.rps - y.rps)[Math.floor(runs.length / 2)]!;

/** One batch-1 row of the classic model's 100 features. */
function classicRequest(model: string): InferOptions {
  return { model, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 100], data: inputRows(1, 100, 3) }] };
}

/** The outputs after the load match a quiet request's: the server answered correctly throughout. */
async function checkedAfterLoad(port: number, expected: Float32Array): Promise<boolean> {
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`);
  try {
    const after = (await client.infer(classicRequest('classic'))).outputs[0]!.data as Float32Array;
    return after.length === expected.length && after.every((v, i) => v === expected[i]);
  } finally {
    client.close();
  }
}

/** Markdown lines: the in-flight table and every round. */
export async function ceilingSection(options: { seconds: number; rounds: number; workers: number }): Promise<string[]> {
  const echo = await startChild(['echo', '1']);
  const maas = await startChild(['maas', join(packageRoot(), 'models'), String(options.workers)]);
  const client = new GrpcInferenceClient(`127.0.0.1:${maas.port}`);
  const before = (await client.infer(classicRequest('classic'))).outputs[0]!.data as Float32Array;
  const config = await client.modelConfig('classic');
  client.close();
  const bodies = {
    echo: await grpcBodyFile(classicRequest('echo')),
    maas: await grpcBodyFile(classicRequest('classic')),
  };
  const runs = new Map<string, LoadResult[]>();
  try {
    for (const c of IN_FLIGHT) {
      for (let round = 0; round < options.rounds; round++) {
        for (const target of ['echo', 'maas'] as const) {
          const r = await h2load(target === 'echo' ? echo.port : maas.port, bodies[target], c, options.seconds);
          runs.set(`${target}|${c}`, [...(runs.get(`${target}|${c}`) ?? []), r]);
          console.log(
            `ceiling ${target.padEnd(4)} c=${String(c).padStart(3)} ${fmt(r.rps, 0).padStart(7)} req/s  p50 ${fmt(r.p50)} ms  errors ${r.errors}`,
          );
        }
      }
    }
    const correct = await checkedAfterLoad(maas.port, before);
    const parameters = (config as { parameters?: Record<string, { string_value?: string }> }).parameters ?? {};
    const lines = [
      '## The transport ceiling: maas `classic` against a bare grpc-js echo (h2load)',
      '',
      `- \`npm start\`'s repository (models/), ${options.workers} workers; one h2load connection, batch-1 requests, ${options.seconds} s per point, echo and maas alternating, median of ${options.rounds} rounds`,
      `- placement of classic: ${parameters.placement?.string_value ?? '?'}, batches up to ${parameters.inline_max_rows?.string_value ?? '?'} rows inline (cost ${parameters.cost_per_batch_ns?.string_value ?? '?'} ns + ${parameters.cost_per_row_ns?.string_value ?? '?'} ns per row)`,
      `- outputs after the load identical to before it: ${correct ? 'yes' : '**NO**'}`,
      '',
      '| in flight | maas req/s | echo req/s | maas/echo | maas p50 ms | echo p50 ms | p50 ratio | errors |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const c of IN_FLIGHT) {
      const m = median(runs.get(`maas|${c}`)!);
      const e = median(runs.get(`echo|${c}`)!);
      lines.push(
        `| ${c} | ${fmt(m.rps, 0)} | ${fmt(e.rps, 0)} | **${fmt(m.rps / e.rps)}** | ${fmt(m.p50)} | ${fmt(e.p50)} | ${fmt(m.p50 / e.p50)} | ${m.errors + e.errors} |`,
      );
    }
    lines.push('', 'Every round (req/s):');
    for (const [key, rs] of runs)
      lines.push(`- ${key.replace('|', ', c=')}: ${rs.map((r) => fmt(r.rps, 0)).join(' / ')}`);
    lines.push('');
    return lines;
  } finally {
    await rm(bodies.echo, { force: true });
    await rm(bodies.maas, { force: true });
    await stopChild(echo.child);
    await stopChild(maas.child);
  }
}
