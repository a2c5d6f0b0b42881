/**
 * API tokens: scoped, optionally limited to some models, stored only as salted scrypt hashes in a
 * token file that the server re-reads when it changes. A token reads `maas_<id>_<secret>`: the id
 * finds its record without trying every hash, the 256-bit secret is what the hash protects.
 *
 * scrypt comes from node:crypto (OpenSSL's, maintained with Node) rather than a package: the
 * issue asks for scrypt or argon2, and the built-in one needs no native download.
 */
import { hash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { MaasError, messageOf } from '../../core/errors.js';

/** What a token (or a client certificate) may do. `admin` implies every other scope, and every scope implies `health`. */
export const SCOPES = ['health', 'metadata', 'infer', 'explain', 'update', 'repository', 'admin'] as const;
/** One of SCOPES. */
export type Scope = (typeof SCOPES)[number];

/** scrypt's cost (N = 2^14, r = 8, p = 1: 16 MiB and tens of milliseconds per new token seen). */
export const DEFAULT_SCRYPT = { N: 16_384, r: 8, p: 1 } as const;

/** One token as the file stores it: never the secret, only its salted hash. */
export interface TokenRecord {
  id: string;
  /** A label for logs and the audit trail. */
  name: string;
  scopes: Scope[];
  /** The models it may touch (absent: every model). */
  models?: string[];
  /** ISO time after which it is refused (absent: never). */
  expires?: string;
  revoked?: boolean;
  created: string;
  salt: string;
  hash: string;
  scrypt: { N: number; r: number; p: number };
}

/** A client certificate's subject mapped to scopes, as a token would be. */
export interface CertificateGrant {
  /** The certificate subject as Node prints it, e.g. 'CN=reporting,O=example'. */
  subject: string;
  name?: string;
  scopes: Scope[];
  models?: string[];
}

/** The token file: JSON, `{ "version": 1, "tokens": [...], "certificates": [...] }`. */
export interface TokenFile {
  version: 1;
  tokens: TokenRecord[];
  certificates?: CertificateGrant[];
}

/** Who made a request, and what it may do. */
export interface Identity {
  /** 'token:<id>' or 'certificate:<subject>'. */
  readonly id: string;
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** null: every model. */
  readonly models: ReadonlySet<string> | null;
}

const TOKEN_PATTERN = /^maas_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const ID_PATTERN = /^[0-9a-f]{16}$/;
const MAX_TOKENS = 100_000;
/** Largest token file read (a record is a few hundred bytes). */
export const MAX_TOKEN_FILE_BYTES = 64 * 1024 * 1024;

function hashSecret(secret: string, salt: Buffer, cost: TokenRecord['scrypt']): Promise<Buffer> {
  const options: ScryptOptions = { N: cost.N, r: cost.r, p: cost.p, maxmem: 256 * cost.N * cost.r };
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, 32, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

/** What `maas token create` asks for. */
export interface NewToken {
  name: string;
  scopes: Scope[];
  models?: string[];
  /** Days until it expires (absent: never). */
  expiresInDays?: number;
}

/** Makes a token: the string to hand out once, and the record (hash only) to store. */
export async function createToken(
  request: NewToken,
  now = new Date(),
): Promise<{ token: string; record: TokenRecord }> {
  const scopes = checkScopes(request.scopes, 'scopes');
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const salt = randomBytes(16);
  const hash = await hashSecret(secret, salt, DEFAULT_SCRYPT);
  const record: TokenRecord = {
    id,
    name: request.name,
    scopes,
    ...(request.models ? { models: [...request.models] } : {}),
    ...(request.expiresInDays !== undefined
      ? { expires: new Date(now.getTime() + request.expiresInDays * 86_400_000).toISOString() }
      : {}),
    created: now.toISOString(),
    salt: salt.toString('base64'),
    hash: hash.toString('base64'),
    scrypt: { ...DEFAULT_SCRYPT },
  };
  return { token: `maas_${id}_${secret}`, record };
}

function tokenFileError(where: string, expected: string): MaasError {
  return new MaasError('MAAS_ERR_TOKEN_FILE', `The token file's ${where}: expected ${expected}`);
}

function checkScopes(value: unknown, where: string): Scope[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((s) => !SCOPES.includes(s as Scope)))
    throw tokenFileError(where, `a non-empty list of ${SCOPES.join(', ')}`);
  return [...new Set(value as Scope[])];
}

function checkModels(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((m) => typeof m !== 'string' || m.length === 0 || m.length > 256))
    throw tokenFileError(where, 'a list of model names');
  return value as string[];
}

