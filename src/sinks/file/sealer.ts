import { open, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { extensionStart } from '../../codecs/path-template.ts';
import { syncDirectory } from '../../core/fs.ts';
import { type Committer, LocalCommitter, type SealedFile } from './commit.ts';
import { liveTempFiles, type StagedFile } from './open-file.ts';
import type { ParquetFileOptions, WrittenParquet } from './parquet-writer.ts';
import { type SealThread, sealThread } from './seal-thread.ts';

/*
 * Staging → seal → commit. A staging file (NDJSON, fsync'd before each acknowledgement) is sealed into its
 * final form on local disk, committed (made durable at the destination, idempotently), and only then removed.
 * Every step can be cut by kill -9 and redone at the next start from the staging file, which is still there;
 * the sealed name depends only on the staging file (its unique id, chosen when it was opened, and the range
 * of records it holds), so a redone seal commits the very same name, and a name already committed is success.
 */

export interface SealerOptions {
  /** The directory sealed names are relative to ('' = as rendered). */
  readonly root: string;
  readonly committer: Committer;
  /** Parquet options, or undefined for NDJSON/text (the staging file is the sealed file). */
  readonly parquet: ParquetFileOptions | undefined;
  readonly gzip: boolean;
  readonly format: string;
  /** The sink instance's owner token, for the names of its temporary files. */
  readonly owner: string;
  /** Where Parquet is encoded (default: the process's seal thread). */
  readonly thread?: SealThread;
}

/** Seal attempts when the seal thread dies under a seal; then the error goes to the sink (recovery retries). */
const THREAD_ATTEMPTS = 3;

/** The sealed name of a Parquet file: `part-<stagingid>.parquet` → `part-<stagingid>-<first>-<last>.parquet`. */
export function sealedParquetPath(finalPath: string, events: number): string {
  const slash = finalPath.lastIndexOf('/');
  const name = finalPath.slice(slash + 1);
  const at = extensionStart(name);
  return `${finalPath.slice(0, slash + 1)}${name.slice(0, at)}-1-${events}${name.slice(at)}`;
}

async function countLines(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const piece = Buffer.allocUnsafe(1 << 20);
    let lines = 0;
    for (let position = 0; ; ) {
      const { bytesRead } = await handle.read(piece, 0, piece.length, position);
      if (bytesRead === 0) return lines;
      position += bytesRead;
      for (let i = piece.indexOf(0x0a); i >= 0 && i < bytesRead; i = piece.indexOf(0x0a, i + 1)) lines++;
    }
  } finally {
    await handle.close();
  }
}

export class Sealer {
  constructor(private readonly options: SealerOptions) {}

  /**
   * Starts the seal thread ahead of the first seal (Parquet only): called when a staging file is opened, so
   * the seal it will need, minutes later, does not wait for the thread to load, and an agent that starts and
   * receives nothing never pays for the thread (~40 ms of CPU and 5 MiB at start).
   */
  warm(): void {
    if (this.options.parquet !== undefined) (this.options.thread ?? sealThread).warm();
  }

  /** Where a committed file can be seen: its local path with the local committer, else its name. */
  visiblePath(sealed: SealedFile): string {
    const { committer } = this.options;
    return committer instanceof LocalCommitter ? committer.pathOf(sealed.name) : sealed.name;
  }

  /** The name of `path` (a rendered, rooted path) relative to the committer's root. */
  private nameOf(path: string): string {
    return this.options.root === '' ? path : relative(this.options.root, path);
  }

  /**
   * Seals `staged` and commits it; then the staging file goes. Returns the committed name (relative to the
   * root), or undefined when the staging held no event. Throws with the staging file left in place.
   */
  async finish(staged: StagedFile, signal: AbortSignal): Promise<SealedFile | undefined> {
    const { parquet, committer } = this.options;
    if (parquet === undefined) {
      // gzip NDJSON holds its events compressed; counting them would mean inflating: recovery reports 0.
      const events = staged.events ?? (this.options.gzip ? 0 : await countLines(staged.path));
      const bytes = (await stat(staged.path)).size;
      const sealed: SealedFile = {
        localPath: staged.path,
        name: this.nameOf(staged.finalPath),
        bytes,
        events,
        format: this.options.format,
        gzip: this.options.gzip,
      };
      await committer.commit(sealed, signal);
      await removeIfThere(staged.path);
      return sealed;
    }
    const dir = dirname(staged.path);
    // Deterministic from the staging file too, so a crashed seal's leftover is found (and replaced) by the next.
    const temp = join(dir, `.${basename(staged.finalPath)}.${this.options.owner}.sealing`);
    // A recovery scan started meanwhile (a reload's new sink) must not take this for a crash's leftover.
    liveTempFiles.add(temp);
    try {
      const written = await this.encode(staged.path, temp, parquet);
      if (written.events === 0) {
        await removeIfThere(temp);
        await unlink(staged.path);
        await syncDirectory(dir);
        return undefined;
      }
      // The temporary name must be durable before a commit renames or uploads it.
      await syncDirectory(dir);
      const sealed: SealedFile = {
        localPath: temp,
        name: this.nameOf(sealedParquetPath(staged.finalPath, written.events)),
        bytes: written.bytes,
        events: written.events,
        format: 'parquet',
      };
      await committer.commit(sealed, signal);
      await removeIfThere(temp);
      await unlink(staged.path);
      await syncDirectory(dir);
      return sealed;
    } catch (error) {
      // The staging file stays, with every acknowledged event: the next start seals it again.
      await removeIfThere(temp).catch(() => {});
      throw error;
    } finally {
      liveTempFiles.delete(temp);
    }
  }

  /** The Parquet temporary file of `stagingPath`, written and fsync'd by the seal thread. */
  private async encode(stagingPath: string, temp: string, parquet: ParquetFileOptions): Promise<WrittenParquet> {
    const thread = this.options.thread ?? sealThread;
    for (let attempt = 1; ; attempt++) {
      try {
        return await thread.seal(stagingPath, temp, parquet);
      } catch (error) {
        // The staging file is only read by a seal, so a seal cut short by the thread's death can be redone.
        const threadDied = (error as { code?: string }).code === 'FLUXO_PARQUET_SEAL_WORKER_EXITED';
        if (!threadDied || attempt >= THREAD_ATTEMPTS) throw error;
      }
    }
  }
}

async function removeIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
