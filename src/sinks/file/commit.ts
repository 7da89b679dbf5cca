import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { syncDirectory } from '../../core/fs.ts';

/** A staging file sealed into its final form (Parquet or NDJSON), on local disk, not yet committed. */
export interface SealedFile {
  readonly localPath: string;
  /** Deterministic relative name: the rendered partition path + staging id + first..last record + extension. */
  readonly name: string;
  readonly bytes: number;
  readonly events: number;
  /** `parquet`, `ndjson` or `text`: what the bytes are (for a Content-Type). */
  readonly format?: string;
  /** gzip-compressed as a whole (NDJSON `.gz`), for a Content-Encoding. */
  readonly gzip?: boolean;
}

/** Makes a sealed file durable at its destination, idempotently: committing a name that is already there is a success. */
export interface Committer {
  commit(file: SealedFile, signal: AbortSignal): Promise<void>;
}

/**
 * The file sink's committer: the sealed file already sits in its target directory (same file system), so
 * committing is an atomic rename to its final name. A name already there came from an earlier run sealing
 * the same staging file (the name says what it holds), so replacing it is success: it also repairs a copy
 * that a crash left short, which a "keep the existing one" rule would keep forever.
 */
export class LocalCommitter implements Committer {
  /** `root`: the directory `SealedFile.name` is relative to ('' = the working directory). */
  constructor(private readonly root: string) {}

  pathOf(name: string): string {
    return this.root === '' ? name : join(this.root, name);
  }

  async commit(file: SealedFile, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const target = this.pathOf(file.name);
    if (resolve(target) === resolve(file.localPath)) return;
    const dir = dirname(target);
    try {
      await rename(file.localPath, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !(await exists(file.localPath))) throw error;
      // The target directory is missing (only when root differs from where the file was sealed).
      await mkdir(dir, { recursive: true });
      await rename(file.localPath, target);
    }
    await syncDirectory(dir);
    if (dirname(file.localPath) !== dir) await syncDirectory(dirname(file.localPath));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
