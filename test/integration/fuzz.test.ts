/**
 * A short run of `npm run fuzz` with a fixed seed (MAAS_TEST_SEED overrides it): a few hundred
 * network cases against the real server in its own process, and 150 mutated model
 * files loaded in child processes. Nothing may crash or hang, every network error must carry
 * its code, the server must keep answering the probe model correctly, and no file under a
 * recorded digest may load to other outputs. A failure names the seed and the cases to replay.
 *
 * Then the same under access control, against a second server with a token file: a run whose
 * requests all carry the admin token passes as without access control, and a run without it
 * has every call outside server health refused (none served), which it must have seen happen.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { runFileFuzz } from '../../fuzz/files/run.js';
import { authVerdict, type AccessVerdict, type AuthMode } from '../../fuzz/network/auth.js';
import { protoType, runGrpcCase } from '../../fuzz/network/grpc.js';
import { judgeHttp, parseResponses } from '../../fuzz/network/http1.js';
import {
  h2ConversationOver,
  h2FramesAccess,
  runH2GrpcCase,
  validH2Conversation,
  validH2GrpcCase,
} from '../../fuzz/network/http2.js';
import { networkCase, runNetworkFuzz } from '../../fuzz/network/run.js';
import { TargetServer } from '../../fuzz/network/server.js';
import { exchange } from '../../fuzz/network/socket.js';
import { FAILING, FindingsWriter, type NetworkClass, type Tally } from '../../fuzz/report.js';

const SEED = Number(process.env.MAAS_TEST_SEED ?? 20261201);
const NETWORK_CASES = 300;
/** Network cases of each run under access control (with the token, and without). */
const AUTH_NETWORK_CASES = 300;
const FILE_MUTANTS = 150;
/** Where the runs write their findings (the failure message names them by seed and index). */
const FINDINGS = mkdtempSync(join(tmpdir(), 'maas-fuzz-test-'));
afterAll(() => rmSync(FINDINGS, { recursive: true, force: true }));

/** One server under fuzz for the network tests (its start is a good part of their time). */
const server = new TargetServer(5000);
beforeAll(() => server.start());
afterAll(() => server.stop());

/** "target class: detail" for every finding, so that a failure shows what to replay. */
function failing(findings: FindingsWriter, classes: string[], auth?: AuthMode): string[] {
  return findings.findings
    .filter((f) => classes.includes(f.class))
    .map(
      (f) =>
        `--seed ${SEED}${auth ? ` --auth ${auth}` : ''} --replay-${f.phase === 'network' ? 'network' : 'file'} ${f.index}: ${f.target} ${f.class}: ${f.description} → ${f.detail}`,
    );
}

function counts<C extends string>(tally: Tally<C>, classes: readonly C[]): Record<string, number> {
  return Object.fromEntries(classes.map((c) => [c, tally.count(c)]));
}

