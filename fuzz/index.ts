/**
 * `npm run fuzz`: a bounded, seeded fuzzer of the server's network inputs (HTTP/2 frames, gRPC
 * messages, REST bodies, URLs and headers) and of the model files the repository loads. Prints
 * the seed and a table per phase, writes failing cases to fuzz/findings/<seed>/ (replayable with
 * --seed and --replay-network / --replay-file), and exits non-zero on any failure.
 *
 *   npm run fuzz -- [--seed N] [--network-cases N] [--file-cases N] [--time-limit SECONDS]
 *                   [--only network|files] [--replay-network I,J] [--replay-file I,J]
 *                   [--auth valid|none]
 */
import { randomInt } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/core/package-root.js';
import { runFileFuzz, type FileResult } from './files/run.js';
import { AUTH_MODES, type AuthMode } from './network/auth.js';
import { runNetworkFuzz, type NetworkResult } from './network/run.js';
import { FindingsWriter } from './report.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    'network-cases': { type: 'string', default: '10000' },
    'file-cases': { type: 'string', default: '5000' },
    'time-limit': { type: 'string', default: '1800' },
    only: { type: 'string' },
    'replay-network': { type: 'string' },
    'replay-file': { type: 'string' },
    'deadline-ms': { type: 'string', default: '5000' },
    'load-timeout-ms': { type: 'string', default: '20000' },
    children: { type: 'string', default: String(Math.min(4, Math.max(2, availableParallelism() - 1))) },
    auth: { type: 'string' },
    findings: { type: 'string', default: join(packageRoot(), 'fuzz', 'findings') },
  },
});

function integer(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`Expected a non-negative integer for --${name} but received '${text}'`);
  return n;
}

function indices(name: string, text: string | undefined): number[] | undefined {
  return text === undefined ? undefined : text.split(',').map((t) => integer(name, t));
}

function authMode(text: string | undefined): AuthMode | undefined {
  if (text === undefined || AUTH_MODES.includes(text as AuthMode)) return text as AuthMode | undefined;
  throw new Error(`Expected --auth ${AUTH_MODES.join(' or ')} but received '${text}'`);
}

const seed = values.seed === undefined ? randomInt(2 ** 32) : integer('seed', values.seed);
const auth = authMode(values.auth);
const replayNetwork = indices('replay-network', values['replay-network']);
const replayFile = indices('replay-file', values['replay-file']);
const replaying = replayNetwork !== undefined || replayFile !== undefined;
const runNetwork = replaying ? replayNetwork !== undefined : values.only !== 'files';
const runFiles = replaying ? replayFile !== undefined : values.only !== 'network';
const timeLimitMs = integer('time-limit', values['time-limit']) * 1000;
const findings = new FindingsWriter(join(values.findings, String(seed)));
const log = (line: string) => console.log(line);

console.log(`maas fuzz: seed ${seed} (replay with --seed ${seed}${auth ? ` --auth ${auth}` : ''})`);
let network: NetworkResult | null = null;
let files: FileResult | null = null;
if (runNetwork) {
  network = await runNetworkFuzz({
    seed,
    cases: integer('network-cases', values['network-cases']),
    indices: replayNetwork,
    timeLimitMs,
    deadlineMs: integer('deadline-ms', values['deadline-ms']),
    findings,
    log,
    ...(auth ? { auth } : {}),
  });
  console.log(
    `\nnetwork${auth ? ` (auth ${auth})` : ''}: ${network.cases} cases in ${(network.wallMs / 1000).toFixed(1)} s, server restarted ${network.serverRestarts}×${network.stoppedByTime ? ' (stopped by the time limit)' : ''}`,
  );
  console.log(network.tally.table());
  if (auth)
    console.log(
      '(denied: refused for its credentials, HTTP 401 or gRPC UNAUTHENTICATED; unauth-served: a call outside server health served without credentials)',
    );
}
if (runFiles) {
  files = await runFileFuzz({
    seed,
    cases: integer('file-cases', values['file-cases']),
    indices: replayFile,
    timeLimitMs,
    children: Math.max(1, integer('children', values.children)),
    loadTimeoutMs: integer('load-timeout-ms', values['load-timeout-ms']),
    heapMb: 2048,
    findings,
    log,
  });
  console.log(
    `\nfiles: ${files.cases} mutants in ${(files.wallMs / 1000).toFixed(1)} s, ${files.childrenStarted} loader children${files.stoppedByTime ? ' (stopped by the time limit)' : ''}`,
  );
  console.log(files.tally.table());
  console.log(
    '(wrong-digest: loads to other outputs although a recorded digest covers the changed file; wrong-no-digest: the same where no digest covers it)',
  );
}

const failures = (network?.tally.failures ?? 0) + (files?.tally.failures ?? 0);
await findings.close({
  seed,
  ...(auth ? { auth } : {}),
  network: network?.tally.toJSON(),
  files: files?.tally.toJSON(),
});
if (failures > 0) console.log(`\n${failures} failing cases, written to ${join(values.findings, String(seed))}`);
else console.log('\nno failing cases');
process.exitCode = failures > 0 ? 1 : 0;
