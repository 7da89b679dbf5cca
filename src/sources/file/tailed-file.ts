import { createReadStream, type ReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createGunzip, type Gunzip } from 'node:zlib';
import { MultilineAggregator, type MultilineRules } from '../../codecs/multiline.ts';
import { AckWindow } from './ack-window.ts';
import type { CheckpointRecord } from './checkpoints.ts';
import { LineFramer, type LineFramerOptions } from './line-framer.ts';

/**
 * One file being tailed: where it is, what identifies it, how far it was read, framed and emitted, and its
 * batches in flight. It keeps its state when its handle is closed to stay within `max_open_files`.
 */
export class TailedFile {
  record: CheckpointRecord;
  /** `${record.key}:` — the prefix of every event id of this file. */
  idPrefix: string;
  window: AckWindow;
  handle: FileHandle | undefined;
  gunzip: GzipChunkReader | undefined;
  readonly framer: LineFramer;
  readonly multiline: MultilineAggregator | undefined;
  /** End of the last batch handed to the window: the next batch starts here. */
  emittedTo: number;
  /** The last read found no more bytes; the next service checks size first. */
  atEof = false;
  lastGrowthAt: number;
  /** Its path no longer leads to it (renamed out of the globs, or deleted): read to its end, then released. */
  orphaned = false;
  deleted = false;
  /** A gzip file read to its end; `finishedSize` is its compressed size then. */
  finished = false;
  finishedSize = -1;
  scanId = 0;
  /** Last error logged for this file (ms), to log a persistent error once a minute, not once a poll. */
  lastErrorLogAt = 0;

  constructor(
    public path: string,
    readonly dev: number,
    readonly ino: number,
    readonly birth: number,
    readonly gzip: boolean,
    record: CheckpointRecord,
    offset: number,
    framerOptions: LineFramerOptions,
    multiline: MultilineRules | undefined,
    now: number,
    /** The batches in flight of this record's previous reader (a copy continuing a truncated file). */
    window?: AckWindow,
  ) {
    this.record = record;
    this.idPrefix = `${record.key}:`;
    this.window = window ?? new AckWindow(record.offset);
    this.framer = new LineFramer(framerOptions, offset);
    this.multiline = multiline === undefined ? undefined : new MultilineAggregator(multiline);
    this.emittedTo = offset;
    this.lastGrowthAt = now;
  }

  get id(): string {
    return `${this.dev}:${this.ino}`;
  }

  /** Next byte to read. */
  get readOffset(): number {
    return this.framer.position;
  }

  /** Where a restart must resume: before any partial line or multiline group still held. */
  get safeOffset(): number {
    const framed = this.framer.safeOffset;
    const ml = this.multiline;
    return ml?.holding && ml.heldPosition < framed ? ml.heldPosition : framed;
  }

  /**
   * Starts over at `offset` under `record` (new content after a truncation) or the same record (rewind). A
   * gzip reader must be closed by the caller (it cannot seek back).
   */
  restartAt(offset: number, record: CheckpointRecord = this.record): void {
    if (record !== this.record) {
      this.record = record;
      this.idPrefix = `${record.key}:`;
      this.window = new AckWindow(record.offset);
    }
    this.framer.reset(offset);
    this.multiline?.reset();
    this.emittedTo = offset;
    this.atEof = false;
  }
}

/**
 * Decompressed chunks of a gzip file (all members), from decompressed offset `skip` on. Gzip files are read
 * once to their end: offsets and checkpoints count decompressed bytes.
 */
export class GzipChunkReader {
  private readonly source: ReadStream;
  private readonly gunzip: Gunzip;
  private readonly iterator: AsyncIterator<Buffer>;
  private toSkip: number;

  constructor(path: string, skip: number) {
    this.toSkip = skip;
    this.source = createReadStream(path, { highWaterMark: 256 * 1024 });
    this.gunzip = createGunzip({ chunkSize: 64 * 1024 });
    this.source.on('error', (error) => this.gunzip.destroy(error));
    this.source.pipe(this.gunzip);
    this.iterator = this.gunzip[Symbol.asyncIterator]();
  }

  /** The next chunk, or undefined at the end. Throws on a damaged or unfinished (still being written) file. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const r = await this.iterator.next();
      if (r.done) return undefined;
      let chunk = r.value as Buffer;
      if (this.toSkip > 0) {
        if (chunk.length <= this.toSkip) {
          this.toSkip -= chunk.length;
          continue;
        }
        chunk = chunk.subarray(this.toSkip);
        this.toSkip = 0;
      }
      return chunk;
    }
  }

  close(): void {
    this.source.destroy();
    this.gunzip.destroy();
  }
}
