/**
 * Small requests' latency while 60 MB JSON bodies are posted to the same server: before, the
 * event loop parsed each body (JSON.parse) and every other request waited for it; after, large
 * bodies are parsed in a thread. Each `--checkout` is a maas source tree run in a server child;
 * checkouts are interleaved round by round.
 *
 *   npx tsx bench/serve/json-stall.ts --checkout before=/tmp/maas-base --checkout after=.
 *
 * Small requests: REST JSON infer of a 16 → 16 → 2 model, batch 1, sent open loop at --rate per
 * second (keep-alive), each timed from when it was due, in two windows per round: quiet, and while
 * one client posts the large body (rows × 1000 floats as JSON, to a 1000 → 16 → 1 model) back to
 * back. The server's longest event-loop block in each window tells a blocked loop from a starved
 * CPU. The table goes to stdout and is appended to bench/RESULTS-serve.md (`--out -`: stdout only).
 */
import { Agent, request } from 'node:http';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Random } from '../../src/core/random.js';
import { writeModel } from './repo.js';
import { fmt, percentile, sleep, startServerProcess } from './server-process.js';

interface Args {
  checkouts: { label: string; dir: string }[];
  rounds: number;
  rate: number;
  quietSeconds: number;
  bigSeconds: number;
  bodyMb: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    checkouts: [],
    rounds: 2,
    rate: 100,
    quietSeconds: 5,
    bigSeconds: 15,
    bodyMb: 60,
    out: join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'RESULTS-serve.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i]!;
    if (a === '--checkout') {
      const v = next();
      const eq = v.indexOf('=');
      const dir = resolve(eq > 0 ? v.slice(eq + 1) : v);
      args.checkouts.push({ label: eq > 0 ? v.slice(0, eq) : basename(dir), dir });
    } else if (a === '--rounds') args.rounds = Number(next());
    else if (a === '--rate') args.rate = Number(next());
    else if (a === '--quiet-seconds') args.quietSeconds = Number(next());
    else if (a === '--big-seconds') args.bigSeconds = Number(next());
    else if (a === '--body-mb') args.bodyMb = Number(next());
    else if (a === '--out') args.out = next();
    else
      throw new Error(
        `json-stall: unknown argument ${a} (use --checkout [label=]DIR --rounds N --rate REQ_PER_S --quiet-seconds S --big-seconds S --body-mb MB --out FILE|-)`,
      );
  }
  if (args.checkouts.length === 0) args.checkouts.push({ label: 'this', dir: resolve('.') });
  return args;
}

const WIDE = 1000;

/** A JSON infer body of about `mb` MB: rows of WIDE floats written with 7 decimals. */
function bigBody(mb: number): { body: Buffer; rows: number } {
  const rows = Math.max(1, Math.round((mb * 1e6) / (WIDE * 10)));
  const r = new Random(9);
  const parts: string[] = [];
  for (let i = 0; i < rows * WIDE; i++) parts.push(r.uniform(0, 1).toFixed(7));
  const json = `{"inputs":[{"name":"input","datatype":"FP32","shape":[${rows},${WIDE}],"data":[${parts.join(',')}]}]}`;
  return { body: Buffer.from(json), rows };
}

function post(agent: Agent, port: number, path: string, body: Buffer): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => ok(res.statusCode!));
      },
    );
    req.on('error', fail);
    req.end(body);
  });
}

interface RoundResult {
  label: string;
  round: number;
  quiet: number[];
  big: number[];
  bigPosts: number[];
  errors: number;
  /** The server's longest event-loop block in each window (ms). */
  quietBlock: number;
  bigBlock: number;
}

