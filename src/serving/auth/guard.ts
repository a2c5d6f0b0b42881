/**
 * The access decision both transports ask before a call reaches its handler: who is calling
 * (a bearer token, or a verified client certificate mapped in the token file) and whether that
 * identity's scopes and models cover the call. Refusals name no model and say nothing of what
 * exists: a missing or bad credential is MAAS_ERR_UNAUTHENTICATED, a good one that does not
 * cover the call MAAS_ERR_PERMISSION_DENIED.
 */
import { MaasError } from '../../core/errors.js';
import type { TokenStore } from './token-store.js';
import { permits, type Identity, type Refusal, type Scope } from './tokens.js';

/** What a transport hands the guard: the credentials it found on the call. */
export interface Credentials {
  /** The token from `Authorization: Bearer <token>` (REST) or `authorization` metadata (gRPC). */
  bearer?: string;
  /** The subject of a client certificate the TLS layer verified. */
  certificateSubject?: string;
}

/** The outcome the audit trail and the metrics want, beyond allow or refuse. */
export interface Decision {
  identity: Identity | null;
  /** Why an unauthenticated call was refused (never sent to the client). */
  refusal?: Refusal | 'missing';
}

/** Access control settings: the token store, and whether health calls need no credentials. */
export interface GuardOptions {
  tokens: TokenStore;
  /** Health endpoints (live, ready) answer without credentials (for Kubernetes probes); default true. */
  openHealth?: boolean;
}

/** A call that reads or changes every model (the repository index, statistics of all models). */
export const ALL_MODELS = Symbol('all models');

/** Reads `Authorization: Bearer <token>` (case-insensitive scheme); anything else is no token. */
export function bearerOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ ]+([^ ]{1,512})$/i.exec(header.trim());
  return match?.[1];
}

export class AccessGuard {
  private readonly openHealth: boolean;

  constructor(private readonly options: GuardOptions) {
    this.openHealth = options.openHealth ?? true;
  }

  /**
   * Allows the call or throws the coded refusal. `model` is the model the call names, ALL_MODELS
   * for a call over every model (only identities without a model list may make it), or absent
   * for a server-wide call. Resolves with the identity (null for an open health call).
   */
  async check(credentials: Credentials, scope: Scope, model?: string | typeof ALL_MODELS): Promise<Identity | null> {
    if (scope === 'health' && this.openHealth) return null;
    const decision = await this.identify(credentials);
    if (!decision.identity) throw new MaasError('MAAS_ERR_UNAUTHENTICATED', 'Missing or invalid credentials');
    const allowed =
      model === ALL_MODELS
        ? decision.identity.models === null && permits(decision.identity, scope)
        : permits(decision.identity, scope, model);
    if (!allowed)
      throw new MaasError('MAAS_ERR_PERMISSION_DENIED', `The credentials do not allow this call (scope ${scope})`);
    return decision.identity;
  }

  /** Who the credentials stand for: a token first, else a mapped certificate. */
  async identify(credentials: Credentials): Promise<Decision> {
    const verifier = this.options.tokens.verifier;
    if (credentials.bearer !== undefined) {
      const outcome = await verifier.verify(credentials.bearer);
      return typeof outcome === 'string' ? { identity: null, refusal: outcome } : { identity: outcome };
    }
    if (credentials.certificateSubject !== undefined) {
      const identity = verifier.certificate(credentials.certificateSubject);
      return identity ? { identity } : { identity: null, refusal: 'unknown' };
    }
    return { identity: null, refusal: 'missing' };
  }
}
