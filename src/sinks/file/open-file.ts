import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { insertUniqueSuffix } from '../../codecs/path-template.ts';
import { FluxoError } from '../../core/errors.ts';
import { syncDirectory } from '../../core/fs.ts';
import { GzipMemberWriter } from './gzip-member.ts';

/*
 * A file is written as `<dir>/.<final name>.<owner>.inprogress` (the staging file) and, when closed, sealed and
 * committed by a Finisher: NDJSON is renamed to `<dir>/<final name>`, Parquet is written as a file named from
 * it. The final name is chosen when the file opens, so recovering a temp file always produces the same
 * final name: a recovery interrupted after its commit and redone replaces that file, never duplicates it.
 * `owner` tells which sink instance (host, data_dir, id) a temp file belongs to, so a start-up scan never
 * finalizes a file another live process is still writing into the same directory.
 */
export const TEMP_SUFFIX = '.inprogress';
export const TEMP_NAME = /^\.(.+)\.([0-9a-f]{8})\.inprogress$/;

export function tempNameFor(finalName: string, owner: string): string {
  return `.${finalName}.${owner}${TEMP_SUFFIX}`;
}

export function ownerToken(dataDir: string, id: string): string {
  return createHash('sha256')
    .update(`${hostname()}\0${resolve(dataDir)}\0${id}`)
    .digest('hex')
    .slice(0, 8);
}

/** Temp files open in this process, which a recovery scan (another sink instance, a reload) must not touch. */
export const liveTempFiles = new Set<string>();

export async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0)
      throw new FluxoError('FLUXO_SHORT_WRITE', `short write to file at offset ${position + done}`);
    done += bytesWritten;
  }
}

/** Creates `dir` and makes each directory it had to create durable in its parent. */
async function makeDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const top = resolve(first);
  for (let d = resolve(dir); ; d = dirname(d)) {
    await syncDirectory(dirname(d));
    if (d === top || d === dirname(d)) break;
  }
}

/** A staging file closed and fsync'd, to be sealed and committed under (a name derived from) `finalPath`. */
export interface StagedFile {
  readonly path: string;
  readonly finalPath: string;
  /** Bytes on disk. */
  readonly bytes: number;
  /** Events appended (lines, for NDJSON); undefined when not known (recovery counts them itself). */
  readonly events?: number;
}

/**
 * Seals a staged file and commits the result; returns where it became visible (or undefined when nothing
 * was kept). It must leave the staging file in place on failure, and remove it once committed.
 */
export type Finisher = (staged: StagedFile) => Promise<string | undefined>;

export interface OpenFileOptions {
  gzip: boolean;
  /** fdatasync after each write (group commit); off only for benchmarks. */
  sync: boolean;
  owner: string;
}

/**
 * One file being written. Every operation runs through exclusive(), so a timer's close never overlaps a
 * write. `committed` is the length after the last durable write: a failed write is cut back to it.
 */
export class OpenFile {
  readonly openedAt: number;
  lastWriteAt: number;
  committed = 0;
  /** Events in the committed bytes. */
  events = 0;
  closed = false;
  /** Operations queued or running; an idle file (0) is the one to close when too many are open. */
  pending = 0;
  private broken = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly gzip: GzipMemberWriter | undefined;

  private constructor(
    readonly finalPath: string,
    readonly tempPath: string,
    private handle: FileHandle,
    private readonly options: OpenFileOptions,
    now: number,
  ) {
    this.openedAt = now;
    this.lastWriteAt = now;
    this.gzip = options.gzip ? new GzipMemberWriter() : undefined;
  }