async function measure(
  args: Args,
  label: string,
  dir: string,
  repo: string,
  round: number,
  big: Buffer,
): Promise<RoundResult> {
  const server = await startServerProcess({
    checkout: dir,
    options: {
      modelRepository: repo,
      host: '127.0.0.1',
      grpcPort: null,
      httpPort: 0,
      metricsPort: null,
      workers: 1,
      shutdownGraceMs: 1000,
    },
  });
  const port = server.httpPort!;
  const small = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i / 16) }],
    }),
  );
  const smallAgent = new Agent({ keepAlive: true, maxSockets: 64 });
  const bigAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: { due: number; ms: number }[] = [];
  let errors = 0;
  const t0 = performance.now();
  let sent = 0;
  const ticker = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * args.rate);
    for (; sent < due; sent++) {
      const dueAt = t0 + (sent * 1000) / args.rate;
      post(smallAgent, port, '/v2/models/s/infer', small).then(
        (status) => (status === 200 ? samples.push({ due: dueAt, ms: performance.now() - dueAt }) : errors++),
        () => errors++,
      );
    }
  }, 2);
  const bigPosts: number[] = [];
  try {
    await sleep(1000); // warm-up
    await server.loopDelay();
    const q0 = performance.now();
    await sleep(args.quietSeconds * 1000);
    const q1 = performance.now();
    const quietBlock = (await server.loopDelay()).max;
    const b0 = performance.now();
    while (performance.now() - b0 < args.bigSeconds * 1000) {
      const start = performance.now();
      const status = await post(bigAgent, port, '/v2/models/wide/infer', big);
      if (status !== 200) errors++;
      else bigPosts.push(performance.now() - start);
    }
    const b1 = performance.now();
    const bigBlock = (await server.loopDelay()).max;
    clearInterval(ticker);
    await sleep(2000); // the last small answers arrive
    const within = (a: number, b: number) => samples.filter((s) => s.due >= a && s.due < b).map((s) => s.ms);
    return { label, round, quiet: within(q0, q1), big: within(b0, b1), bigPosts, errors, quietBlock, bigBlock };
  } finally {
    clearInterval(ticker);
    smallAgent.destroy();
    bigAgent.destroy();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = await mkdtemp(join(tmpdir(), 'maas-json-stall-'));
  try {
    await writeModel(root, 's', [16, 16, 2], { max_batch_size: 64, dynamic_batching: {} });
    const { body, rows } = bigBody(args.bodyMb);
    await writeModel(root, 'wide', [WIDE, 16, 1], { max_batch_size: Math.max(rows, 1) });
    console.error(`body: ${(body.length / 1e6).toFixed(1)} MB of JSON (${rows} × ${WIDE} floats)`);
    const results: RoundResult[] = [];
    for (let round = 1; round <= args.rounds; round++) {
      const order = round % 2 === 1 ? args.checkouts : [...args.checkouts].reverse();
      for (const { label, dir } of order) {
        const r = await measure(args, label, dir, root, round, body);
        results.push(r);
        console.error(
          `round ${round} ${label}: quiet p99 ${fmt(percentile(r.quiet, 0.99))} ms, with large bodies p99 ${fmt(percentile(r.big, 0.99))} ms, ` +
            `${r.bigPosts.length} large posts (median ${fmt(percentile(r.bigPosts, 0.5), 0)} ms), longest event-loop block ${fmt(r.quietBlock, 0)} / ${fmt(r.bigBlock, 0)} ms, errors ${r.errors}`,
        );
      }
    }
    const lines: string[] = [];
    lines.push(`## Small requests while ${(body.length / 1e6).toFixed(0)} MB JSON bodies are posted`);
    lines.push('');
    lines.push(`- date: ${new Date().toISOString()}`);
    lines.push(
      `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with other work); server: 1 worker in a child process (sources under tsx); the load generator shares the cores`,
    );
    lines.push(
      `- command: \`npx tsx bench/serve/json-stall.ts ${process.argv
        .slice(2)
        .map((a) => a.replace(/=\/.*$/, '=…'))
        .join(' ')}\``,
    );
    lines.push(
      `- small: REST JSON infer of 16 → 16 → 2, batch 1, ${args.rate} req/s open loop (latency from each request's due time); large: one client posting ${rows} × ${WIDE} floats as JSON back to back for ${args.bigSeconds} s after ${args.quietSeconds} s quiet`,
    );
    lines.push('');
    lines.push(
      '| checkout | round | quiet req | quiet p50 ms | quiet p99 ms | with large req | with large p50 ms | with large p99 ms | with large max ms | large posts | large post median ms | longest loop block quiet / with large ms | errors |',
    );
    lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    const row = (label: string, round: string, r: Omit<RoundResult, 'label' | 'round'>) =>
      lines.push(
        `| ${label} | ${round} | ${r.quiet.length} | ${fmt(percentile(r.quiet, 0.5))} | ${fmt(percentile(r.quiet, 0.99))} | ${r.big.length} | ${fmt(percentile(r.big, 0.5))} | ${fmt(percentile(r.big, 0.99))} | ${fmt(Math.max(...r.big))} | ${r.bigPosts.length} | ${fmt(percentile(r.bigPosts, 0.5), 0)} | ${fmt(r.quietBlock, 0)} / ${fmt(r.bigBlock, 0)} | ${r.errors} |`,
      );
    for (const r of results) row(r.label, String(r.round), r);
    for (const { label } of args.checkouts) {
      const mine = results.filter((r) => r.label === label);
      row(`**${label}**`, 'all', {
        quiet: mine.flatMap((r) => r.quiet),
        big: mine.flatMap((r) => r.big),
        bigPosts: mine.flatMap((r) => r.bigPosts),
        errors: mine.reduce((n, r) => n + r.errors, 0),
        quietBlock: Math.max(...mine.map((r) => r.quietBlock)),
        bigBlock: Math.max(...mine.map((r) => r.bigBlock)),
      });
    }
    lines.push('');
    const text = lines.join('\n');
    console.log(text);
    if (args.out !== '-') await appendFile(args.out, `\n${text}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
