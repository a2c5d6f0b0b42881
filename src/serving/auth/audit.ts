/**
 * The audit trail: one JSON line per administrative action (load, unload, update, and what later
 * issues add) and per refused credential, with who, what, which model, the result and when;
 * inference only as counts per identity and model, flushed every minute, never a payload. It is a
 * pino logger on its own destination, so it never mixes with the service log.
 */
import { pino, type Logger } from 'pino';

/** Who made a call, as the audit trail names them. */
export interface AuditCaller {
  /** 'token:<id>', 'certificate:<subject>', or 'anonymous' when access control is off. */
  identity: string | null;
  /** The identity's label. */
  name?: string;
  /** The client's address. */
  peer: string;
  transport: 'grpc' | 'rest' | 'metrics';
}

/** An administrative call and how it ended ('ok' or the error code). */
export interface AuditAction extends AuditCaller {
  action: string;
  model?: string;
  result: string;
}

/** A refused call: no or bad credentials, a scope or model not granted, or a rate limit. */
export interface AuditDenial extends AuditCaller {
  action: string;
  /** Why, in the server's words (the client only hears the error kind). */
  reason: string;
  code: string;
}

interface Counts {
  requests: number;
  failures: number;
}

/** The audit log; `AuditLog.toFile` writes it to a file only its owner can read. */
export class AuditLog {
  private counts = new Map<string, Counts>();
  private since = new Date();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly log: Logger,
    flushMs = 60_000,
    /** The file destination, ended (every buffered line written) on close. */
    private readonly destination?: ReturnType<typeof pino.destination>,
  ) {
    this.timer = setInterval(() => this.flushCounts(), flushMs);
    this.timer.unref();
  }

  /** An audit log appended to `path` (created 0600). */
  static toFile(path: string, flushMs?: number): AuditLog {
    const destination = pino.destination({ dest: path, sync: false, mkdir: true, mode: 0o600 });
    return new AuditLog(
      pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination),
      flushMs,
      destination,
    );
  }

  /** Records an administrative action and its result. */
  action(entry: AuditAction): void {
    this.log.info({ event: 'action', ...entry });
  }

  /** Records a refused call. */
  denied(entry: AuditDenial): void {
    this.log.warn({ event: 'denied', ...entry });
  }

  /** Counts one inference request of `identity` on `model`. */
  inference(identity: string, model: string, ok: boolean): void {
    const key = `${identity}\u0000${model}`;
    let counts = this.counts.get(key);
    if (!counts) this.counts.set(key, (counts = { requests: 0, failures: 0 }));
    counts.requests++;
    if (!ok) counts.failures++;
  }

  /** Writes the inference counts gathered since the last flush (one line per identity and model). */
  flushCounts(): void {
    const until = new Date();
    for (const [key, counts] of this.counts) {
      const [identity, model] = key.split('\u0000');
      this.log.info({
        event: 'inference',
        identity,
        model,
        ...counts,
        since: this.since.toISOString(),
        until: until.toISOString(),
      });
    }
    this.counts = new Map();
    this.since = until;
  }

  /** Flushes the counts and the destination, and stops the timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.flushCounts();
    // A flush callback can come while a write is still in progress, before the lines queued
    // behind it (the last counts) reach the file; ending the destination writes them all first.
    const destination = this.destination;
    if (destination)
      await new Promise<void>((done) => {
        destination.once('close', () => done());
        destination.end();
      });
    else await new Promise<void>((done) => this.log.flush(() => done()));
  }
}