  /** Creates the temp file for rendered path `path` (its name gets a unique suffix when the file closes). */
  static async create(path: string, options: OpenFileOptions, now: number): Promise<OpenFile> {
    const dir = dirname(path);
    await makeDir(dir);
    const finalPath = insertUniqueSuffix(path, now, randomBytes(4).toString('hex'));
    const tempPath = join(dir, tempNameFor(finalPath.slice(finalPath.lastIndexOf('/') + 1), options.owner));
    // Marked live before it exists: a recovery scan running meanwhile (the s3 sink's, in the background) must
    // never take a file that is being opened for a crash's leftover.
    liveTempFiles.add(tempPath);
    let handle: FileHandle;
    try {
      handle = await open(tempPath, 'wx');
    } catch (error) {
      liveTempFiles.delete(tempPath);
      throw error;
    }
    try {
      // The name must survive a crash as well as the data that fdatasync makes durable later.
      await syncDirectory(dir);
    } catch (error) {
      liveTempFiles.delete(tempPath);
      await handle.close().catch(() => {});
      await unlink(tempPath).catch(() => {});
      throw error;
    }
    return new OpenFile(finalPath, tempPath, handle, options, now);
  }

  exclusive<T>(operation: () => Promise<T>): Promise<T> {
    this.pending++;
    const run = this.queue.then(operation).finally(() => {
      this.pending--;
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Appends one write's bytes and makes them durable; call inside exclusive(). */
  async append(raw: Buffer, now: number, events = 0): Promise<void> {
    if (this.broken) await this.repair();
    try {
      const data = this.gzip ? await this.gzip.encode(raw) : raw;
      await writeFully(this.handle, data, this.committed);
      if (this.options.sync) await this.handle.datasync();
      this.committed += data.length;
      this.events += events;
      this.gzip?.commit();
      this.lastWriteAt = now;
    } catch (error) {
      // Whatever part of the write reached the file is not acknowledged: the next operation cuts it off.
      this.broken = true;
      this.gzip?.abort();
      throw error;
    }
  }

  /**
   * Cuts the file back to its committed length on a fresh descriptor: the old one may be the cause (closed,
   * or after a failed fsync Linux may have dropped the pages and will not report it again on that fd).
   */
  private async repair(): Promise<void> {
    await this.handle.close().catch(() => {});
    try {
      this.handle = await open(this.tempPath, 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // Someone removed the temp file: its committed bytes are gone, start over in the same name.
      this.handle = await open(this.tempPath, 'wx');
      this.committed = 0;
      this.gzip?.abort();
      throw new FluxoError(
        'FLUXO_FILE_SINK_TEMP_REMOVED',
        `${this.tempPath} was removed while being written; the events acknowledged into it are lost`,
      );
    }
    await this.handle.truncate(this.committed);
    this.broken = false;
  }

  /**
   * Ends the file and has `finish` seal and commit it (NDJSON: under its final name; Parquet: as a sealed
   * file named from it); returns where it became visible, or undefined when nothing was ever committed (the
   * temp file is removed). Call inside exclusive(). On failure the temp file stays,
   * holding every acknowledged byte, for the recovery at the next start.
   */
  async close(finish: Finisher): Promise<string | undefined> {
    if (this.closed) return undefined;
    this.closed = true;
    try {
      if (this.committed === 0) {
        await this.handle.close();
        await unlink(this.tempPath);
        return undefined;
      }
      if (this.broken) await this.repair();
      if (this.gzip) {
        const end = this.gzip.end();
        await writeFully(this.handle, end, this.committed);
        this.committed += end.length;
      }
      // fsync (not fdatasync): size and data must be on disk before a commit can make the name visible.
      await this.handle.sync();
      await this.handle.close();
      return await finish({
        path: this.tempPath,
        finalPath: this.finalPath,
        bytes: this.committed,
        events: this.events,
      });
    } catch (error) {
      await this.handle.close().catch(() => {});
      throw new FluxoError(
        'FLUXO_FILE_SINK_CLOSE_FAILED',
        `could not finalize ${this.tempPath}: ${(error as Error).message}; it keeps the acknowledged events and is recovered at the next start`,
        { cause: error },
      );
    } finally {
      liveTempFiles.delete(this.tempPath);
    }
  }
}
