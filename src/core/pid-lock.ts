import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import type { FluxoError } from './errors.ts';

const HOST = hostname();

/** Who holds a lock file: the pid and host it names. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
}

/**
 * Claims `path` for this process with a lock file naming its pid and host (the data_dir's lock, each disk
 * buffer's). A lock is stale, and taken over, when its process is gone (kill -9, a crash) or has this very pid
 * (an earlier process in a container that reused it: this process coordinates its own users in memory).
 * `refuse` makes the error for a live holder, `gaveUp` the one for a lock that keeps reappearing. Synchronous:
 * it runs once at start (or when a buffer opens), and leaves no window in which another process could start.
 * Returns the release, which removes the file only while it is still ours.
 */
export function acquirePidLock(
  path: string,
  refuse: (holder: LockHolder) => FluxoError,
  gaveUp: () => FluxoError,
): () => void {
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
        const now = readPidLock(path);
        if (now?.pid === process.pid && now.host === HOST) {
          try {
            unlinkSync(path);
          } catch {}
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readPidLock(path);
    if (holder && isAlive(holder)) throw refuse(holder);
    try {
      unlinkSync(path);
    } catch {}
  }
  throw gaveUp();
}

/** Who holds the lock at `path`, as its file says (alive or not); undefined without a readable lock. */
export function readPidLock(path: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const [pid, host] = text.split('\n');
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 ? { pid: n, host: host || HOST } : undefined;
}

/** Whether a lock's holder still runs; one on another host (a shared volume) cannot be checked and counts as alive. */
export function isAlive(holder: LockHolder): boolean {
  if (holder.host !== HOST) return true;
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