/** Parses and checks a token file's text; every field is bounded before it is used. */
export function parseTokenFile(text: string): TokenFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MaasError('MAAS_ERR_TOKEN_FILE', `The token file is not JSON: ${messageOf(e)}`);
  }
  const file = raw as Partial<TokenFile> | null;
  if (typeof file !== 'object' || file === null || file.version !== 1) throw tokenFileError('version', '1');
  if (!Array.isArray(file.tokens) || file.tokens.length > MAX_TOKENS)
    throw tokenFileError('tokens', `a list of at most ${MAX_TOKENS} records`);
  const seen = new Set<string>();
  const tokens = file.tokens.map((t: Partial<TokenRecord>, i): TokenRecord => {
    const at = `tokens[${i}]`;
    if (typeof t !== 'object' || t === null) throw tokenFileError(at, 'an object');
    if (typeof t.id !== 'string' || !ID_PATTERN.test(t.id) || seen.has(t.id))
      throw tokenFileError(`${at}.id`, 'a unique id of 16 hex digits');
    seen.add(t.id);
    const cost = t.scrypt;
    if (
      typeof cost !== 'object' ||
      cost === null ||
      ![cost.N, cost.r, cost.p].every(Number.isInteger) ||
      cost.N < 1024 ||
      cost.N > 1_048_576 ||
      (cost.N & (cost.N - 1)) !== 0 ||
      cost.r < 1 ||
      cost.r > 32 ||
      cost.p < 1 ||
      cost.p > 16
    )
      throw tokenFileError(`${at}.scrypt`, '{N: a power of two in [2^10, 2^20], r in [1, 32], p in [1, 16]}');
    if (typeof t.salt !== 'string' || Buffer.from(t.salt, 'base64').length < 16)
      throw tokenFileError(`${at}.salt`, 'at least 16 bytes in base64');
    if (typeof t.hash !== 'string' || Buffer.from(t.hash, 'base64').length !== 32)
      throw tokenFileError(`${at}.hash`, '32 bytes in base64');
    if (t.expires !== undefined && (typeof t.expires !== 'string' || Number.isNaN(Date.parse(t.expires))))
      throw tokenFileError(`${at}.expires`, 'an ISO time');
    const models = checkModels(t.models, `${at}.models`);
    return {
      id: t.id,
      name: typeof t.name === 'string' ? t.name.slice(0, 256) : t.id,
      scopes: checkScopes(t.scopes, `${at}.scopes`),
      ...(models ? { models } : {}),
      ...(t.expires !== undefined ? { expires: t.expires } : {}),
      revoked: t.revoked === true,
      created: typeof t.created === 'string' ? t.created : '',
      salt: t.salt,
      hash: t.hash,
      scrypt: { N: cost.N, r: cost.r, p: cost.p },
    };
  });
  const certificates = (file.certificates ?? []).map((c: Partial<CertificateGrant>, i): CertificateGrant => {
    const at = `certificates[${i}]`;
    if (typeof c !== 'object' || c === null || typeof c.subject !== 'string' || c.subject.length === 0)
      throw tokenFileError(`${at}.subject`, 'a certificate subject');
    const models = checkModels(c.models, `${at}.models`);
    return {
      subject: c.subject,
      name: typeof c.name === 'string' ? c.name : c.subject,
      scopes: checkScopes(c.scopes, `${at}.scopes`),
      ...(models ? { models } : {}),
    };
  });
  return { version: 1, tokens, certificates };
}

function identityOf(record: TokenRecord): Identity {
  return {
    id: `token:${record.id}`,
    name: record.name,
    scopes: new Set(record.scopes),
    models: record.models ? new Set(record.models) : null,
  };
}

/** Why a token was refused (for the audit trail; clients only ever hear "unauthenticated"). */
export type Refusal = 'malformed' | 'unknown' | 'wrong secret' | 'expired' | 'revoked';

/**
 * The tokens of one token file, checked against presented tokens. A token verified once is
 * remembered by its SHA-256 until the file changes, so scrypt runs once per token, not per
 * request; a refused one is remembered too, so repeating a bad token costs no scrypt either.
 */
