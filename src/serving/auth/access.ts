/**
 * Access control, the one decision both transports ask before a call reaches its handler: who is
 * calling (a bearer token, a token in the configured header, or a verified client certificate
 * the token file maps), whether that identity's scopes and models cover the call, and whether
 * the caller is within its rate limits. Refusals name no model and say nothing of what exists:
 * a missing or bad credential is MAAS_ERR_UNAUTHENTICATED, a good one that does not cover the
 * call MAAS_ERR_PERMISSION_DENIED, a caller over its limits MAAS_ERR_RATE_LIMITED. Every refusal,
 * and every administrative call, goes to the audit trail.
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { MaasError } from '../../core/errors.js';
import type { AuditLog } from './audit.js';
import { RateLimiter, type RateLimits, type Release } from './rate-limit.js';
import type { TokenStore } from './token-store.js';
import { permits, SCOPES, type Identity, type Scope } from './tokens.js';

/** What a transport found on the call. */
export interface Credentials {
  /** The token from `Authorization: Bearer <token>` (REST), `authorization` metadata (gRPC), or the token header. */
  bearer?: string;
  /** The subject of a client certificate the TLS layer verified, as X509Certificate prints it. */
  certificateSubject?: string;
}

/** One call as a transport sees it. */
export interface CallInfo {
  /** The endpoint the call came in on. */
  transport: 'grpc' | 'rest' | 'metrics';
  /** The client's address. */
  peer: string;
  /** The RPC name or the route ('POST /v2/models/{name}/infer'). */
  action: string;
  /** What the call carried. */
  credentials: Credentials;
}

/** A call that passed authentication: who made it, for the next checks and the audit trail. */
export interface Caller extends CallInfo {
  /** Who it is: a token's or certificate's identity, or ANONYMOUS with access control off. */
  identity: Identity;
}

/** A call that reads or changes every model (the repository index, statistics of all models). */
export const ALL_MODELS = Symbol('all models');

/** Access settings: all optional; with no token store every caller is ANONYMOUS. */
export interface AccessOptions {
  /** The tokens (and certificate grants) in force; absent: no authentication. */
  tokens?: TokenStore;
  /** Server health (live, ready) answers without credentials, for Kubernetes probes (default true). */
  openHealth?: boolean;
  /** /metrics answers without credentials (default false once tokens are configured). */
  openMetrics?: boolean;
  /** Per-caller rate and concurrency limits (default none). */
  limits?: RateLimits;
  /** Wrong secrets of known tokens (each costs a hash) one address may present per second before its next guesses are refused unchecked (default 5/s, burst 20). */
  failureLimits?: RateLimits;
  /** The audit trail (default none). */
  audit?: AuditLog;
}

/** The identity of every call when access control is off: every scope, every model. */
export const ANONYMOUS: Identity = Object.freeze({
  id: 'anonymous',
  name: 'anonymous',
  scopes: new Set(SCOPES),
  models: null,
});

const NO_RELEASE: Release = () => {};

/** Scopes whose calls are written to the audit trail one by one. */
const ADMINISTRATIVE: ReadonlySet<Scope> = new Set(['repository', 'update', 'admin']);

/** Reads `Authorization: Bearer <token>` (case-insensitive scheme); anything else is no token. */
export function bearerOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ ]+([^ ]{1,512})$/i.exec(header.trim());
  return match?.[1];
}

/** Subjects of client certificates seen, by SHA-256 fingerprint: parsed once, not per request. */
const subjects = new Map<string, string>();
const MAX_SUBJECTS = 1024;

/** A verified client certificate's subject, as X509Certificate prints it (one 'K=V' per line). */
function subjectOf(certificate: PeerCertificate): string {
  let subject = subjects.get(certificate.fingerprint256);
  if (subject === undefined) {
    subject = new X509Certificate(certificate.raw).subject;
    if (subjects.size >= MAX_SUBJECTS) subjects.clear();
    subjects.set(certificate.fingerprint256, subject);
  }
  return subject;
}

