import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FluxoError } from './errors.ts';

export const DATA_DIR_LOCK_FILE = 'fluxo.lock';
const HOST = hostname();

export interface DataDirLockHolder {
  readonly pid: number;
  readonly host: string;
}

/**
 * Claims `data_dir` for this process before anything reads or writes under it: file checkpoints, disk buffers
 * and the file sink's partitions all assume one writer, and two processes tailing the same files would both
 * send every line. The lock names the holder's pid and host (as a disk buffer's lock does); it is stale, and
 * taken over, when that process is gone (kill -9, a crash) or has this very pid (an earlier process in a
 * container that reused it). Taken synchronously, at start, so there is no window before the pipeline runs.
 * Returns the release, which removes the file only while it is still ours.
 */
export function acquireDataDirLock(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, DATA_DIR_LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, `${process.pid}\n${HOST}\n`);
      } finally {
        closeSync(fd);
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const now = readDataDirLock(dataDir);
        if (now?.pid === process.pid && now.host === HOST) {
          try {
            unlinkSync(path);
          } catch {}
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readDataDirLock(dataDir);
    if (holder && holderIsAlive(holder)) {
      throw new FluxoError(
        'FLUXO_DATA_DIR_LOCKED',
        `data_dir ${dataDir} is in use by Fluxo process ${holder.pid} on ${holder.host}: two processes cannot ` +
          `share a data_dir (both would read every line and write the same checkpoints). Stop process ` +
          `${holder.pid} or give this one another data_dir; if ${holder.pid} is not Fluxo, delete ${path}.`,
      );
    }
    try {
      unlinkSync(path);
    } catch {}
  }
  throw new FluxoError('FLUXO_DATA_DIR_LOCKED', `could not lock data_dir ${dataDir} (${path} keeps reappearing)`);
}

/** Who holds `dataDir`, as its lock file says (alive or not). */
export function readDataDirLock(dataDir: string): DataDirLockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, DATA_DIR_LOCK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const [pid, host] = text.split('\n');
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 ? { pid: n, host: host || HOST } : undefined;
}

function holderIsAlive(holder: DataDirLockHolder): boolean {
  if (holder.host !== HOST) return true; // another host (a shared volume): cannot tell, so assume it runs
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