describe(`fuzz, seed ${SEED}`, () => {
  it('replays: a case is a function of the seed and its index', () => {
    for (const index of [0, 17, 299]) expect(networkCase(SEED, index)).toEqual(networkCase(SEED, index));
    expect(networkCase(SEED, 1)).not.toEqual(networkCase(SEED + 1, 1));
    // The token draws nothing from a case's stream: with it, each case is the same case.
    for (let index = 0; index < 100; index++) {
      const without = networkCase(SEED, index);
      const token = networkCase(SEED, index, 'Bearer maas_0123456789abcdef_x');
      expect(token.target).toBe(without.target);
      if (token.target === 'h2-frames') continue; // a cut's position scales with the bytes, the token's included
      expect(token.description).toBe(without.description);
      if ('methods' in token && 'methods' in without)
        expect([token.methods, token.targets]).toEqual([without.methods, without.targets]);
    }
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

describe(`fuzz under access control, seed ${SEED}`, () => {
  /** A server with a token file holding one admin token; health stays open, as by default. */
  const guarded = new TargetServer(5000, { tokens: true });
  beforeAll(() => guarded.start());
  afterAll(() => guarded.stop());
  const bearer = () => `Bearer ${guarded.token!}`;

  /** A REST request's bytes, with the token or without. */
  function restRequest(method: string, target: string, body: string, authorization?: string): Buffer {
    const headers = [
      'host: localhost',
      ...(authorization ? [`authorization: ${authorization}`] : []),
      'content-type: application/json',
      `content-length: ${Buffer.byteLength(body)}`,
    ];
    return Buffer.from(`${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n${body}`);
  }

  async function judgeRest(method: string, target: string, body: string, authorization?: string) {
    const result = await exchange(
      guarded.address.host,
      guarded.address.httpPort,
      [restRequest(method, target, body, authorization)],
      {
        deadlineMs: 5000,
        halfClose: false,
        complete: (received) => parseResponses(received, [method], false).length >= 1,
      },
    );
    return judgeHttp(result, [method], [target]);
  }

  function judgeGrpc(client: grpc.Client, method: string, type: string, message: object, authorization?: string) {
    const t = protoType(type);
    const bytes = Buffer.from(t.encode(t.fromObject(message)).finish());
    const c = { target: 'grpc-message' as const, description: method, method, messages: [bytes], loads: false };
    return runGrpcCase(client, authorization ? { ...c, authorization } : c, 5000);
  }

  const asIfWithout = (verdict: AccessVerdict): NetworkClass => authVerdict('none', verdict, FAILING).class;

  it('judges access from the answers: a call served with the token would be unauth-served, one without is denied, health is open', async () => {
    expect(await guarded.checkAccess()).toBeNull();
    const infer = JSON.stringify({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [0.1, 0.2, 0.3, 0.4] }],
    });
    // REST: the judge reads the status of each answer against the target it answered.
    const restServed = await judgeRest('POST', '/v2/models/probe/infer', infer, bearer());
    expect(restServed.class).toBe('answered');
    expect(restServed.access!.served).toHaveLength(1);
    expect(asIfWithout(restServed)).toBe('unauth-served');
    const restDenied = await judgeRest('POST', '/v2/models/probe/infer', infer);
    expect(restDenied.access).toEqual({ served: [], denied: 1 });
    expect(asIfWithout(restDenied)).toBe('denied');
    const health = await judgeRest('GET', '/v2/health/ready', '');
    expect(health.class).toBe('answered');
    expect(health.access).toEqual({ served: [], denied: 0 });
    expect(asIfWithout(health)).toBe('answered');
    // A model's readiness is health too, but not open: it needs the token.
    expect((await judgeRest('GET', '/v2/models/probe/ready', '')).access!.denied).toBe(1);

    // gRPC through @grpc/grpc-js: the status and the answer messages.
    const client = new grpc.Client(
      `${guarded.address.host}:${guarded.address.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    try {
      const metadata = ['ModelMetadata', 'ModelMetadataRequest', { name: 'probe' }] as const;
      expect(asIfWithout(await judgeGrpc(client, ...metadata, bearer()))).toBe('unauth-served');
      expect(asIfWithout(await judgeGrpc(client, ...metadata))).toBe('denied');
      const ready = await judgeGrpc(client, 'ServerReady', 'ServerReadyRequest', {});
      expect(ready.class).toBe('answered');
      expect(asIfWithout(ready)).toBe('answered');
      expect(asIfWithout(await judgeGrpc(client, 'ModelReady', 'ModelReadyRequest', { name: 'probe' }))).toBe('denied');
    } finally {
      client.close();
    }

    // HTTP/2 from node:http2, and raw frames whose answer is read by the fuzzer's own HPACK decoder.
    const port = guarded.address.grpcPort;
    expect(asIfWithout(await runH2GrpcCase(port, validH2GrpcCase(bearer()), 5000))).toBe('unauth-served');
    expect(asIfWithout(await runH2GrpcCase(port, validH2GrpcCase(), 5000))).toBe('denied');
    for (const [authorization, served, denied] of [
      [bearer(), 1, 0],
      [undefined, 0, 1],
    ] as const) {
      const answer = await exchange(guarded.address.host, port, [validH2Conversation(authorization)], {
        deadlineMs: 5000,
        halfClose: false,
        complete: h2ConversationOver,
      });
      const seen = h2FramesAccess(answer.received);
      expect(seen.served).toHaveLength(served);
      expect(seen.denied).toBe(denied);
    }
  });

  /** A seeded network run against the guarded server, with the token on every request or on none. */
  async function authRun(auth: 'valid' | 'none') {
    const findings = new FindingsWriter(join(FINDINGS, `network-auth-${auth}`));
    const result = await runNetworkFuzz({
      seed: SEED,
      cases: AUTH_NETWORK_CASES,
      timeLimitMs: 600_000,
      deadlineMs: 5000,
      findings,
      server: guarded,
      auth,
    });
    return { findings, result };
  }

  it(`network with the token: ${AUTH_NETWORK_CASES} cases pass as without access control`, async () => {
    const { findings, result } = await authRun('valid');
    expect(result.cases).toBe(AUTH_NETWORK_CASES);
    expect(failing(findings, ['crash', 'hang', 'uncoded', 'wrong-output', 'unauth-served'], 'valid')).toEqual([]);
    expect(findings.findings.filter((f) => f.class === 'grpc-js').every((f) => f.target === 'h2-grpc')).toBe(true);
    const tally = counts(result.tally, ['answered', 'refused', 'denied']);
    expect(tally.answered).toBeGreaterThan(AUTH_NETWORK_CASES / 10);
    expect(tally.refused).toBeGreaterThan(AUTH_NETWORK_CASES / 3);
    // The token is a header no mutation edits: only raw HTTP/2 framing broken around it can lose it.
    expect(tally.denied).toBe(result.tally.count('denied', 'h2-frames'));
  });

  it(`network without the token: ${AUTH_NETWORK_CASES} cases, every call outside server health refused`, async () => {
    const { findings, result } = await authRun('none');
    expect(result.cases).toBe(AUTH_NETWORK_CASES);
    expect(failing(findings, ['unauth-served'], 'none')).toEqual([]);
    expect(result.tally.count('unauth-served')).toBe(0);
    expect(failing(findings, ['crash', 'hang', 'uncoded', 'wrong-output'], 'none')).toEqual([]);
    expect(findings.findings.filter((f) => f.class === 'grpc-js').every((f) => f.target === 'h2-grpc')).toBe(true);
    // Not vacuous: the server routed many of the cases and refused them for their credentials
    // (HTTP 401, gRPC UNAUTHENTICATED), over REST and over gRPC.
    expect(result.tally.count('denied')).toBeGreaterThan(AUTH_NETWORK_CASES / 4);
    expect(result.tally.count('denied', 'rest-body')).toBeGreaterThan(0);
    expect(result.tally.count('denied', 'grpc-message')).toBeGreaterThan(0);
  });
});
