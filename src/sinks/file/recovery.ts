import { type FileHandle, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { constants, createGunzip } from 'node:zlib';
import type { Logger } from 'pino';
import { syncDirectory } from '../../core/fs.ts';
import { GzipMemberWriter } from './gzip-member.ts';
import { type Finisher, liveTempFiles, TEMP_NAME, writeFully } from './open-file.ts';

/** What a crashed process left behind: a gzip rewrite interrupted before its rename, a Parquet seal before its commit. */
const LEFTOVER_NAME = /^\.(.+)\.([0-9a-f]{8})\.(?:recovery|sealing)$/;

export interface RecoveryOptions {
  /** The template's static directory ('' = the working directory). */
  root: string;
  /** How many levels below `root` files are written. */
  depth: number;
  owner: string;
  /** A temp file of another instance untouched this long is adopted: its writer is gone. */
  staleForeignMs: number;
  /** Seals and commits a recovered staging file (NDJSON: commits it under its final name). */
  finish: Finisher;
  logger: Logger;
  now: number;
}

export interface RecoveryReport {
  /** Temp files finalized under their final name. */
  files: number;
  /** Uncompressed bytes of whole lines kept. */
  bytes: number;
  /** Uncompressed bytes of torn last lines cut off (never acknowledged). */
  droppedBytes: number;
  /** Temp files without a single whole line, removed. */
  empty: number;
  /** gzip temp files that stopped decompressing before their end; kept as `.….damaged` next to the result. */
  damaged: number;
  /** Temp files of another live instance, left alone. */
  foreign: number;
  /** Temp files that could not be recovered now (I/O error), left in place for the next start. */
  failed: number;
  /** Which of them (a directory that could not be scanned counts in `failed` but has no file here). */
  failedFiles: string[];
}

interface Recovered {
  bytes: number;
  dropped: number;
  damaged?: string;
}

/**
 * Finalizes the `.inprogress` files a killed process left: every line in them was acknowledged (it was
 * fdatasync'ed before write() resolved), only a torn last line was not. Never throws for one bad file.
 */
export async function recoverInProgressFiles(options: RecoveryOptions): Promise<RecoveryReport> {
  const report: RecoveryReport = {
    files: 0,
    bytes: 0,
    droppedBytes: 0,
    empty: 0,
    damaged: 0,
    foreign: 0,
    failed: 0,
    failedFiles: [],
  };
  const { logger, owner } = options;
  for await (const path of hiddenFiles(options.root || '.', options.depth, logger, report)) {
    const name = path.slice(path.lastIndexOf('/') + 1);
    const leftover = LEFTOVER_NAME.exec(name);
    if (leftover !== null) {
      if (leftover[2] === owner && !liveTempFiles.has(path)) await unlink(path).catch(() => {});
      continue;
    }
    const m = TEMP_NAME.exec(name);
    if (m === null || liveTempFiles.has(path)) continue;
    try {
      if (m[2] !== owner) {
        const { mtimeMs } = await stat(path);
        if (options.now - mtimeMs < options.staleForeignMs) {
          report.foreign++;
          continue;
        }
        logger.warn({ file: path }, 'adopting a stale in-progress file of another fluxo instance');
      }
      const result = await recoverFile(path, join(dirname(path), m[1]!), m[1]!, owner, options.finish);
      if (result.bytes === 0 && result.damaged === undefined) report.empty++;
      else if (result.bytes > 0) report.files++;
      report.bytes += result.bytes;
      report.droppedBytes += result.dropped;
      if (result.damaged !== undefined) {
        report.damaged++;
        logger.warn(
          { file: path, recovered_bytes: result.bytes, kept_as: result.damaged },
          'in-progress gzip file is damaged: recovered what decompresses, kept the original',
        );
      }
      logger.debug({ file: path, recovered_bytes: result.bytes, dropped_bytes: result.dropped }, 'recovered file');
    } catch (error) {
      report.failed++;
      report.failedFiles.push(path);
      logger.error({ file: path, err: error }, 'could not recover an in-progress file; it stays and is tried again');
    }
  }
  return report;
}

/**
 * Finalizes one staging file of this sink instance that failed to close, the way a start would (whole lines
 * kept, gzip rewritten); `finish` seals and commits it under the final name its temp name carries, so a retry
 * never makes a second file. Resolves with the bytes kept (0: nothing was left, e.g. the failed close had
 * committed it already); throws, leaving the file in place, when it cannot be finalized now.
 */
export async function finalizeStagingFile(path: string, owner: string, finish: Finisher): Promise<number> {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const m = TEMP_NAME.exec(name);
  if (m === null) throw new Error(`not a staging file name: ${path}`);
  try {
    await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  const result = await recoverFile(path, join(dirname(path), m[1]!), m[1]!, owner, finish);
  return result.bytes;
}

async function* hiddenFiles(
  dir: string,
  depth: number,
  logger: Logger,
  report: RecoveryReport,
): AsyncGenerator<string> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      report.failed++;
      logger.error({ dir, err: error }, 'could not scan a directory for in-progress files');
    }
    return;
  }
  for (const entry of entries) {
    const path = dir === '.' ? entry.name : join(dir, entry.name);
    if (entry.isFile() && entry.name.startsWith('.')) yield path;
    else if (entry.isDirectory() && depth > 0) yield* hiddenFiles(path, depth - 1, logger, report);
  }
}

