import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Batch } from '../../core/ack.ts';
import type { Event } from '../../core/event.ts';
import { syncDirectory } from '../../core/fs.ts';
import { HeadQueue } from '../head-queue.ts';
import {
  SEGMENT_HEADER_BYTES,
  SEGMENT_VERSION,
  type Slab,
  sealRecord,
  segmentFileName,
  segmentHeader,
} from './record.ts';
import type { Segment } from './scan.ts';

/** A record admitted by the buffer, waiting to be written. */
export interface PendingRecord {
  /** The log id, given when its group commit starts (0 until then: a record the sink delivers first has none). */
  id: number;
  /** Header (blank until the commit seals it) and payload. */
  readonly frame: Buffer;
  /** Where `frame` lives; the writer's reference is released once the record is written or discarded. */
  readonly slab: Slab | undefined;
  readonly count: number;
  /** When it was admitted (epoch ms): the header's time, for the oldest-age gauge after a restart. */
  readonly writtenAt: number;
  /** performance.now() past which it is written unless the sink delivered it (admission + write_delay). */
  readonly dueAt: number;
  readonly events: Event[];
  /** The incoming batch, whose share is released once the record is durable or delivered (see DiskBuffer). */
  readonly batch: Batch;
  /** The sink acknowledged it before it was written: it is never written. */
  delivered: boolean;
  /** Written at the next commit whatever its dueAt: the sink reads it from disk, not from memory. */
  urgent: boolean;
  /** Its incoming share was released (durable, delivered or given up). */
  shareSettled: boolean;
  /** Handed to the sink from memory before being written (DeliveryQueue.admitted). */
  early: boolean;
  /** Its commit completed: `id` is on disk. */
  written: boolean;
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
  /** A record the sink delivered left the queue without being written. */
  discarded(record: PendingRecord): void;
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
 * Appends records to the active segment with group commit: the records due by the time a commit starts go out
 * together in one writev (O_DSYNC with sync: always), however many batches they came from. A record is due at
 * its `dueAt` (admission + write_delay), or at once when marked urgent or when the writer is closing; records
 * the sink delivered before then are dropped from the queue unwritten. Two commits start at least
 * `commitIntervalMs` apart. Rolls to a new segment at `maxSegmentSize`. A failed write (ENOSPC, EIO) leaves
 * the records queued and is retried with backoff; bytes past the last commit are cut off first.
 *
 * Nothing runs while nothing is due: the writer waits on one timer, set for the first record's due time and
 * moved when the sink's deliveries take records off the head, so a sink that keeps up costs no wakeups here.
 */
export class SegmentWriter {
  private readonly queue = new HeadQueue<PendingRecord>();
  private active: { segment: Segment; fh: FileHandle; unsynced: boolean } | undefined;
  /** A commit, an fsync or a roll is under way. */
  private running = false;
  /** A run is scheduled by setImmediate. */
  private immediate = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private syncDue = false;
  private stopped = false;
  /** Everything queued is due now (closing). */
  private flushing = false;
  private attempt = 0;
  private retryAt = Number.NEGATIVE_INFINITY;
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
    /** The id the next written record gets. */
    private nextId: number,
  ) {
    if (options.sync === 'interval') {
      this.syncTimer = setInterval(() => {
        if (this.active?.unsynced) {
          this.syncDue = true;
          this.schedule();
        }
      }, options.syncIntervalMs);
      this.syncTimer.unref();
    }
  }

  get activeSegment(): Segment | undefined {
    return this.active?.segment;
  }

  /** The id the next written record will get. */
  get next(): number {
    return this.nextId;
  }

  /** Records admitted and neither written nor discarded. */
  get queued(): number {
    return this.queue.length;
  }

  /** The oldest record waiting to be written (the sink has not delivered it), if any. */
  get oldest(): PendingRecord | undefined {
    for (let i = 0; i < this.queue.length; i++) {
      const r = this.queue.at(i)!;
      if (!r.delivered) return r;
    }
    return undefined;
  }

  get idle(): boolean {
    return !this.running && this.queued === 0;
  }

  enqueue(record: PendingRecord): void {
    this.queue.push(record);
    // An urgent record makes everything before it urgent too: the log is written in order.
    if (record.urgent) {
      for (let i = this.queue.length - 2; i >= 0 && !this.queue.at(i)!.urgent; i--) this.queue.at(i)!.urgent = true;
    }
    this.schedule();
  }

  /** The sink delivered records: those at the head leave the queue, and the next due time may move. */
  delivered(): void {
    if (!this.running && this.queue.at(0)?.delivered) this.schedule();
  }

  /** Everything queued is due now: the buffer is closing (its records must be on disk for the next start). */
  flush(): void {
    this.flushing = true;
    this.schedule();
  }

  /** Writes the queue, then fsyncs and closes the active segment. */
  async close(): Promise<void> {
    this.flush();
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
    this.clearTimer();
    if (!this.running) this.finishRun();
  }