/**
 * The credentials of a call, the same rule on both transports: `Authorization: Bearer`, else a
 * bare token in the configured header (at most 512 characters, like a bearer token), else the
 * client certificate TLS verified (`certificate` is asked only when no token came, and must
 * answer undefined unless the socket is authorized).
 */
export function credentialsOf(
  authorization: unknown,
  tokenHeader: unknown,
  certificate: () => PeerCertificate | undefined,
): Credentials {
  const bearer =
    bearerOf(typeof authorization === 'string' ? authorization : undefined) ??
    (typeof tokenHeader === 'string' && tokenHeader.length > 0 && tokenHeader.length <= 512 ? tokenHeader : undefined);
  if (bearer !== undefined) return { bearer };
  const verified = certificate();
  return verified?.raw ? { certificateSubject: subjectOf(verified) } : {};
}

/** Whether a scope's calls go to the audit trail one by one. */
export function isAdministrative(scope: Scope): boolean {
  return ADMINISTRATIVE.has(scope);
}

/** The access decision of one server: who calls, what they may do, how often; serve() makes one from its options. */
export class AccessControl {
  /** Whether calls must carry credentials. */
  readonly enabled: boolean;
  /** Server live/ready answer without credentials. */
  readonly openHealth: boolean;
  /** /metrics answers without credentials. */
  readonly openMetrics: boolean;
  /** The audit trail, when one is configured. */
  readonly audit: AuditLog | undefined;
  private readonly limiter: RateLimiter;
  private readonly failures: RateLimiter;

  constructor(private readonly options: AccessOptions = {}) {
    this.enabled = options.tokens !== undefined;
    this.openHealth = options.openHealth ?? true;
    this.openMetrics = options.openMetrics ?? !this.enabled;
    this.audit = options.audit;
    this.limiter = new RateLimiter(options.limits ?? {});
    this.failures = new RateLimiter(options.failureLimits ?? { ratePerSecond: 5, burst: 20 });
  }

  /** Whether calls need to pass through at all: credentials, limits or an audit trail are configured. */
  get active(): boolean {
    return this.enabled || this.limiter.active || this.audit !== undefined;
  }

  /** Whether a call of `scope` passes without credentials (server health, metrics when open). */
  isOpen(scope: Scope | 'metrics', namesModel: boolean): boolean {
    if (!this.enabled) return false;
    if (scope === 'metrics') return this.openMetrics;
    return scope === 'health' && !namesModel && this.openHealth;
  }

  /**
   * Who makes the call: its identity (ANONYMOUS with access control off), or the coded refusal,
   * decided at once (returned, or thrown) unless a token new to the server must be hashed.
   * An address that keeps presenting bad credentials is refused without checking them, so a
   * flood of guesses cannot keep the hash function busy.
   */
  authenticate(call: CallInfo): Caller | Promise<Caller> {
    if (!this.enabled) return this.caller(call, ANONYMOUS);
    const verifier = this.options.tokens!.verifier;
    const { bearer, certificateSubject } = call.credentials;
    if (bearer !== undefined) {
      // Only a guess that costs a hash is limited: a known token is remembered, and a malformed,
      // unknown, expired or revoked one is refused without hashing.
      const outcome = verifier.verify(bearer, Date.now(), () => this.refuseGuessing(call));
      if (!(outcome instanceof Promise)) return this.caller(call, outcome);
      return outcome.then((settled) => {
        if (settled === 'wrong secret') this.failures.tryTake(call.peer);
        return this.caller(call, settled);
      });
    }
    if (certificateSubject !== undefined)
      return this.caller(call, verifier.certificate(certificateSubject) ?? 'certificate not granted');
    return this.caller(call, 'missing');
  }

  /** The caller an outcome makes, or the audited refusal. */
  private caller(call: CallInfo, outcome: Identity | string): Caller {
    if (typeof outcome !== 'string')
      return {
        transport: call.transport,
        peer: call.peer,
        action: call.action,
        credentials: call.credentials,
        identity: outcome,
      };
    this.deny(call, null, outcome, 'MAAS_ERR_UNAUTHENTICATED');
    throw new MaasError('MAAS_ERR_UNAUTHENTICATED', 'Missing or invalid credentials');
  }

