import { join } from 'node:path';
import { FluxoError } from '../../core/errors.ts';
import { acquirePidLock, isAlive, type LockHolder, readPidLock } from '../../core/pid-lock.ts';

export const LOCK_FILE = 'lock';

export { isAlive, type LockHolder };

/**
 * Claims a buffer directory for this process: two Fluxo processes appending to one log would corrupt it
 * (core/pid-lock.ts: a lock of a process that is gone, or of this very pid, is stale and taken over).
 */
export async function acquireLock(dir: string, owner: string): Promise<() => Promise<void>> {
  const release = acquirePidLock(
    join(dir, LOCK_FILE),
    (holder) =>
      new FluxoError(
        'FLUXO_BUFFER_LOCKED',
        `${owner}: the disk buffer ${dir} is in use by process ${holder.pid} on ${holder.host}; two processes ` +
          'cannot share a buffer (give each its own data_dir). If that process is gone, delete the lock file.',
      ),
    () => new FluxoError('FLUXO_BUFFER_LOCKED', `${owner}: could not lock the disk buffer ${dir}`),
  );
  return async () => release();
}

/** The process holding a buffer directory, as its lock file says (alive or not). */
export function readLockHolderSync(dir: string): LockHolder | undefined {
  return readPidLock(join(dir, LOCK_FILE));
}