  /**
   * Decides what runs next: drops delivered records off the head, then writes what is due (one turn later, so
   * that every batch pushed in this turn of the event loop joins the same write), or sets the timer for when
   * something will be.
   */
  private schedule(): void {
    if (this.running || this.immediate || this.stopped) return;
    this.discardDelivered();
    const now = performance.now();
    const due = this.nextDue();
    if (due === undefined) {
      this.clearTimer();
    } else if (due <= now) {
      this.clearTimer();
      this.immediate = true;
      setImmediate(this.runNow);
    } else if (due !== this.timerAt) {
      this.clearTimer();
      this.timerAt = due;
      this.timer = setTimeout(this.onTimer, due - now);
    }
    if (this.queued > 0) return;
    // The sink delivered everything a failing write held: nothing is left to retry, and holding new records
    // back would wait for a write that never comes. The next write tells whether the disk has room again.
    if (this.stalled) this.recover();
    this.notifyIdle();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.schedule();
  };

  private readonly runNow = (): void => {
    this.immediate = false;
    void this.run();
  };

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  /** When the next commit (or fsync) should start; undefined when nothing waits. */
  private nextDue(): number | undefined {
    const first = this.queue.at(0);
    let due: number | undefined;
    if (first !== undefined) {
      due = this.flushing || first.urgent ? Number.NEGATIVE_INFINITY : first.dueAt;
      due = Math.max(due, this.lastCommitAt + this.options.commitIntervalMs, this.retryAt);
    } else if (this.syncDue) {
      due = Number.NEGATIVE_INFINITY;
    }
    return due;
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      this.discardDelivered();
      if (this.queue.length > 0) {
        try {
          await this.writeRun();
        } catch (error) {
          this.stalled = true;
          this.hooks.failed(error, this.attempt);
          await this.cutUncommitted();
          this.retryAt = performance.now() + Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.attempt);
          this.attempt++;
          return;
        }
        this.retryAt = Number.NEGATIVE_INFINITY;
        if (this.stalled) this.recover();
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
      }
    } finally {
      this.running = false;
      if (this.stopped) this.finishRun();
      else this.schedule();
    }
  }

  /** After a stop: hands what is not written to `abandoned` and wakes close(). */
  private finishRun(): void {
    this.abandonRest();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
    if (this.idle) this.hooks.idle();
  }

  /** No failure stands any more: new records are let in again and the backoff starts over. */
  private recover(): void {
    this.stalled = false;
    this.attempt = 0;
    this.retryAt = Number.NEGATIVE_INFINITY;
    this.hooks.recovered();
  }

  /** Takes the records the sink delivered off the head of the queue: they are never written. */
  private discardDelivered(): void {
    while (this.queue.at(0)?.delivered) this.hooks.discarded(this.queue.shift()!);
  }

  /**
   * Writes the due records from the head in one writev: every record whose due time passed, and all of them
   * when one behind is urgent or the writer is closing. Records the sink delivered meanwhile are skipped. Ids
   * are given here, in log order, so the log's ids stay consecutive whatever was skipped.
   */
  private async writeRun(): Promise<void> {
    const now = performance.now();
    const due = (r: PendingRecord) => this.flushing || r.urgent || r.dueAt <= now;
    const first = this.queue.at(0);
    if (first === undefined || !due(first)) return;
    let active = this.active;
    if (
      !active ||
      (active.segment.size > SEGMENT_HEADER_BYTES &&
        active.segment.size + first.frame.length > this.options.maxSegmentSize)
    ) {
      active = await this.roll(this.nextId);
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
    let end = 0;
    for (; end < this.queue.length; end++) {
      const r = this.queue.at(end)!;
      if (!due(r)) break;
      if (r.delivered) continue;
      if (records.length > 0 && (segment.size + total + r.frame.length > limit || total >= MAX_RUN_BYTES)) break;
      r.id = this.nextId++;
      sealRecord(r.frame, r.id, r.writtenAt, r.count);
      offsets.push(segment.size + total);
      buffers.push(r.frame);
      records.push(r);
      total += r.frame.length;
    }
    if (records.length > 0) {
      const started = performance.now();
      this.lastCommitAt = started;
      try {
        const { bytesWritten } = await active.fh.writev(buffers, segment.size);
        if (bytesWritten !== total) {
          throw Object.assign(new Error(`short write: ${bytesWritten} of ${total} bytes (disk full?)`), {
            code: 'FLUXO_SHORT_WRITE',
          });
        }
      } catch (error) {
        // Not written: the ids go back, so that the next attempt, which may skip records delivered meanwhile,
        // still numbers the log without a gap.
        this.nextId = records[0]!.id;
        for (const r of records) r.id = 0;
        throw error;
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
      for (const r of records) r.written = true;
    }
    for (let i = 0; i < end; i++) {
      const r = this.queue.shift()!;
      if (r.id === 0) this.hooks.discarded(r);
    }
    if (records.length > 0) this.hooks.committed(records, segment, offsets);
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
    const rest = this.queue.clear();
    if (rest.length > 0) this.hooks.abandoned(rest);
  }
}
