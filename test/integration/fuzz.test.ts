/**
 * A short run of `npm run fuzz` with a fixed seed (MAAS_TEST_SEED overrides it): a few hundred
 * network cases against the real server in its own process, and 150 mutated model
 * files loaded in child processes. Nothing may crash or hang, every network error must carry
 * its code, the server must keep answering the probe model correctly, and no file under a
 * recorded digest may load to other outputs. A failure names the seed and the cases to replay.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFileFuzz } from '../../fuzz/files/run.js';
import { h2ConversationOver, validH2Conversation } from '../../fuzz/network/http2.js';
import { networkCase, runNetworkFuzz } from '../../fuzz/network/run.js';
import { TargetServer } from '../../fuzz/network/server.js';
import { exchange } from '../../fuzz/network/socket.js';
import { FindingsWriter, type Tally } from '../../fuzz/report.js';

const SEED = Number(process.env.MAAS_TEST_SEED ?? 20261201);
const NETWORK_CASES = 300;
const FILE_MUTANTS = 150;
/** Where the runs write their findings (the failure message names them by seed and index). */
const FINDINGS = mkdtempSync(join(tmpdir(), 'maas-fuzz-test-'));
afterAll(() => rmSync(FINDINGS, { recursive: true, force: true }));

/** One server under fuzz for the network tests (its start is a good part of their time). */
const server = new TargetServer(5000);
beforeAll(() => server.start());
afterAll(() => server.stop());

/** "target class: detail" for every finding, so that a failure shows what to replay. */
function failing(findings: FindingsWriter, classes: string[]): string[] {
  return findings.findings
    .filter((f) => classes.includes(f.class))
    .map(
      (f) =>
        `--seed ${SEED} --replay-${f.phase === 'network' ? 'network' : 'file'} ${f.index}: ${f.target} ${f.class}: ${f.description} → ${f.detail}`,
    );
}

function counts<C extends string>(tally: Tally<C>, classes: readonly C[]): Record<string, number> {
  return Object.fromEntries(classes.map((c) => [c, tally.count(c)]));
}

describe(`fuzz, seed ${SEED}`, () => {
  it('replays: a case is a function of the seed and its index', () => {
    for (const index of [0, 17, 299]) expect(networkCase(SEED, index)).toEqual(networkCase(SEED, index));
    expect(networkCase(SEED, 1)).not.toEqual(networkCase(SEED + 1, 1));
  });

  it('reaches the server: the HTTP/2 conversation its frame cases break is answered whole', async () => {
    const answer = await exchange(server.address.host, server.address.grpcPort, [validH2Conversation()], {
      deadlineMs: 5000,
      halfClose: false,
      complete: h2ConversationOver,
    });
    expect(answer.timedOut).toBe(false);
    // The ModelInferResponse came back: its model name and output datatype are in the DATA frame.
    expect(answer.received.includes('probe')).toBe(true);
    expect(answer.received.includes('FP32')).toBe(true);
    expect(await server.probe()).toEqual({ ok: true });
  });

  it(`network: ${NETWORK_CASES} cases, none crashes, hangs, is answered without its code or breaks the probe`, async () => {
    const findings = new FindingsWriter(join(FINDINGS, 'network'));
    const result = await runNetworkFuzz({
      seed: SEED,
      cases: NETWORK_CASES,
      timeLimitMs: 600_000,
      deadlineMs: 5000,
      findings,
      server,
    });
    expect(result.cases).toBe(NETWORK_CASES);
    expect(failing(findings, ['crash', 'hang', 'uncoded', 'wrong-output'])).toEqual([]);
    // Known and outside maas: @grpc/grpc-js answers an unreadable grpc-timeout or compressed
    // message with its own INTERNAL before any handler runs (the class is only those two texts).
    expect(findings.findings.filter((f) => f.class === 'grpc-js').every((f) => f.target === 'h2-grpc')).toBe(true);
    // The cases reached the server: some were answered, most refused with a coded error.
    const tally = counts(result.tally, ['answered', 'refused']);
    expect(tally.answered).toBeGreaterThan(NETWORK_CASES / 10);
    expect(tally.refused).toBeGreaterThan(NETWORK_CASES / 3);
  });

  it(`files: ${FILE_MUTANTS} mutants, none crashes or hangs a loader, none under a digest loads wrong`, async () => {
    const findings = new FindingsWriter(join(FINDINGS, 'files'));
    const result = await runFileFuzz({
      seed: SEED,
      cases: FILE_MUTANTS,
      timeLimitMs: 600_000,
      children: 2,
      loadTimeoutMs: 20_000,
      heapMb: 2048,
      findings,
    });
    expect(result.cases).toBe(FILE_MUTANTS);
    expect(failing(findings, ['crash', 'hang', 'wrong-digest'])).toEqual([]);
    expect(result.tally.count('refused')).toBeGreaterThan(FILE_MUTANTS / 4);
  });
});
