/**
 * API tokens: what a token file stores (salted scrypt hashes, owner-only), how tokens verify
 * (wrong, malformed, unknown, expired, revoked), scopes and model lists, a token file re-read on
 * change, and the checks on every field of a hand-edited file.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TokenVerifier,
  createToken,
  parseTokenFile,
  permits,
  type Identity,
  type TokenFile,
} from '../../src/serving/auth/tokens.js';
import { TokenStore, addTokenRecord, readTokenFile, revokeTokenRecord } from '../../src/serving/auth/token-store.js';
import { ALL_MODELS, ANONYMOUS, AccessControl, bearerOf, type CallInfo } from '../../src/serving/auth/access.js';
import { RateLimiter } from '../../src/serving/auth/rate-limit.js';
import { type MaasError } from '../../src/core/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maas-tokens-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function flipLastChar(token: string): string {
  const last = token.at(-1)!;
  return token.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}

describe('API tokens', () => {
  it('stores only a salted hash, owner-readable, and verifies the token it printed', async () => {
    const path = join(dir, 'store.json');
    const { token, record } = await createToken({ name: 'ci', scopes: ['infer'], models: ['classic'] });
    await addTokenRecord(path, record);
    const text = await readFile(path, 'utf8');
    // The secret is all after maas_<id>_: base64url, so it may itself hold '_'.
    const secret = /^maas_[0-9a-f]{16}_(.+)$/.exec(token)![1]!;
    expect(secret).toHaveLength(43);
    expect(text).not.toContain(secret);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const verifier = new TokenVerifier(await readTokenFile(path));
    const identity = (await verifier.verify(token)) as Identity;
    expect(identity.id).toBe(`token:${record.id}`);
    expect(permits(identity, 'infer', 'classic')).toBe(true);
    expect(permits(identity, 'infer', 'other')).toBe(false);
    expect(permits(identity, 'repository')).toBe(false);
  });

  it('refuses a wrong secret, a malformed token, an unknown id, an expired and a revoked token', async () => {
    const path = join(dir, 'refusals.json');
    const live = await createToken({ name: 'live', scopes: ['metadata'] });
    const old = await createToken({ name: 'old', scopes: ['metadata'], expiresInDays: 1 }, new Date('2020-01-01'));
    await addTokenRecord(path, live.record);
    await addTokenRecord(path, old.record);
    const verifier = new TokenVerifier(await readTokenFile(path));
    expect(await verifier.verify(flipLastChar(live.token))).toBe('wrong secret');
    expect(await verifier.verify(flipLastChar(live.token))).toBe('wrong secret'); // remembered, same answer
    expect(await verifier.verify('Bearer x')).toBe('malformed');
    expect(await verifier.verify(live.token.replace(/_[0-9a-f]{16}_/, '_0123456789abcdef_'))).toBe('unknown');
    expect(await verifier.verify(old.token)).toBe('expired');
    expect(await revokeTokenRecord(path, live.record.id)).toBe(true);
    expect(await new TokenVerifier(await readTokenFile(path)).verify(live.token)).toBe('revoked');
  });

  it('admin implies every scope; a model list limits every scope', async () => {
    const admin: Identity = { id: 'a', name: 'a', scopes: new Set(['admin']), models: null };
    const limited: Identity = { id: 'b', name: 'b', scopes: new Set(['admin']), models: new Set(['m']) };
    expect(permits(admin, 'repository', 'anything')).toBe(true);
    expect(permits(limited, 'infer', 'm')).toBe(true);
    expect(permits(limited, 'infer', 'n')).toBe(false);
  });

  it('maps a client certificate subject to scopes like a token', () => {
    const file = parseTokenFile(
      JSON.stringify({ version: 1, tokens: [], certificates: [{ subject: 'CN=reports', scopes: ['metadata'] }] }),
    );
    const verifier = new TokenVerifier(file);
    // X509Certificate prints a subject one attribute per line; the grant names a subset of them.
    expect(verifier.certificate('C=NL\nO=example\nCN=reports')?.scopes.has('metadata')).toBe(true);
    expect(verifier.certificate('CN = reports')?.id).toBe('certificate:CN=reports');
    expect(verifier.certificate('CN=other\nO=reports')).toBeNull();
    expect(verifier.certificate('CN=reports-2')).toBeNull();
  });

  it('refuses a hand-edited file field by field with MAAS_ERR_TOKEN_FILE', async () => {
    const { record } = await createToken({ name: 'x', scopes: ['infer'] });
    const good: TokenFile = { version: 1, tokens: [record] };
    const variants: [string, unknown][] = [
      ['not JSON', '{'],
      ['version', { ...good, version: 2 }],
      ['scope', { version: 1, tokens: [{ ...record, scopes: ['root'] }] }],
      ['no scopes', { version: 1, tokens: [{ ...record, scopes: [] }] }],
      ['id', { version: 1, tokens: [{ ...record, id: '../x' }] }],
      ['duplicate id', { version: 1, tokens: [record, record] }],
      ['cost too low', { version: 1, tokens: [{ ...record, scrypt: { N: 2, r: 1, p: 1 } }] }],
      ['cost too high', { version: 1, tokens: [{ ...record, scrypt: { N: 2 ** 30, r: 8, p: 1 } }] }],
      ['short salt', { version: 1, tokens: [{ ...record, salt: 'AAAA' }] }],
      ['hash size', { version: 1, tokens: [{ ...record, hash: 'AAAA' }] }],
      ['expires', { version: 1, tokens: [{ ...record, expires: 'soon' }] }],
      ['models', { version: 1, tokens: [{ ...record, models: [''] }] }],
    ];
    for (const [what, value] of variants) {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      expect(() => parseTokenFile(text), what).toThrow(expect.objectContaining({ code: 'MAAS_ERR_TOKEN_FILE' }));
    }
    expect(parseTokenFile(JSON.stringify(good)).tokens).toHaveLength(1);
  });

  it('a store re-reads the file when it changes, and keeps the tokens in force when an edit is broken', async () => {
    const path = join(dir, 'live.json');
    const first = await createToken({ name: 'first', scopes: ['infer'] });
    await addTokenRecord(path, first.record);
    const reloads: (MaasError | null)[] = [];
    let heard: () => void = () => {};
    const store = await TokenStore.open(path, {
      intervalMs: 20,
      onReload: (error) => {
        reloads.push(error);
        heard();
      },
    });
    const reloaded = () => new Promise<void>((resolve) => (heard = resolve));
    try {
      expect(await store.verifier.verify(first.token)).toMatchObject({ name: 'first' });
      const second = await createToken({ name: 'second', scopes: ['infer'] });
      let next = reloaded();
      await addTokenRecord(path, second.record);
      await next;
      expect(await store.verifier.verify(second.token)).toMatchObject({ name: 'second' });
      next = reloaded();
      await writeFile(path, '{ broken');
      await next;
      expect(reloads.at(-1)).toMatchObject({ code: 'MAAS_ERR_TOKEN_FILE' });
      expect(await store.verifier.verify(second.token)).toMatchObject({ name: 'second' });
    } finally {
      store.stopWatching();
    }
  });
});

function call(credentials: CallInfo['credentials'], peer = '10.0.0.1'): CallInfo {
  return { transport: 'rest', peer, action: 'test', credentials };
}

describe('AccessControl', () => {
  it('answers unauthenticated and permission-denied with coded errors, and leaves server health open', async () => {
    const path = join(dir, 'guard.json');
    const limited = await createToken({ name: 'limited', scopes: ['infer', 'metadata'], models: ['classic'] });
    const admin = await createToken({ name: 'admin', scopes: ['admin'] });
    await addTokenRecord(path, limited.record);
    await addTokenRecord(path, admin.record);
    const store = await TokenStore.open(path);
    try {
      const access = new AccessControl({ tokens: store });
      expect(access.isOpen('health', false)).toBe(true);
      expect(access.isOpen('health', true)).toBe(false); // a model's readiness says it exists
      expect(access.isOpen('metrics', false)).toBe(false);
      await expect(access.check(call({}), 'infer', 'classic')).rejects.toMatchObject({
        code: 'MAAS_ERR_UNAUTHENTICATED',
      });
      await expect(
        access.check(call({ bearer: flipLastChar(limited.token) }), 'infer', 'classic'),
      ).rejects.toMatchObject({ code: 'MAAS_ERR_UNAUTHENTICATED', message: 'Missing or invalid credentials' });
      const caller = await access.check(call({ bearer: limited.token }), 'infer', 'classic');
      expect(caller.identity.name).toBe('limited');
      await expect(access.check(call({ bearer: limited.token }), 'health', 'classic')).resolves.toBeDefined();
      for (const [scope, model] of [
        ['infer', 'other'],
        ['repository', 'classic'],
        ['metadata', ALL_MODELS],
      ] as const) {
        const refusal = access.check(call({ bearer: limited.token }), scope, model);
        await expect(refusal).rejects.toMatchObject({ code: 'MAAS_ERR_PERMISSION_DENIED' });
        await expect(refusal).rejects.not.toThrow(/other|classic/); // names no model
      }
      await expect(access.check(call({ bearer: admin.token }), 'repository', ALL_MODELS)).resolves.toMatchObject({
        identity: { name: 'admin' },
      });
      const closed = new AccessControl({ tokens: store, openHealth: false });
      expect(closed.isOpen('health', false)).toBe(false);
      expect(bearerOf('Bearer abc')).toBe('abc');
      expect(bearerOf('bearer  abc')).toBe('abc');
      expect(bearerOf('Basic abc')).toBeUndefined();
    } finally {
      store.stopWatching();
    }
  });

  it('without a token file every caller is anonymous with every scope', async () => {
    const access = new AccessControl();
    expect(access.enabled).toBe(false);
    expect(access.active).toBe(false);
    expect((await access.check(call({}), 'repository', ALL_MODELS)).identity).toBe(ANONYMOUS);
  });

  it('limits anonymous callers per address when there is no token file', async () => {
    const access = new AccessControl({ limits: { ratePerSecond: 1, burst: 2 } });
    expect(access.active).toBe(true);
    const first = await access.authenticate(call({}, '10.0.0.1'));
    access.admit(first)();
    access.admit(first)();
    expect(() => access.admit(first)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_RATE_LIMITED' }));
    const other = await access.authenticate(call({}, '10.0.0.2'));
    expect(() => access.admit(other)()).not.toThrow();
  });

  it('refuses an address that keeps guessing, before checking its guesses', async () => {
    const path = join(dir, 'guesses.json');
    const real = await createToken({ name: 'real', scopes: ['infer'] });
    await addTokenRecord(path, real.record);
    const store = await TokenStore.open(path);
    try {
      const access = new AccessControl({ tokens: store, failureLimits: { ratePerSecond: 1, burst: 3 } });
      // Each guess is a new secret for a real token id: each costs a hash.
      // The changed character must differ from the real one, or a "guess" would be the token.
      const realChar = real.token.at(-2)!;
      const guesses = ['A', 'B', 'C', 'D', 'E']
        .filter((c) => c !== realChar)
        .slice(0, 4)
        .map((c) => real.token.slice(0, -2) + c + real.token.at(-1));
      for (const guess of guesses.slice(0, 3))
        await expect(access.check(call({ bearer: guess }), 'infer')).rejects.toMatchObject({
          code: 'MAAS_ERR_UNAUTHENTICATED',
        });
      // A malformed or unknown token costs nothing, and is refused as ever.
      await expect(
        access.check(call({ bearer: 'maas_0000000000000000_' + 'x'.repeat(43) }), 'infer'),
      ).rejects.toMatchObject({ code: 'MAAS_ERR_UNAUTHENTICATED' });
      const limited = access.check(call({ bearer: guesses[3]! }), 'infer');
      await expect(limited).rejects.toMatchObject({ code: 'MAAS_ERR_RATE_LIMITED' });
      await expect(limited).rejects.toHaveProperty('retryAfterMs');
      // Another address is not held by the guesser's failures, nor a real token already verified.
      await expect(access.check(call({ bearer: real.token }, '10.0.0.2'), 'infer')).resolves.toBeDefined();
      await expect(access.check(call({ bearer: real.token }), 'infer')).resolves.toBeDefined();
    } finally {
      store.stopWatching();
    }
  });
});

describe('RateLimiter', () => {
  it('admits a burst, then the rate, and says when to retry', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 3 }, () => now);
    for (let i = 0; i < 3; i++) limiter.admit('a')();
    expect(() => limiter.admit('a')).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_RATE_LIMITED', retryAfterMs: 100 }),
    );
    limiter.admit('b')(); // callers are separate
    now += 100;
    limiter.admit('a')();
    expect(() => limiter.admit('a')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_RATE_LIMITED' }));
    now += 10_000; // refills to the burst, not beyond
    for (let i = 0; i < 3; i++) limiter.admit('a')();
    expect(() => limiter.admit('a')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_RATE_LIMITED' }));
  });

  it('holds concurrent requests until they are released, once each', () => {
    const limiter = new RateLimiter({ concurrent: 2 });
    const first = limiter.admit('a');
    limiter.admit('a');
    expect(() => limiter.admit('a')).toThrow(expect.objectContaining({ retryAfterMs: 1000 }));
    first();
    first(); // a second release gives nothing back
    limiter.admit('a');
    expect(() => limiter.admit('a')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_RATE_LIMITED' }));
    limiter.take('a'); // a stream's message takes rate, not a slot
  });
});

describe('TokenVerifier under load', () => {
  it('hashes a new token once however many requests bring it at once', async () => {
    const { token, record } = await createToken({ name: 'burst', scopes: ['infer'] });
    const verifier = new TokenVerifier({ version: 1, tokens: [record] });
    let hashes = 0;
    const verify = () => verifier.verify(token, Date.now(), () => hashes++);
    const all = await Promise.all(Array.from({ length: 64 }, async () => verify()));
    expect(hashes).toBe(1); // the other 63 shared the running hash
    expect(new Set(all).size).toBe(1); // one identity object: one hash
    expect(all[0]).toMatchObject({ name: 'burst' });
    expect(verify()).toBe(all[0]); // remembered: decided at once, no hash
    expect(hashes).toBe(1);
  });
});