async function recoverFile(
  temp: string,
  final: string,
  finalName: string,
  owner: string,
  finish: Finisher,
): Promise<Recovered> {
  const handle = await open(temp, 'r+');
  let closed = false;
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    if (bytesRead > 0 && magic[0] === 0x1f && (bytesRead === 1 || magic[1] === 0x8b)) {
      await handle.close();
      closed = true;
      return await recoverGzip(temp, final, finalName, owner, finish);
    }
    const { size } = await handle.stat();
    const keep = await endOfLastLine(handle, size);
    if (keep < size) await handle.truncate(keep);
    if (keep > 0) await handle.sync();
    await handle.close();
    closed = true;
    if (keep === 0) {
      await unlink(temp);
      await syncDirectory(dirname(temp));
    } else {
      await finish({ path: temp, finalPath: final, bytes: keep });
    }
    return { bytes: keep, dropped: size - keep };
  } finally {
    if (!closed) await handle.close().catch(() => {});
  }
}

/** The length of the file up to and including its last `\n` (0 when it has none). */
async function endOfLastLine(handle: FileHandle, size: number): Promise<number> {
  const chunk = Buffer.allocUnsafe(64 * 1024);
  for (let end = size; end > 0; ) {
    const start = Math.max(0, end - chunk.length);
    const { bytesRead } = await handle.read(chunk, 0, end - start, start);
    const i = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (i >= 0) return start + i + 1;
    end = start;
  }
  return 0;
}

/** Input piece size of the first pass; a damaged file has its failing piece replayed byte by byte. */
const PIECE = 16 * 1024;

/**
 * Inflates the file, handing the output to `onData` in order. zlib drops the output of the call that hits
 * damage, so bytes from `fineFrom` on are fed one at a time: then nothing decoded before the damage is lost.
 * Returns the error that stopped it (undefined at a clean or truncated end) and where the failing piece began.
 */
async function inflateFile(
  handle: FileHandle,
  size: number,
  fineFrom: number,
  onData: (chunk: Buffer) => Promise<void>,
): Promise<{ error: unknown; failedAt: number }> {
  const gunzip = createGunzip({ finishFlush: constants.Z_SYNC_FLUSH });
  const output: Buffer[] = [];
  let error: unknown;
  let wake: (() => void) | undefined;
  gunzip.on('data', (chunk: Buffer) => output.push(chunk));
  gunzip.on('error', (e) => {
    error = e;
    wake?.();
  });
  const step = (start: (done: () => void) => void) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      start(() => resolve());
    });
  const piece = Buffer.allocUnsafe(PIECE);
  let position = 0;
  let failedAt = 0;
  try {
    while (position < size && error === undefined) {
      const length = position >= fineFrom ? 1 : Math.min(PIECE, fineFrom - position);
      const { bytesRead } = await handle.read(piece, 0, length, position);
      if (bytesRead === 0) break;
      failedAt = position;
      position += bytesRead;
      // A copy: zlib may still hold the buffer when the next piece is read into it.
      const input = Buffer.from(piece.subarray(0, bytesRead));
      await step((done) => gunzip.write(input, () => done()));
      for (const chunk of output.splice(0)) await onData(chunk);
    }
    if (error === undefined) {
      await step((done) => {
        gunzip.once('end', done);
        gunzip.end();
      });
      for (const chunk of output.splice(0)) await onData(chunk);
    }
  } finally {
    gunzip.destroy();
  }
  return { error, failedAt };
}

