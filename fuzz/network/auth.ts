/**
 * The network phase under access control (`--auth valid|none`): the server runs with a token
 * file holding one admin token; in `valid` mode every case carries it, in `none` mode none
 * does, and every call the server routes anywhere but its open health endpoints must then be
 * refused. Whether a call was served is read off what came back (an HTTP status, a gRPC status,
 * response messages), never guessed from the case.
 */
import type { NetworkClass, Verdict } from '../report.js';

export const AUTH_MODES = ['valid', 'none'] as const;
/** valid: every request carries the token; none: none does. */
export type AuthMode = (typeof AUTH_MODES)[number];

/** The gRPC service's path prefix. */
export const GRPC_SERVICE = '/inference.GRPCInferenceService/';

/** The RPCs that answer without credentials (server health, `openHealth`). */
export const OPEN_RPCS: ReadonlySet<string> = new Set(['ServerLive', 'ServerReady']);

/** The REST routes that answer without credentials (server health; a model's readiness is not open). */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/v2/health/live', '/v2/health/ready']);

/** The maas code of a refusal for missing or bad credentials. */
export const UNAUTHENTICATED_CODE = 'MAAS_ERR_UNAUTHENTICATED';

/**
 * Whether a REST request target is an open health route, as the server routes it: the target
 * up to its query is exactly /v2/health/live or /v2/health/ready. Anything else (an absolute
 * form, a fragment, a dot segment) is routed elsewhere or nowhere, so a 2xx for it is a call served.
 */
export function isOpenRestTarget(target: string | undefined): boolean {
  return target !== undefined && OPEN_PATHS.has(target.split('?')[0]!);
}

/** Whether an HTTP/2 :path names an open RPC exactly. */
export function isOpenGrpcPath(path: string | undefined): boolean {
  return path !== undefined && path.startsWith(GRPC_SERVICE) && OPEN_RPCS.has(path.slice(GRPC_SERVICE.length));
}

/** What a case's answers show about access control. */
export interface AccessSeen {
  /** Calls outside the open health endpoints that were served: a 2xx, a gRPC OK or a response message. */
  served: string[];
  /** Answers refusing the call for its credentials: HTTP 401, or gRPC UNAUTHENTICATED with its maas code. */
  denied: number;
  /** A credentials refusal without its maas code (gRPC UNAUTHENTICATED without maas-error-code). */
  uncoded?: string;
}

/** Nothing seen: no answer served, none refused for credentials. */
export function noAccessSeen(): AccessSeen {
  return { served: [], denied: 0 };
}

/** A verdict with what its answers showed about access control. */
export type AccessVerdict = Verdict<NetworkClass> & { access?: AccessSeen };

/**
 * The case's class under access control. `none`: any call served is `unauth-served` (a failure
 * before every other); otherwise a failure stays one; otherwise a credentials refusal is
 * `denied`. `valid`: the same without the first rule (a `denied` there means the token was lost
 * on the way, by a case that broke the framing around it).
 */
export function authVerdict(mode: AuthMode, verdict: AccessVerdict, failing: ReadonlySet<string>): AccessVerdict {
  const seen = verdict.access;
  if (!seen) return verdict;
  if (mode === 'none' && seen.served.length > 0)
    return { class: 'unauth-served', detail: `served without credentials: ${seen.served.join('; ')}`, access: seen };
  if (seen.uncoded && !failing.has(verdict.class)) return { class: 'uncoded', detail: seen.uncoded, access: seen };
  if (failing.has(verdict.class)) return verdict;
  if (seen.denied > 0) return { ...verdict, class: 'denied' };
  return verdict;
}
