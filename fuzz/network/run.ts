/**
 * The network phase: case i of seed s is drawn from its own random stream, sent to the server
 * under fuzz, and judged; then the server must still be alive and answer a known-good gRPC and
 * REST inference with the model's output. A crash, hang or wrong answer restarts the server so
 * that the next case starts clean.
 *
 * With `auth` the server has a token file: in `valid` mode every case carries its admin token
 * and the run is judged as without one; in `none` mode no case carries it, and every answer that
 * served a call outside the open health endpoints is an `unauth-served` failure.
 */
import * as grpc from '@grpc/grpc-js';
import { Rng } from '../random.js';
import {
  AUTH_NETWORK_CLASSES,
  FAILING,
  NETWORK_CLASSES,
  Tally,
  printable,
  type FindingsWriter,
  type NetworkClass,
} from '../report.js';
import { authVerdict, type AccessVerdict, type AuthMode } from './auth.js';
import { grpcMessageCase, runGrpcCase, type GrpcCase } from './grpc.js';
import { judgeHttp, parseResponses } from './http1.js';
import {
  h2ConversationOver,
  h2Ending,
  h2FramesAccess,
  h2FramesCase,
  h2GrpcCase,
  runH2GrpcCase,
  type H2FramesCase,
  type H2GrpcCase,
} from './http2.js';
import { restBodyCase, restHeaderCase, restUrlCase, type RestCase } from './rest.js';
import { TargetServer, type TargetAddress } from './server.js';
import { exchange } from './socket.js';

/**
 * How long a raw HTTP/2 connection is watched for its end: the valid conversation is answered
 * in milliseconds, and a connection waiting for bytes that never come is the server's right.
 */
const H2_LINGER_MS = 300;

/** A model load reads, packs and warms a model up in a thread of its own: seconds on a busy machine. */
const LOAD_DEADLINE_MS = 30_000;

/** Any network case. */
export type NetworkCase = RestCase | GrpcCase | H2FramesCase | H2GrpcCase;

/** How often each target is drawn; each request of a case carries `authorization` when given. */
const TARGETS: readonly (readonly [(rng: Rng, authorization?: string) => NetworkCase, number])[] = [
  [h2FramesCase, 2],
  [h2GrpcCase, 1],
  [grpcMessageCase, 3],
  [restBodyCase, 3],
  [restUrlCase, 2],
  [restHeaderCase, 2],
];

/**
 * Case `index` of the run seeded `seed`; its requests carry `authorization` (an
 * `Authorization` header value) when given, which draws nothing from the case's stream: the
 * case is the same with and without it, but for the header.
 */
export function networkCase(seed: number, index: number, authorization?: string): NetworkCase {
  const rng = Rng.forCase(seed, 'network', index);
  return rng.weighted(TARGETS)(rng, authorization);
}

/** The bytes a finding keeps, to look at and to replay by hand. */
function caseBytes(c: NetworkCase): Buffer | Map<string, Buffer> {
  switch (c.target) {
    case 'h2-frames':
      return c.bytes;
    case 'grpc-message':
      return new Map([
        ['method.txt', Buffer.from(c.method)],
        ...c.messages.map((m, i) => [`message-${i}.bin`, m] as [string, Buffer]),
      ]);
    case 'h2-grpc':
      return new Map([
        ['headers.json', Buffer.from(JSON.stringify(c.headers, null, 2))],
        ['body.bin', c.body],
      ]);
    default:
      return Buffer.concat(c.chunks);
  }
}

async function runCase(
  c: NetworkCase,
  at: TargetAddress,
  client: grpc.Client,
  requestDeadlineMs: number,
  auth: AuthMode | undefined,
): Promise<AccessVerdict> {
  const deadlineMs = 'loads' in c && c.loads ? Math.max(requestDeadlineMs, LOAD_DEADLINE_MS) : requestDeadlineMs;
  switch (c.target) {
    case 'grpc-message':
      return runGrpcCase(client, c, deadlineMs);
    case 'h2-grpc':
      return runH2GrpcCase(at.grpcPort, c, deadlineMs);
    case 'h2-frames': {
      // Broken framing may be answered, refused with GOAWAY, or waited on (a frame declared
      // longer than what was sent); the probe that follows says whether the server still serves.
      const result = await exchange(at.host, at.grpcPort, [c.bytes], {
        deadlineMs: H2_LINGER_MS,
        halfClose: false,
        complete: h2ConversationOver,
      });
      const ending = result.timedOut ? 'held' : (h2Ending(result.received) ?? 'closed');
      if (!auth) return { class: ending };
      // Without a token a stream the server ended is refused, unless it was served (which the
      // access seen in its frames says); with one, the classes stay those of a run without auth.
      return {
        class: auth === 'none' && ending === 'answered' ? 'refused' : ending,
        access: h2FramesAccess(result.received),
      };
    }
    default: {
      // Node aborts a request whose client half-closes, so whole requests are sent without one
      // and must each be answered by the deadline.
      const result = await exchange(at.host, at.httpPort, c.chunks, {
        deadlineMs,
        halfClose: c.mayBeIncomplete === true,
        complete: (received) => parseResponses(received, c.methods, false).length >= c.methods.length,
      });
      return judgeHttp(result, c.methods, c.targets);
    }
  }
}