/**
 * Decompresses what can be (Z_SYNC_FLUSH: a member cut short is read up to its last flush point), keeps whole
 * lines, and writes them as a new complete gzip file, renamed over the final name; then the temp file goes
 * (or, when damaged, is kept as `.<final>.<owner>.damaged` for a closer look).
 */
async function recoverGzip(
  temp: string,
  final: string,
  finalName: string,
  owner: string,
  finish: Finisher,
): Promise<Recovered> {
  const dir = dirname(temp);
  const outPath = join(dir, `.${finalName}.${owner}.recovery`);
  // A scan running meanwhile (a background start-up recovery, a retry of a failed close) must leave it alone.
  liveTempFiles.add(outPath);
  try {
    return await rewriteGzip(temp, outPath, final, owner, finish);
  } finally {
    liveTempFiles.delete(outPath);
  }
}

async function rewriteGzip(
  temp: string,
  outPath: string,
  final: string,
  owner: string,
  finish: Finisher,
): Promise<Recovered> {
  const dir = dirname(temp);
  const finalName = basename(final);
  const input = await open(temp, 'r');
  const out = await open(outPath, 'w');
  const writer = new GzipMemberWriter();
  let position = 0;
  let kept = 0;
  let delivered = 0;
  let tail: Buffer[] = [];
  let tailBytes = 0;
  let ready: Buffer[] = [];
  let readyBytes = 0;
  // Lines are compressed in runs of about a MiB: each encode() ends at a flush point, which costs ratio.
  const flush = async () => {
    if (readyBytes === 0) return;
    const lines = Buffer.concat(ready);
    ready = [];
    readyBytes = 0;
    const bytes = await writer.encode(lines);
    await writeFully(out, bytes, position);
    position += bytes.length;
    writer.commit();
    kept += lines.length;
  };
  const keepLines = async (chunk: Buffer) => {
    delivered += chunk.length;
    const nl = chunk.lastIndexOf(0x0a);
    if (nl < 0) {
      tail.push(chunk);
      tailBytes += chunk.length;
      return;
    }
    const head = chunk.subarray(0, nl + 1);
    const lines = tail.length > 0 ? Buffer.concat([...tail, head]) : head;
    tail = nl + 1 < chunk.length ? [chunk.subarray(nl + 1)] : [];
    tailBytes = chunk.length - nl - 1;
    ready.push(lines);
    readyBytes += lines.length;
    if (readyBytes >= 1024 * 1024) await flush();
  };
  let damage: unknown;
  try {
    const { size } = await input.stat();
    const first = await inflateFile(input, size, Number.POSITIVE_INFINITY, keepLines);
    damage = first.error;
    if (damage !== undefined) {
      // Second pass: the same output again (skipping what was kept), the failing piece byte by byte.
      let skip = delivered;
      await inflateFile(input, size, first.failedAt, async (chunk) => {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          return;
        }
        const rest = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        await keepLines(rest);
      });
    }
    await flush();
    if (kept > 0) {
      await writeFully(out, writer.end(), position);
      await out.sync();
    }
  } catch (error) {
    await out.close().catch(() => {});
    await unlink(outPath).catch(() => {});
    throw error;
  } finally {
    writer.abort();
    await input.close().catch(() => {});
  }
  await out.close();
  const damagedPath = damage === undefined ? undefined : join(dir, `.${finalName}.${owner}.damaged`);
  if (kept > 0) {
    await finish({ path: outPath, finalPath: final, bytes: position });
  } else {
    await unlink(outPath);
  }
  if (damagedPath !== undefined) await rename(temp, damagedPath);
  else await unlink(temp);
  await syncDirectory(dir);
  return { bytes: kept, dropped: tailBytes, damaged: damagedPath };
}
