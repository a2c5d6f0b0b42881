/**
 * An exclusive lock file between processes on one host: a record with a random token linked into
 * place (link fails if the name is taken, so one taker wins). A lock of a process that is gone on
 * this host is moved aside by rename (again one taker wins) and taken; a lock that cannot be read
 * counts as held. The release removes the lock only while it still holds this taker's token.
 */
import { randomBytes } from 'node:crypto';
import { link, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { MaasError } from '../core/errors.js';
import { processAlive } from '../core/process-alive.js';
import { readRegularFile } from './files.js';

/** Who holds a lock. */
export interface LockHolder {
  host: string;
  pid: number;
  token: string;
}

const MAX_LOCK_BYTES = 4096;

/** The lock's text; null when there is none, '' when it cannot be read. */
async function readLockFile(path: string): Promise<string | null> {
  try {
    return (await readRegularFile(path, MAX_LOCK_BYTES, 'a lock file')).toString('utf8');
  } catch (error) {
    return error instanceof MaasError && error.code === 'MAAS_ERR_MODEL_NOT_FOUND' ? null : '';
  }
}

function readHolder(text: string): LockHolder | null {
  try {
    const r = JSON.parse(text) as Partial<LockHolder>;
    return typeof r.host === 'string' && Number.isInteger(r.pid) && typeof r.token === 'string'
      ? (r as LockHolder)
      : null;
  } catch {
    return null;
  }
}

/**
 * Takes the lock at `path`, or throws what `busy` makes of its holder (null: a lock that cannot
 * be read; 'raced': another taker won a race for a stale lock). Returns the release.
 */
export async function takeFileLock(
  path: string,
  busy: (holder: LockHolder | null | 'raced') => MaasError,
): Promise<() => Promise<void>> {
  const record: LockHolder = { host: hostname(), pid: process.pid, token: randomBytes(16).toString('hex') };
  const mine = `${path}.${record.token}`;
  await writeFile(mine, JSON.stringify(record), { mode: 0o644, flag: 'wx' });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, path);
        return async () => {
          const held = readHolder((await readLockFile(path)) ?? '');
          if (held?.token === record.token) await unlink(path).catch(() => {});
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const text = await readLockFile(path);
      if (text === null) continue; // released meanwhile: try again
      const held = readHolder(text);
      const stale = held !== null && held.host === record.host && held.pid !== process.pid && !processAlive(held.pid);
      if (!stale) throw busy(held);
      // The holder is gone: move its lock aside (one taker wins the rename) and try again. What was
      // moved is checked: a live lock another taker made meanwhile is put back (link: only if the
      // name is still free) and counts as held.
      const aside = `${path}.stale-${record.token}`;
      const moved = await rename(path, aside).then(
        () => true,
        () => false,
      );
      if (!moved) continue;
      const movedRecord = readHolder((await readLockFile(aside)) ?? '');
      if (movedRecord?.token !== held.token) {
        await link(aside, path).catch(() => {});
        await unlink(aside).catch(() => {});
        throw busy('raced');
      }
      await unlink(aside).catch(() => {});
    }
    throw busy('raced');
  } finally {
    await unlink(mine).catch(() => {});
  }
}
