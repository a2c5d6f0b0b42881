/**
 * `maas token create|list|revoke --file FILE`: manages the API tokens a server checks. `create`
 * prints the new token once; the file keeps only its salted scrypt hash.
 */
import { SCOPES, createToken, type Scope } from '../serving/auth/tokens.js';
import { addTokenRecord, readTokenFile, revokeTokenRecord } from '../serving/auth/token-store.js';
import { MaasError } from '../core/errors.js';

/** `maas token create`'s options. */
export interface TokenCreateOptions {
  file: string;
  scope: string[];
  models?: string[];
  name?: string;
  expiresDays?: number;
  print: (line: string) => void;
}

export async function runTokenCreate(options: TokenCreateOptions): Promise<void> {
  const scopes = options.scope.flatMap((s) => s.split(',')).map((s) => s.trim());
  const unknown = scopes.filter((s) => !SCOPES.includes(s as Scope));
  if (unknown.length > 0 || scopes.length === 0)
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `Expected --scope among ${SCOPES.join(', ')} but received ${unknown.join(', ') || 'none'}`,
    );
  const models = options.models?.flatMap((m) => m.split(',')).filter((m) => m.length > 0);
  const { token, record } = await createToken({
    name: options.name ?? `token-${new Date().toISOString().slice(0, 10)}`,
    scopes: scopes as Scope[],
    ...(models && models.length > 0 ? { models } : {}),
    ...(options.expiresDays !== undefined ? { expiresInDays: options.expiresDays } : {}),
  });
  await addTokenRecord(options.file, record);
  options.print(token);
  options.print(
    `# id ${record.id}, scopes ${record.scopes.join(',')}, models ${record.models?.join(',') ?? 'all'}` +
      `${record.expires ? `, expires ${record.expires}` : ''}. Shown once: only its hash is in ${options.file}.`,
  );
}

export async function runTokenList(options: { file: string; print: (line: string) => void }): Promise<void> {
  const file = await readTokenFile(options.file);
  for (const t of file.tokens) {
    const state = t.revoked ? 'revoked' : t.expires && Date.parse(t.expires) <= Date.now() ? 'expired' : 'active';
    options.print(
      `${t.id}  ${state.padEnd(7)}  ${t.name}  scopes=${t.scopes.join(',')}  models=${t.models?.join(',') ?? '*'}${t.expires ? `  expires=${t.expires}` : ''}`,
    );
  }
}

export async function runTokenRevoke(options: {
  file: string;
  id: string;
  print: (line: string) => void;
}): Promise<void> {
  if (!(await revokeTokenRecord(options.file, options.id)))
    throw new MaasError('MAAS_ERR_ARG_RANGE', `No token with id ${options.id} in ${options.file}`);
  options.print(`revoked ${options.id}`);
}
