/**
 * The fuzzer's handle on the server under fuzz: starts the target child, knows its ports, tells
 * whether it is still alive, and probes it with known-good inferences over gRPC and REST (real
 * clients) whose outputs must match the model's. Started with `tokens`, the target serves under
 * access control and the probes carry its admin token.
 */
import { GrpcInferenceClient, HttpInferenceClient } from '../../src/client/index.js';
import { InferenceServerError, type InferResult } from '../../src/client/types.js';
import { messageOf } from '../../src/core/errors.js';
import { TsChild, describeExit, type ChildExit } from '../process.js';
import { UNAUTHENTICATED_CODE } from './auth.js';
import { PROBE_INPUT, PROBE_MODEL, PROBE_WIDTH, type TargetReady } from './models.js';

/** Where a case sends its bytes. */
export interface TargetAddress {
  host: string;
  grpcPort: number;
  httpPort: number;
}

/** What a probe found: nothing wrong, or a hang or a wrong answer with why. */
export type ProbeResult = { ok: true } | { ok: false; class: 'hang' | 'wrong-output'; detail: string };

/** Outputs within this of the model's own (a batch of other size may sum in another order). */
const PROBE_TOLERANCE = 1e-5;

/** How the target is started. */
export interface TargetOptions {
  /** Serve under access control: a token file with one admin token (default: no token file). */
  tokens?: boolean;
}

/** The running target: its child process, address and clients. */
export class TargetServer {
  private child: TsChild | null = null;
  private ready: TargetReady | null = null;
  private grpc: GrpcInferenceClient | null = null;
  private http: HttpInferenceClient | null = null;
  /** How many times the target was started (a restart follows every crash, hang or wrong answer). */
  starts = 0;

  constructor(
    private readonly deadlineMs: number,
    readonly options: TargetOptions = {},
  ) {}

  async start(): Promise<void> {
    this.child = new TsChild(new URL('./target.ts', import.meta.url), {
      args: this.options.tokens ? ['--tokens'] : [],
    });
    this.ready = await this.child.firstMessage<TargetReady>(120_000);
    if (this.options.tokens && this.ready.token === undefined) throw new Error('the target reported no token');
    const token = this.ready.token === undefined ? {} : { token: this.ready.token };
    this.grpc = new GrpcInferenceClient(`127.0.0.1:${this.ready.grpcPort}`, token);
    this.http = new HttpInferenceClient(`http://127.0.0.1:${this.ready.httpPort}`, token);
    this.starts++;
  }

  get address(): TargetAddress {
    return { host: '127.0.0.1', grpcPort: this.ready!.grpcPort, httpPort: this.ready!.httpPort };
  }

  /** The admin token of a target started with `tokens` (a new one after each restart). */
  get token(): string | undefined {
    return this.ready?.token;
  }

  /**
   * Whether access control is in force, checked with clients that carry no token: server
   * readiness answers over gRPC and REST, and the probe's inference is refused over both (gRPC
   * UNAUTHENTICATED with its maas code, REST 401). Null when so, else what was wrong.
   */
  async checkAccess(): Promise<string | null> {
    const grpc = new GrpcInferenceClient(`127.0.0.1:${this.ready!.grpcPort}`);
    const http = new HttpInferenceClient(`http://127.0.0.1:${this.ready!.httpPort}`);
    const request = {
      model: PROBE_MODEL,
      inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [2, PROBE_WIDTH], data: PROBE_INPUT }],
      timeoutMs: this.deadlineMs,
    };
    try {
      for (const [transport, client, status] of [
        ['gRPC', grpc, 16],
        ['REST', http, 401],
      ] as const) {
        try {
          if (!(await client.serverReady())) return `${transport} server readiness without a token: not ready`;
        } catch (error) {
          return `${transport} server readiness without a token was refused: ${messageOf(error)}`;
        }
        try {
          await client.infer(request);
          return `${transport} inference without a token was served`;
        } catch (error) {
          if (!(error instanceof InferenceServerError) || error.status !== status)
            return `${transport} inference without a token: expected status ${status} but received ${messageOf(error)}`;
          if (transport === 'gRPC' && error.code !== UNAUTHENTICATED_CODE)
            return `gRPC inference without a token: expected ${UNAUTHENTICATED_CODE} but received ${error.code ?? 'no maas code'}`;
        }
      }
      return null;
    } finally {
      grpc.close();
      await http.close();
    }
  }

  /** How the target ended, or null while it runs. */
  get exit(): ChildExit | null {
    return this.child?.exit ?? null;
  }

  /** "signal SIGSEGV: <stderr tail>", for a crash finding. */
  describeCrash(): string {
    const exit = this.exit!;
    return `${describeExit(exit)}: ${exit.stderr.trim().split('\n').slice(-6).join(' | ')}`;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    this.grpc?.close();
    this.grpc = null;
    await this.child?.stop();
  }

  /** A known-good inference over gRPC, then over REST: both must answer the model's output in time. */
  async probe(): Promise<ProbeResult> {
    const request = {
      model: PROBE_MODEL,
      inputs: [{ name: 'input', datatype: 'FP32', shape: [2, PROBE_WIDTH], data: PROBE_INPUT }],
      timeoutMs: this.deadlineMs,
    };
    for (const [transport, client] of [
      ['gRPC', this.grpc!],
      ['REST', this.http!],
    ] as const) {
      let result: InferResult;
      try {
        result = await client.infer(request);
      } catch (error) {
        if (this.exit) return { ok: false, class: 'hang', detail: `the server died: ${this.describeCrash()}` };
        const timedOut = /deadline|timeout|aborted/i.test(messageOf(error));
        return {
          ok: false,
          class: timedOut ? 'hang' : 'wrong-output',
          detail: `${transport} probe ${timedOut ? 'got no answer' : 'failed'}: ${messageOf(error)}`,
        };
      }
      const wrong = this.compare(result);
      if (wrong) return { ok: false, class: 'wrong-output', detail: `${transport} probe: ${wrong}` };
    }
    return { ok: true };
  }

  private compare(result: InferResult): string | null {
    const expected = this.ready!.expected;
    const got = result.outputs[0]?.data as ArrayLike<number> | undefined;
    if (!got || got.length !== expected.length)
      return `expected ${expected.length} outputs but received ${got?.length ?? 'none'}`;
    for (let i = 0; i < expected.length; i++) {
      if (!(Math.abs(got[i]! - expected[i]!) <= PROBE_TOLERANCE))
        return `output ${i} is ${got[i]} but the model gives ${expected[i]}`;
    }
    return null;
  }
}