export class TokenVerifier {
  private readonly byId: Map<string, TokenRecord>;
  private readonly bySubject: Map<string, CertificateGrant>;
  private readonly verified = new Map<string, Identity | Refusal>();
  /** Hashes running, by token digest: requests that bring the same new token at once share one. */
  private readonly hashing = new Map<string, Promise<Identity | Refusal>>();
  private static readonly MAX_REMEMBERED = 10_000;

  constructor(readonly file: TokenFile) {
    this.byId = new Map(file.tokens.map((t) => [t.id, t]));
    this.bySubject = new Map((file.certificates ?? []).map((c) => [c.subject, c]));
  }

  /**
   * The outcome of `token` without hashing: a refusal that needs no hash, an outcome remembered,
   * or null when only the hash can tell (`digest` is what to remember it by).
   */
  private known(
    token: string,
    now: number,
  ): { outcome: Identity | Refusal } | { digest: string; record: TokenRecord; secret: string } {
    const match = TOKEN_PATTERN.exec(token);
    if (!match) return { outcome: 'malformed' };
    const record = this.byId.get(match[1]!);
    if (!record) return { outcome: 'unknown' };
    if (record.revoked) return { outcome: 'revoked' };
    if (record.expires !== undefined && Date.parse(record.expires) <= now) return { outcome: 'expired' };
    const digest = hash('sha256', token, 'base64'); // one-shot: no Hash object per request
    const outcome = this.verified.get(digest);
    return outcome !== undefined ? { outcome } : { digest, record, secret: match[2]! };
  }

  /**
   * The identity a token stands for, or why it is refused: at once when no hash is needed (a
   * token seen before, or one refused on sight), else a promise of the hash's verdict. `beforeHash`
   * runs just before a new hash starts, and may throw to refuse it.
   */
  verify(token: string, now = Date.now(), beforeHash?: () => void): Identity | Refusal | Promise<Identity | Refusal> {
    const known = this.known(token, now);
    if ('outcome' in known) return known.outcome;
    const { digest, record, secret } = known;
    const running = this.hashing.get(digest);
    if (running) return running;
    beforeHash?.(); // may throw: the caller's say on whether this guess is worth a hash
    const outcome = hashSecret(secret, Buffer.from(record.salt, 'base64'), record.scrypt)
      .then((hash): Identity | Refusal =>
        timingSafeEqual(hash, Buffer.from(record.hash, 'base64')) ? identityOf(record) : 'wrong secret',
      )
      .then((settled) => {
        if (this.verified.size >= TokenVerifier.MAX_REMEMBERED) this.verified.clear();
        this.verified.set(digest, settled);
        return settled;
      })
      .finally(() => this.hashing.delete(digest));
    this.hashing.set(digest, outcome);
    return outcome;
  }

  /**
   * The identity a verified client certificate maps to, or null: the first grant whose subject
   * attributes ('CN=reporting', or 'CN=reporting,O=example') all appear in the certificate's
   * subject (`subject` as X509Certificate prints it, one 'K=V' per line).
   */
  certificate(subject: string): Identity | null {
    const held = subjectAttributes(subject, '\n');
    for (const [wanted, grant] of this.bySubject) {
      if (![...subjectAttributes(wanted, ',')].every((a) => held.has(a))) continue;
      return {
        id: `certificate:${grant.subject}`,
        name: grant.name ?? grant.subject,
        scopes: new Set(grant.scopes),
        models: grant.models ? new Set(grant.models) : null,
      };
    }
    return null;
  }
}

/** 'K = V' pairs of a subject, split on `separator`, with the spaces around '=' and the ends trimmed. */
function subjectAttributes(subject: string, separator: string): Set<string> {
  return new Set(
    subject
      .split(separator)
      .map((part) => part.split('=').map((side) => side.trim()))
      .filter((sides) => sides.length >= 2 && sides[0]!.length > 0)
      .map(([key, ...value]) => `${key!.toUpperCase()}=${value.join('=')}`),
  );
}

/** Whether `identity` may use `scope` (on `model`, when the call names one). */
export function permits(identity: Identity, scope: Scope, model?: string): boolean {
  // Any identity may ask after health (a model's readiness only for its own models).
  if (scope !== 'health' && !identity.scopes.has(scope) && !identity.scopes.has('admin')) return false;
  return model === undefined || identity.models === null || identity.models.has(model);
}
