import { readFileSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FluxoError } from '../../core/errors.ts';

export const LOCK_FILE = 'lock';
const HOST = hostname();

export interface LockHolder {
  pid: number;
  host: string;
}

/**
 * Claims a buffer directory for this process: two Fluxo processes appending to one log would corrupt it.
 * The lock file names the holder's pid and host; it is stale (and taken over) when that process is gone,
 * e.g. after a kill -9. A lock of this very pid is stale too: this process's own buffers coordinate in
 * memory, so a file with our pid comes from an earlier process that had the same pid (containers).
 */
export async function acquireLock(dir: string, owner: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  const content = `${process.pid}\n${HOST}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(content);
      await fh.close();
      return async () => {
        const now = readLockHolderSync(dir);
        if (now?.pid === process.pid && now.host === HOST) await unlink(path).catch(() => {});
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = parseLock(await readFile(path, 'utf8').catch(() => ''));
    if (holder && isAlive(holder)) {
      throw new FluxoError(
        'FLUXO_BUFFER_LOCKED',
        `${owner}: the disk buffer ${dir} is in use by process ${holder.pid} on ${holder.host}; two processes ` +
          'cannot share a buffer (give each its own data_dir). If that process is gone, delete the lock file.',
      );
    }
    await unlink(path).catch(() => {});
  }
  throw new FluxoError('FLUXO_BUFFER_LOCKED', `${owner}: could not lock the disk buffer ${dir}`);
}

/** The live process holding a buffer directory, if any. */
export function readLockHolderSync(dir: string): LockHolder | undefined {
  try {
    return parseLock(readFileSync(join(dir, LOCK_FILE), 'utf8'));
  } catch {
    return undefined;
  }
}

export function isAlive(holder: LockHolder): boolean {
  if (holder.host !== HOST) return true; // cannot tell: assume it runs
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseLock(text: string): LockHolder | undefined {
  const [pid, host] = text.split('\n');
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 ? { pid: n, host: host || HOST } : undefined;
}
