import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Batch } from '../../core/ack.ts';
import type { Event } from '../../core/event.ts';
import { syncDirectory } from '../../core/fs.ts';
import { SEGMENT_HEADER_BYTES, SEGMENT_VERSION, type Slab, segmentFileName, segmentHeader } from './record.ts';
import type { Segment } from './scan.ts';

/** A record admitted by the buffer, sealed, waiting to be written. */
export interface PendingRecord {
  readonly id: number;
  readonly frame: Buffer;
  /** Where `frame` lives, released once the record is handed over (or no longer kept) or given up. */
  readonly slab: Slab | undefined;
  readonly count: number;
  readonly writtenAt: number;
  readonly events: Event[];
  /** The incoming batch, whose share is released once the record is durable. */
  readonly batch: Batch;
}

export interface WriterOptions {
  maxSegmentSize: number;
  sync: 'always' | 'interval';
  syncIntervalMs: number;
  /** Least time between the starts of two group commits. */
  commitIntervalMs: number;
}

export interface WriterHooks {
  /** `records` are written (and fsynced with sync: always) at `offsets` in `segment`, in id order. */
  committed(records: PendingRecord[], segment: Segment, offsets: number[]): void;
  /** An fsync (of a segment) completed after `seconds`. */
  fsynced(seconds: number): void;
  /** A write failed; it is retried after a backoff (the buffer holds new records back meanwhile). */
  failed(error: unknown, attempt: number): void;
  /** A write succeeded again after failures. */
  recovered(): void;
  /** The writer was stopped with these records not written: their batches are not durable. */
  abandoned(records: PendingRecord[]): void;
  /** The queue is empty and nothing is being written. */
  idle(): void;
}

/** At most this much is written by one writev, so a large backlog still commits (and acknowledges) in steps. */
const MAX_RUN_BYTES = 8 * 1024 * 1024;
const MAX_BACKOFF_MS = 5000;
const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
const DURABLE_WRITE_FLAGS = WRITE_FLAGS | constants.O_DSYNC;

/**
 * Appends records to the active segment with group commit: records admitted while a write and its fsync are
 * in flight wait in the queue and go out together in the next writev, followed by one fdatasync, however
 * many batches they came from. Rolls to a new segment at `maxSegmentSize`. A failed write (ENOSPC, EIO)
 * leaves the records queued and is retried with backoff; bytes past the last commit are cut off first.
 */
export class SegmentWriter {
  private queue: PendingRecord[] = [];
  private head = 0;
  private active: { segment: Segment; fh: FileHandle; unsynced: boolean } | undefined;
  private running = false;
  private syncDue = false;
  private stopped = false;
  private readonly abortSleep = new AbortController();
  private idleWaiters: (() => void)[] = [];
  private syncTimer: NodeJS.Timeout | undefined;
  /** When the last group commit started (performance.now()). */
  private lastCommitAt = Number.NEGATIVE_INFINITY;
  /** Something failed and has not succeeded since. */
  stalled = false;
  /** Written but not yet fsynced (sync: interval): what a power loss could take. */
  unsyncedEvents = 0;
  unsyncedBytes = 0;

  constructor(
    private readonly dir: string,
    /** The log's segments, oldest first; the writer appends the ones it creates. */
    private readonly segments: Segment[],
    private readonly options: WriterOptions,
    private readonly hooks: WriterHooks,
  ) {
    if (options.sync === 'interval') {
      this.syncTimer = setInterval(() => {
        if (this.active?.unsynced) {
          this.syncDue = true;
          this.kick();
        }
      }, options.syncIntervalMs);
      this.syncTimer.unref();
    }
  }

  get activeSegment(): Segment | undefined {
    return this.active?.segment;
  }

  /** Records admitted and not yet written. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  get idle(): boolean {
    return !this.running && this.queued === 0;
  }

  enqueue(record: PendingRecord): void {
    this.queue.push(record);
    this.kick();
  }

  /** Waits for the queue to be written, then fsyncs and closes the active segment. */
  async close(): Promise<void> {
    while (!this.idle && !this.stopped) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.stop();
    const active = this.active;
    this.active = undefined;
    if (!active) return;
    try {
      if (active.unsynced) await this.sync(active);
    } finally {
      await active.fh.close();
    }
  }

