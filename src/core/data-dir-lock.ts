import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FluxoError } from './errors.ts';
import { acquirePidLock, type LockHolder, readPidLock } from './pid-lock.ts';

export const DATA_DIR_LOCK_FILE = 'fluxo.lock';

export type DataDirLockHolder = LockHolder;

/**
 * Claims `data_dir` for this process before anything reads or writes under it: file checkpoints, disk buffers
 * and the file sink's partitions all assume one writer, and two processes tailing the same files would both
 * send every line. Returns the release.
 */
export function acquireDataDirLock(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, DATA_DIR_LOCK_FILE);
  return acquirePidLock(
    path,
    (holder) =>
      new FluxoError(
        'FLUXO_DATA_DIR_LOCKED',
        `data_dir ${dataDir} is in use by Fluxo process ${holder.pid} on ${holder.host}: two processes cannot ` +
          `share a data_dir (both would read every line and write the same checkpoints). Stop process ` +
          `${holder.pid} or give this one another data_dir; if ${holder.pid} is not Fluxo, delete ${path}.`,
      ),
    () => new FluxoError('FLUXO_DATA_DIR_LOCKED', `could not lock data_dir ${dataDir} (${path} keeps reappearing)`),
  );
}

/** Who holds `dataDir`, as its lock file says (alive or not). */
export function readDataDirLock(dataDir: string): DataDirLockHolder | undefined {
  return readPidLock(join(dataDir, DATA_DIR_LOCK_FILE));
}