  /** Refuses, before hashing, a guess from an address that has made too many wrong ones. */
  private refuseGuessing(call: CallInfo): void {
    const waitMs = this.failures.refusalMs(call.peer);
    if (waitMs === 0) return;
    this.deny(call, null, 'too many failed authentications', 'MAAS_ERR_RATE_LIMITED');
    throw new MaasError('MAAS_ERR_RATE_LIMITED', 'Too many failed authentications from this address', {
      retryAfterMs: waitMs,
    });
  }

  /**
   * Throws MAAS_ERR_PERMISSION_DENIED unless the caller may make a `scope` call on `model`
   * (ALL_MODELS: a call over every model, for identities without a model list; absent: a
   * server-wide call).
   */
  authorize(caller: Caller, scope: Scope, model?: string | typeof ALL_MODELS): void {
    const { identity } = caller;
    const allowed =
      model === ALL_MODELS ? identity.models === null && permits(identity, scope) : permits(identity, scope, model);
    if (allowed) return;
    const reason = !permits(identity, scope)
      ? `scope ${scope} not granted`
      : model === ALL_MODELS
        ? 'limited to some models, the call covers every model'
        : 'model not granted';
    this.deny(caller, caller.identity, reason, 'MAAS_ERR_PERMISSION_DENIED', model);
    throw new MaasError('MAAS_ERR_PERMISSION_DENIED', `The credentials do not allow this call (scope ${scope})`);
  }

  /** authenticate() then authorize(): the whole decision for a call that names its model up front. */
  async check(call: CallInfo, scope: Scope, model?: string | typeof ALL_MODELS): Promise<Caller> {
    const caller = await this.authenticate(call);
    this.authorize(caller, scope, model);
    return caller;
  }

  /** Admits one request of the caller under the rate and concurrency limits; release() when it ends. */
  admit(caller: Caller): Release {
    // Without limits there is nothing to count: no bucket per caller, no release to allocate.
    if (!this.limiter.active) return NO_RELEASE;
    try {
      return this.limiter.admit(this.keyOf(caller));
    } catch (error) {
      this.deny(caller, caller.identity, 'rate limit', 'MAAS_ERR_RATE_LIMITED');
      throw error;
    }
  }

  /** Counts one more request of an admitted stream against the caller's rate. */
  take(caller: Caller): void {
    if (!this.limiter.active) return;
    try {
      this.limiter.take(this.keyOf(caller));
    } catch (error) {
      this.deny(caller, caller.identity, 'rate limit', 'MAAS_ERR_RATE_LIMITED');
      throw error;
    }
  }

  /** Records how a call ended: administrative calls one by one, inference as counts. */
  record(caller: Caller, scope: Scope, model: string | undefined, result: string): void {
    const audit = this.audit;
    if (!audit) return;
    if (ADMINISTRATIVE.has(scope)) {
      audit.action({
        identity: caller.identity.id,
        name: caller.identity.name,
        peer: caller.peer,
        transport: caller.transport,
        action: caller.action,
        ...(model !== undefined ? { model } : {}),
        result,
      });
    } else if (scope === 'infer' || scope === 'explain') {
      audit.inference(caller.identity.id, model ?? '', result === 'ok');
    }
  }

  /** Rate limits apply per identity, and per address to anonymous callers. */
  private keyOf(caller: Caller): string {
    return caller.identity === ANONYMOUS ? `address:${caller.peer}` : caller.identity.id;
  }

  private deny(
    call: CallInfo,
    identity: Identity | null,
    reason: string,
    code: string,
    model?: string | typeof ALL_MODELS,
  ): void {
    this.audit?.denied({
      identity: identity?.id ?? null,
      ...(identity ? { name: identity.name } : {}),
      peer: call.peer,
      transport: call.transport,
      action: call.action,
      ...(typeof model === 'string' ? { model } : {}),
      reason,
      code,
    });
  }
}