/** The network phase's settings. */
export interface NetworkOptions {
  seed: number;
  /** Cases to run (indices 0 … cases−1), unless `indices` names them. */
  cases: number;
  indices?: number[];
  /** No case starts after this many milliseconds. */
  timeLimitMs: number;
  /** A request that should be answered and is not by then hangs. */
  deadlineMs: number;
  findings?: FindingsWriter;
  log?: (line: string) => void;
  /** A server under fuzz the caller started (and stops); by default the phase starts its own. */
  server?: TargetServer;
  /**
   * Access control (default off: no token file): the server must have been started with
   * `tokens`; `valid` sends its admin token with every request, `none` sends none.
   */
  auth?: AuthMode;
}

/** What the network phase measured. */
export interface NetworkResult {
  tally: Tally<NetworkClass>;
  cases: number;
  stoppedByTime: boolean;
  /** Restarts after a crash, hang or wrong answer. */
  serverRestarts: number;
  wallMs: number;
}

/** Runs the network phase against a fresh server under fuzz. */
export async function runNetworkFuzz(options: NetworkOptions): Promise<NetworkResult> {
  const started = Date.now();
  const { auth } = options;
  const tally = new Tally<NetworkClass>(auth ? AUTH_NETWORK_CLASSES : NETWORK_CLASSES);
  if (auth && options.server && !options.server.options.tokens)
    throw new Error(`--auth ${auth} needs a server started with a token file`);
  const server = options.server ?? new TargetServer(options.deadlineMs, { tokens: auth !== undefined });
  if (!options.server) await server.start();
  const startsBefore = server.starts;
  // Under auth, a run means something only while access control is in force: checked at every start.
  const checkAccess = async () => {
    const problem = auth ? await server.checkAccess() : null;
    if (problem) throw new Error(`access control is not in force on the server under fuzz: ${problem}`);
  };
  await checkAccess();
  let client = grpcClient(server.address);
  const indices = options.indices ?? Array.from({ length: options.cases }, (_, i) => i);
  let ran = 0;
  let stoppedByTime = false;
  try {
    for (const index of indices) {
      if (Date.now() - started > options.timeLimitMs) {
        stoppedByTime = true;
        break;
      }
      const c = networkCase(options.seed, index, auth === 'valid' ? `Bearer ${server.token!}` : undefined);
      let verdict = await runCase(c, server.address, client, options.deadlineMs, auth);
      if (auth) verdict = authVerdict(auth, verdict, FAILING);
      if (!server.exit) {
        const probe = await server.probe();
        if (!probe.ok && !FAILING.has(verdict.class)) verdict = { class: probe.class, detail: probe.detail };
        else if (!probe.ok) verdict = { ...verdict, detail: `${verdict.detail ?? ''}; then ${probe.detail}` };
      }
      if (server.exit) verdict = { class: 'crash', detail: server.describeCrash() };
      tally.add(c.target, verdict.class);
      ran++;
      if (FAILING.has(verdict.class)) {
        options.log?.(
          printable(`network #${index} ${c.target} ${verdict.class}: ${c.description} → ${verdict.detail ?? ''}`),
        );
        await options.findings?.add(
          {
            phase: 'network',
            index,
            target: c.target,
            class: verdict.class,
            description: c.description,
            detail: verdict.detail ?? '',
          },
          caseBytes(c),
        );
      }
      // A crash, a hang or a wrong answer leaves the server suspect: the next case gets a new one.
      if (verdict.class === 'crash' || verdict.class === 'hang' || verdict.class === 'wrong-output') {
        client.close();
        await server.restart();
        await checkAccess();
        client = grpcClient(server.address);
      }
      if (ran % 500 === 0) options.log?.(`network: ${ran} cases, ${tally.failures} failing`);
    }
  } finally {
    client.close();
    if (!options.server) await server.stop();
  }
  return {
    tally,
    cases: ran,
    stoppedByTime,
    serverRestarts: server.starts - startsBefore,
    wallMs: Date.now() - started,
  };
}

function grpcClient(at: TargetAddress): grpc.Client {
  return new grpc.Client(`${at.host}:${at.grpcPort}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
  });
}