  /** Stops at once: a failed write is not retried again, and what is not written is handed to `abandoned`. */
  stop(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    if (this.stopped) return;
    this.stopped = true;
    this.abortSleep.abort();
    if (!this.running) this.abandonRest();
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    // One turn later, so that every batch pushed in this turn of the event loop joins the same write (the loop
    // waits longer while the last commit started less than commit_interval ago).
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    try {
      while (!this.stopped) {
        if (this.head < this.queue.length) {
          const wait = this.lastCommitAt + this.options.commitIntervalMs - performance.now();
          if (wait > 0) {
            try {
              await sleep(wait, undefined, { signal: this.abortSleep.signal });
            } catch {
              break;
            }
          }
          try {
            await this.writeRun();
          } catch (error) {
            this.stalled = true;
            this.hooks.failed(error, attempt);
            await this.cutUncommitted();
            try {
              await sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** attempt), undefined, { signal: this.abortSleep.signal });
            } catch {
              break;
            }
            attempt++;
            continue;
          }
          if (this.stalled) {
            this.stalled = false;
            attempt = 0;
            this.hooks.recovered();
          }
        } else if (this.syncDue) {
          this.syncDue = false;
          if (this.active?.unsynced) {
            try {
              await this.sync(this.active);
            } catch (error) {
              // Already acknowledged (sync: interval): retried at the next interval, reported meanwhile.
              this.hooks.failed(error, 0);
            }
          }
        } else {
          break;
        }
      }
    } finally {
      this.running = false;
      if (this.head > 0) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (this.stopped) this.abandonRest();
      for (const w of this.idleWaiters.splice(0)) w();
      if (this.idle) this.hooks.idle();
    }
  }

  private async writeRun(): Promise<void> {
    const first = this.queue[this.head]!;
    let active = this.active;
    if (
      !active ||
      (active.segment.size > SEGMENT_HEADER_BYTES &&
        active.segment.size + first.frame.length > this.options.maxSegmentSize)
    ) {
      active = await this.roll(first.id);
    }
    const segment = active.segment;
    const buffers: Buffer[] = [];
    const offsets: number[] = [];
    const records: PendingRecord[] = [];
    let total = 0;
    if (segment.size === 0) {
      buffers.push(segmentHeader());
      total = SEGMENT_HEADER_BYTES;
    }
    const limit = Math.max(this.options.maxSegmentSize, segment.size + total + first.frame.length);
    for (let i = this.head; i < this.queue.length; i++) {
      const r = this.queue[i]!;
      if (records.length > 0 && (segment.size + total + r.frame.length > limit || total >= MAX_RUN_BYTES)) break;
      offsets.push(segment.size + total);
      buffers.push(r.frame);
      records.push(r);
      total += r.frame.length;
    }
    const started = performance.now();
    this.lastCommitAt = started;
    const { bytesWritten } = await active.fh.writev(buffers, segment.size);
    if (bytesWritten !== total) {
      throw Object.assign(new Error(`short write: ${bytesWritten} of ${total} bytes (disk full?)`), {
        code: 'FLUXO_SHORT_WRITE',
      });
    }
    if (this.options.sync === 'always') {
      // O_DSYNC: the writev returned once the data (and the size) were on disk, like a write and fdatasync.
      this.hooks.fsynced((performance.now() - started) / 1000);
    } else {
      active.unsynced = true;
      for (const r of records) this.unsyncedEvents += r.count;
      this.unsyncedBytes += total;
    }
    segment.size += total;
    segment.lastId = records[records.length - 1]!.id;
    this.head += records.length;
    // Under a steady load the loop never ends; drop what is written so the queue does not keep it alive.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.hooks.committed(records, segment, offsets);
  }

  private async sync(active: { fh: FileHandle; unsynced: boolean }): Promise<void> {
    const started = performance.now();
    await active.fh.datasync();
    active.unsynced = false;
    this.unsyncedEvents = 0;
    this.unsyncedBytes = 0;
    this.hooks.fsynced((performance.now() - started) / 1000);
  }

  /** Closes the active segment (fsynced) and starts a new one named after `firstId`; its directory entry is fsynced too. */
  private async roll(firstId: number): Promise<{ segment: Segment; fh: FileHandle; unsynced: boolean }> {
    const old = this.active;
    if (old) {
      if (old.unsynced) await this.sync(old);
      this.active = undefined;
      await old.fh.close();
    }
    const segment: Segment = {
      firstId,
      path: join(this.dir, segmentFileName(firstId)),
      size: 0,
      lastId: firstId - 1,
      version: SEGMENT_VERSION,
    };
    // Truncated: a file of this name can only be the debris of a failed attempt; no record in it was ever
    // committed. With sync: always it is opened O_DSYNC, so each writev is durable when it returns: one
    // thread-pool job per group commit instead of a write and an fdatasync, each waking the event loop.
    const fh = await open(segment.path, this.options.sync === 'always' ? DURABLE_WRITE_FLAGS : WRITE_FLAGS);
    try {
      await syncDirectory(this.dir);
    } catch (error) {
      await fh.close();
      throw error;
    }
    this.segments.push(segment);
    this.active = { segment, fh, unsynced: false };
    return this.active;
  }

  /** After a failed write: gives back the space of what was partly written. Best effort: reads stop at the committed size anyway. */
  private async cutUncommitted(): Promise<void> {
    const active = this.active;
    if (!active) return;
    try {
      await active.fh.truncate(active.segment.size);
    } catch {
      // positional writes overwrite the debris at the next attempt
    }
  }

  private abandonRest(): void {
    const rest = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    if (rest.length > 0) this.hooks.abandoned(rest);
  }
}
