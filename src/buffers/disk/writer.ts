import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../core/fs.ts';
import { HeadQueue } from '../head-queue.ts';
import type { PendingRecord } from './pending.ts';
import { SEGMENT_HEADER_BYTES, SEGMENT_VERSION, sealRecord, segmentFileName, segmentHeader } from './record.ts';
import type { Segment } from './scan.ts';

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
 * its `dueAt` (admission + write_delay), or at once when it is urgent or when the writer is closing; records
 * the sink delivered before then are dropped from the queue unwritten. Two commits start at least
 * `commitIntervalMs` apart. Rolls to a new segment at `maxSegmentSize`. A failed write (ENOSPC, EIO) leaves
 * the records queued and is retried with backoff; bytes past the last commit are cut off first.
 *
 * Nothing runs while nothing is due: the writer waits on one timer, set for the first record's due time and
 * moved when the sink's deliveries take records off the head, so a sink that keeps up costs no wakeups here.
 */
export class SegmentWriter {
  private readonly queue = new HeadQueue<PendingRecord>();
  /**
   * How many records at the head of the queue are written at the next commit whatever their dueAt (the sink
   * reads them from disk, not from memory). An urgent record makes every one before it urgent too, since the
   * log is written in order: the urgent ones are always a prefix of the queue.
   */
  private urgent = 0;
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
  private writtenNext: number;
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
    this.writtenNext = nextId;
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

  /** One past the last record whose write returned: the ledger's `nextId` (ids of a write in flight are not in it). */
  get written(): number {
    return this.writtenNext;
  }

  /** Records admitted and neither written nor discarded. */
  get queued(): number {
    return this.queue.length;
  }

  /** The oldest record waiting to be written (the sink has not delivered it), if any. */
  get oldest(): PendingRecord | undefined {
    for (let i = 0; i < this.queue.length; i++) {
      const r = this.queue.at(i)!;
      if (r.state !== 'delivered') return r;
    }
    return undefined;
  }

  get idle(): boolean {
    return !this.running && this.queued === 0;
  }

  /** Queues a record; `urgent`: it (and everything before it) is written at the next commit. */
  enqueue(record: PendingRecord, urgent: boolean): void {
    this.queue.push(record);
    if (urgent) this.urgent = this.queue.length;
    this.schedule();
  }

  /** The sink delivered records: those at the head leave the queue, and the next due time may move. */
  delivered(): void {
    if (!this.running && this.queue.at(0)?.state === 'delivered') this.schedule();
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
      due = this.flushing || this.urgent > 0 ? Number.NEGATIVE_INFINITY : first.dueAt;
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
    while (this.queue.at(0)?.state === 'delivered') this.hooks.discarded(this.shift()!);
  }

  private shift(): PendingRecord | undefined {
    const record = this.queue.shift();
    if (record !== undefined && this.urgent > 0) this.urgent--;
    return record;
  }

  /**
   * Writes the due records from the head in one writev: every record whose due time passed, and all of them
   * when one behind is urgent or the writer is closing. Records the sink delivered meanwhile are skipped. Ids
   * are taken here, in log order, so the log's ids stay consecutive whatever was skipped; a record gets its id
   * once the write succeeded (an id says the record is in the log).
   */
  private async writeRun(): Promise<void> {
    const now = performance.now();
    const due = (r: PendingRecord, i: number) => this.flushing || i < this.urgent || r.dueAt <= now;
    const first = this.queue.at(0);
    if (first === undefined || !due(first, 0)) return;
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
    const firstId = this.nextId;
    let end = 0;
    for (; end < this.queue.length; end++) {
      const r = this.queue.at(end)!;
      if (!due(r, end)) break;
      if (r.state === 'delivered') continue;
      if (records.length > 0 && (segment.size + total + r.frame.length > limit || total >= MAX_RUN_BYTES)) break;
      sealRecord(r.frame, this.nextId++, r.writtenAt, r.count);
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
        this.nextId = firstId;
        throw error;
      }
      for (let i = 0; i < records.length; i++) records[i]!.id = firstId + i;
      this.writtenNext = firstId + records.length;
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
    }
    for (let i = 0; i < end; i++) {
      const r = this.shift()!;
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
    this.urgent = 0;
    const rest = this.queue.clear();
    if (rest.length > 0) this.hooks.abandoned(rest);
  }
}
