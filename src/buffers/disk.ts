import { mkdir, unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Batch } from '../core/ack.ts';
import { FluxoError } from '../core/errors.ts';
import type { ComponentMetrics } from '../core/metrics.ts';
import { BufferClosedError, type SinkBuffer } from '../core/sink/buffer.ts';
import { DeliveryQueue } from './disk/delivery.ts';
import { errorText, isDiskFull } from './disk/fs.ts';
import { Ledger } from './disk/ledger.ts';
import { acquireLock } from './disk/lock.ts';
import { DiskBufferMetrics } from './disk/metrics.ts';
import { type Frame, RecordEncoder } from './disk/record.ts';
import { type Segment, scanSegments, TIMELINE_STEP_MS, type TimelinePoint } from './disk/scan.ts';
import { type PendingRecord, SegmentWriter } from './disk/writer.ts';

export interface DiskBufferOptions {
  /** `<data_dir>/buffers/<sink id>`. */
  dir: string;
  /** Most bytes of unacknowledged records (on disk or being written). */
  maxSize: number;
  whenFull: 'block' | 'drop_newest';
  sync: 'always' | 'interval';
  syncIntervalMs: number;
  /** Least time between the starts of two group commits (config `commit_interval`). */
  commitIntervalMs: number;
  /**
   * How long an admitted record waits for the sink before it is written (config `write_delay`); a record the
   * sink delivers within it is never written. 0 writes every record at the next commit.
   */
  writeDelayMs: number;
  /** Roll to a new segment file past this size; default max_size / 8, between 1 MiB and 128 MiB. */
  maxSegmentSize?: number;
  /** Encoded bytes of just-written records kept in memory for the sink, so it need not read them back. */
  memoryBytes?: number;
}

export interface DiskBufferContext {
  /** The sink id, for logs and errors. */
  id: string;
  logger: Logger;
  metrics?: ComponentMetrics;
  /** The registry the fsync latency histogram goes to (the pipeline's). */
  registry?: Registry;
}

const MiB = 1024 * 1024;
/** Records admitted but not yet written: past this, pushes wait for the disk (it is slower than the sources). */
const PENDING_LIMIT_BYTES = 32 * MiB;
const FAIL_LOG_EVERY_MS = 30_000;
const LEDGER_EVERY_MS = 10;

interface Waiter {
  batch: Batch;
  frame: Frame;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * The buffer instance that owns each directory in this process. A reloaded sink builds its new buffer before
 * the old one has stopped: the new one waits for the old one to close and then replays what it left.
 */
const owners = new Map<string, DiskBuffer>();

/**
 * A sink's durable buffer: a write-ahead log of records (one per accepted batch) in segment files under
 * `dir`, and a ledger of what the sink acknowledged.
 *
 * - push(): the batch is encoded and admitted, or waits (max_size reached with `block`, the disk slower than
 *   the sources, a write failing). Admitted records are written by group commit; once a record is written and
 *   fsynced, the incoming batch's share is released: its source may acknowledge upstream.
 * - With a write delay, an admitted record is handed to the sink at once and written only if the sink has not
 *   delivered it within the delay. The incoming share is released by whichever comes first, the delivery or the
 *   durable write, so a source acknowledges only what is delivered or on disk; a sink that keeps up costs no
 *   disk writes at all, and one that falls behind or fails gets everything written.
 * - take(): the sink gets records in admission order, each as a batch with its own acknowledgement
 *   (DeliveryQueue). The acknowledged position goes to the ledger; fully acknowledged segments are deleted.
 * - open(): every record after the ledger's position is replayed, in order; a torn tail is truncated.
 */
export class DiskBuffer implements SinkBuffer {
  /** Resolves once the buffer closed its files and released its directory (after close() and the drain). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private readonly maxSegmentSize: number;
  private readonly memoryBytes: number;
  private readonly log: Logger;
  private readonly metrics: DiskBufferMetrics | undefined;

  private opening: Promise<void> | undefined;
  private filesOpening = false;
  /** Set once open: the writer and the sink's side of the log. */
  private writer: SegmentWriter | undefined;
  private queue: DeliveryQueue | undefined;
  private readonly whenOpen: Promise<void>;
  private resolveWhenOpen!: () => void;
  private segments: Segment[] = [];
  private ledger: Ledger | undefined;
  private releaseLock: (() => Promise<void>) | undefined;

  private persistedAckedId = 0;
  private unackedEvents = 0;
  private unackedBytes = 0;
  private pendingBytes = 0;
  private readonly waiters: Waiter[] = [];
  private readonly encoder = new RecordEncoder();
  private timeline: TimelinePoint[] = [];

  private closing = false;
  private aborted = false;
  private finishing = false;
  private successor: DiskBuffer | undefined;
  private ledgerBusy = false;
  private ledgerAgain = false;
  private lastLedgerWrite = Number.NEGATIVE_INFINITY;
  private ledgerChain: Promise<void> = Promise.resolve();
  private ageTimer: NodeJS.Timeout | undefined;
  private lastFailLog = 0;

  constructor(
    private readonly options: DiskBufferOptions,
    private readonly context: DiskBufferContext,
  ) {
    this.maxSegmentSize = options.maxSegmentSize ?? Math.min(128 * MiB, Math.max(MiB, Math.floor(options.maxSize / 8)));
    this.memoryBytes = options.memoryBytes ?? 32 * MiB;
    this.log = context.logger;
    this.metrics = context.metrics ? new DiskBufferMetrics(context.metrics, context.registry) : undefined;
    this.metrics?.maxBytes.set(options.maxSize);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.whenOpen = new Promise((resolve) => {
      this.resolveWhenOpen = resolve;
    });
  }

  get events(): number {
    return this.unackedEvents;
  }

  get bytes(): number {
    return this.unackedBytes;
  }

  /**
   * Locks the directory, reads the ledger, checks every segment (truncating a torn tail) and queues the
   * unacknowledged records for replay. When this process's previous buffer of the same directory still runs
   * (a reload), resolves at once and opens as soon as that one has closed; pushes wait until then.
   */
  open(): Promise<void> {
    this.opening ??= this.startOpening();
    return this.opening;
  }

  push(batch: Batch): Promise<void> | undefined {
    if (this.closing) {
      batch.ack.release('failed');
      return Promise.reject(new BufferClosedError());
    }
    const frame = this.encoder.encode(batch.events);
    const size = frame.bytes.length;
    if (this.waiters.length === 0 && this.canAdmit(size)) {
      this.admit(batch, frame);
      return undefined;
    }
    if (this.mustDrop(size)) {
      this.drop(batch, frame);
      return undefined;
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ batch, frame, resolve, reject }));
  }

  take(maxEvents: number): Promise<Batch[] | null> {
    if (this.queue) return this.queue.take(maxEvents);
    return this.whenOpen.then(() => this.queue?.take(maxEvents) ?? null);
  }

  poll(maxEvents: number): Batch[] {
    return this.queue?.poll(maxEvents) ?? [];
  }

  whenReady(minEvents: number, ready: () => void): () => void {
    if (this.queue) return this.queue.whenReady(minEvents, ready);
    ready();
    return () => {};
  }

  /** Nothing to do: records count until acknowledged, which their own acknowledgements report. */
  done(_batches: Batch[]): void {}

  /**
   * No more pushes. The sink still gets everything written (the drain at shutdown), unless a newer buffer
   * of the same directory waits (a reload): then it stops handing out records and leaves them to that one.
   */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    for (const w of this.waiters.splice(0)) {
      this.encoder.release(w.frame.slab);
      w.batch.ack.release('failed');
      w.reject(new BufferClosedError());
    }
    if (this.successor) this.queue?.stop();
    // What waits for its write delay is written now: it must be on disk if the sink does not drain it.
    this.writer?.flush();
    this.queue?.serve();
    this.maybeFinish();
  }

  /**
   * Stops handing out records at once (the drain deadline passed). Nothing is lost: what the sink did not
   * acknowledge stays on disk for the next start. Only records a failing disk could not write are given up,
   * as failed, so their sources do not acknowledge them.
   */
  abort(): void {
    this.aborted = true;
    this.close();
    this.queue?.stop();
    if (this.writer?.stalled) this.writer.stop();
    this.maybeFinish();
  }

  // ---- opening ----

  private startOpening(): Promise<void> {
    const previous = owners.get(this.options.dir);
    owners.set(this.options.dir, this);
    if (previous && previous !== this) {
      previous.successor = this;
      if (previous.closing) {
        previous.queue?.stop();
        previous.maybeFinish();
      }
      previous.closed
        .then(() => this.openFiles())
        .catch((error: unknown) => {
          this.metrics?.component.error('open_failed');
          this.log.error({ dir: this.options.dir, err: errorText(error) }, 'disk buffer: cannot open after reload');
        });
      return Promise.resolve();
    }
    return this.openFiles();
  }

  private async openFiles(): Promise<void> {
    const { dir } = this.options;
    if (this.finishing) return;
    this.filesOpening = true;
    let ackedId: number;
    /** The id the writer gives first: past everything on disk and everything the ledger says was given. */
    let firstId: number;
    let firstUnacked: { segment: Segment; offset: number } | undefined;
    let damage: string[];
    try {
      await mkdir(dir, { recursive: true });
      this.releaseLock = await acquireLock(dir, `sink ${this.context.id}`);
      const { ledger, state, problem } = await Ledger.open(dir);
      this.ledger = ledger;
      if (problem) {
        this.metrics?.component.error('ledger_damaged');
        this.log.error({ dir, problem }, 'disk buffer: ledger unreadable, replaying every record on disk');
      }
      ackedId = state?.ackedId ?? 0;
      const scan = await scanSegments(dir, ackedId, true);
      damage = scan.damage.map((d) => `${d.segment}:${d.offset}`);
      for (const d of scan.damage) {
        this.metrics?.corrupt.inc(d.lostRecords ?? 1);
        this.log.error(
          { dir, segment: d.segment, offset: d.offset, reason: d.reason, bytes: d.bytes, lost_records: d.lostRecords },
          d.kind === 'torn_tail'
            ? 'disk buffer: torn tail (a write cut by a crash) truncated at the last good record'
            : 'disk buffer: damaged record skipped; the records around it are replayed',
        );
      }
      if (scan.removed.length > 0)
        this.log.warn({ dir, segments: scan.removed }, 'disk buffer: unusable segments removed');
      this.segments = scan.segments;
      this.persistedAckedId = ackedId;
      firstId = Math.max(scan.maxId, ackedId, (state?.nextId ?? 1) - 1) + 1;
      this.unackedEvents = scan.unacked.events;
      this.unackedBytes = scan.unacked.bytes;
      this.timeline = scan.timeline;
      firstUnacked = scan.firstUnacked;
      if (firstUnacked) {
        this.metrics?.replayed.inc(scan.unacked.events);
        this.log.info(
          { dir, events: scan.unacked.events, bytes: scan.unacked.bytes, segments: scan.segments.length },
          'disk buffer: replaying events not acknowledged by the sink before the last stop',
        );
      }
    } catch (error) {
      await this.ledger?.close().catch(() => {});
      this.ledger = undefined;
      await this.releaseLock?.().catch(() => {});
      this.releaseLock = undefined;
      if (owners.get(dir) === this) owners.delete(dir);
      this.filesOpening = false;
      this.maybeFinish();
      if (error instanceof FluxoError) throw error;
      throw new FluxoError(
        'FLUXO_BUFFER_OPEN',
        `sink ${this.context.id}: cannot open the disk buffer ${dir}: ${errorText(error)}`,
        { cause: error },
      );
    }
    this.writer = new SegmentWriter(
      dir,
      this.segments,
      {
        maxSegmentSize: this.maxSegmentSize,
        sync: this.options.sync,
        syncIntervalMs: this.options.syncIntervalMs,
        commitIntervalMs: this.options.commitIntervalMs,
      },
      {
        committed: (records, segment, offsets) => this.committed(records, segment, offsets),
        discarded: (record) => this.discarded(record),
        fsynced: (seconds) => {
          this.metrics?.fsync.observe(seconds);
          if (this.options.sync === 'interval') this.updateGauges();
        },
        failed: (error, attempt) => this.writeFailed(error, attempt),
        recovered: () => this.writeRecovered(),
        abandoned: (records) => this.abandoned(records),
        idle: () => {
          this.queue!.serve();
          this.maybeFinish();
        },
      },
      firstId,
    );
    if (this.closing) this.writer.flush();
    this.queue = new DeliveryQueue(
      {
        segments: this.segments,
        activeSegment: () => this.writer!.activeSegment,
        upstreamDone: () => this.closing && this.waiters.length === 0 && this.writer!.idle,
        advanced: (_ackedId, events, bytes) => this.advanced(events, bytes),
        retain: (slab) => this.encoder.retain(slab),
        release: (slab) => this.encoder.release(slab),
        delivered: (record) => {
          record.delivered = true;
          this.settleShare(record, 'delivered');
          this.writer!.delivered();
        },
        settled: () => this.maybeFinish(),
        damaged: (segment, offset, reason) => {
          this.metrics?.corrupt.inc();
          this.log.error(
            { dir, segment, offset, reason },
            'disk buffer: damaged record skipped; reading goes on at the next good record',
          );
        },
        readFailed: (error) => {
          this.metrics?.component.error('read_failed');
          this.log.error({ dir, err: errorText(error) }, 'disk buffer: read failed, retrying in 1s');
        },
      },
      this.memoryBytes,
      ackedId,
      firstUnacked,
    );
    for (const key of damage) this.queue.knownDamage.add(key);
    this.filesOpening = false;
    this.ageTimer = setInterval(() => this.updateAge(), 1000);
    this.ageTimer.unref();
    void this.deleteAckedSegments();
    this.updateGauges();
    this.updateAge();
    if (this.closing && this.successor) this.queue.stop();
    this.resolveWhenOpen();
    this.admitWaiters();
    this.queue.serve();
    this.maybeFinish();
  }

  // ---- the write side ----

  private canAdmit(size: number): boolean {
    return (
      this.writer !== undefined && !this.writer.stalled && this.pendingBytes < PENDING_LIMIT_BYTES && this.fits(size)
    );
  }

  /** A batch larger than max_size is let in alone rather than blocking forever. */
  private fits(size: number): boolean {
    return this.unackedBytes === 0 || this.unackedBytes + size <= this.options.maxSize;
  }

  /** drop_newest drops only for max_size: a slow or failing disk holds pushes back like block. */
  private mustDrop(size: number): boolean {
    return (
      this.options.whenFull === 'drop_newest' && this.writer !== undefined && !this.writer.stalled && !this.fits(size)
    );
  }

  private drop(batch: Batch, frame: Frame): void {
    this.encoder.release(frame.slab);
    // Opt-in loss: the share counts as settled so the source moves on; the drop is counted.
    this.metrics?.component.bufferDropped.inc(batch.events.length);
    batch.ack.release('delivered');
  }

  private admit(batch: Batch, { bytes: frame, slab }: Frame): void {
    const count = batch.events.length;
    this.pendingBytes += frame.length;
    this.unackedBytes += frame.length;
    this.unackedEvents += count;
    const delay = this.options.writeDelayMs;
    const record: PendingRecord = {
      id: 0,
      frame,
      slab,
      count,
      writtenAt: Date.now(),
      dueAt: performance.now() + delay,
      events: batch.events,
      batch,
      delivered: false,
      urgent: false,
      shareSettled: false,
      early: false,
      written: false,
    };
    // Without a delay the sink gets the record once written; with one, at once if it can keep it in memory.
    // A record the sink will read from disk is written at the next commit: waiting would only delay it.
    if (!this.queue!.admitted(record, delay > 0) && delay > 0) record.urgent = true;
    // The gauges follow at the commit, once per group rather than per batch.
    this.writer!.enqueue(record);
  }

  /** Releases the incoming batch's share once: at its durable write or its delivery, whichever is first. */
  private settleShare(record: PendingRecord, status: 'delivered' | 'failed'): void {
    if (record.shareSettled) return;
    record.shareSettled = true;
    record.batch.ack.release(status);
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      const size = w.frame.bytes.length;
      if (this.canAdmit(size)) {
        this.waiters.shift();
        this.admit(w.batch, w.frame);
      } else if (this.mustDrop(size)) {
        this.waiters.shift();
        this.drop(w.batch, w.frame);
      } else {
        return;
      }
      w.resolve();
    }
  }

  private committed(records: PendingRecord[], segment: Segment, offsets: number[]): void {
    const queue = this.queue!;
    const t = this.timeline;
    let events = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      this.pendingBytes -= r.frame.length;
      events += r.count;
      queue.committed(r, segment, offsets[i]!);
      if (t.length === 0 || r.writtenAt - t[t.length - 1]!.at >= TIMELINE_STEP_MS)
        t.push({ id: r.id, at: r.writtenAt });
      // The writer is done with the bytes; the queue holds its own reference while it keeps the record.
      this.encoder.release(r.slab);
    }
    this.metrics?.written.inc(events);
    this.updateGauges();
    // Durable now: the sources may acknowledge upstream.
    for (const r of records) this.settleShare(r, 'delivered');
    queue.serve();
    this.admitWaiters();
  }

  /** The sink delivered a record before it was due to be written: it never will be. */
  private discarded(record: PendingRecord): void {
    this.pendingBytes -= record.frame.length;
    this.encoder.release(record.slab);
    this.metrics?.unwritten.inc(record.count);
    this.admitWaiters();
  }

  private writeFailed(error: unknown, attempt: number): void {
    // Past the drain deadline a failing write is not retried: what it held was never acknowledged.
    if (this.aborted) this.writer?.stop();
    const full = isDiskFull(error);
    this.metrics?.component.error(full ? 'disk_full' : 'write_failed');
    this.metrics?.diskFull.set(1);
    const now = Date.now();
    if (attempt === 0 || now - this.lastFailLog >= FAIL_LOG_EVERY_MS) {
      this.lastFailLog = now;
      let waiting = 0;
      for (const w of this.waiters) waiting += w.batch.events.length;
      this.log.error(
        { dir: this.options.dir, err: errorText(error), attempt: attempt + 1, waiting_events: waiting },
        full
          ? 'disk buffer: disk full; new events are held back (sources slow down) until space returns'
          : 'disk buffer: write failed; retrying, new events are held back meanwhile',
      );
    }
  }

  private writeRecovered(): void {
    this.metrics?.diskFull.set(0);
    this.log.warn(
      { dir: this.options.dir },
      'disk buffer: writing again, or nothing left to write; new events are accepted',
    );
    this.admitWaiters();
  }

  private abandoned(records: PendingRecord[]): void {
    for (const r of records) {
      this.pendingBytes -= r.frame.length;
      // A record handed out early is counted off when its share with the sink settles.
      if (!r.early) {
        this.unackedBytes -= r.frame.length;
        this.unackedEvents -= r.count;
      }
      this.queue!.abandoned(r);
      this.encoder.release(r.slab);
    }
    this.updateGauges();
    for (const r of records) this.settleShare(r, 'failed');
    this.maybeFinish();
  }

  // ---- acknowledgements and the ledger ----

  private advanced(events: number, bytes: number): void {
    this.unackedEvents -= events;
    this.unackedBytes -= bytes;
    if (this.pendingBytes === 0 && this.queue!.allAcknowledged) {
      // Everything written is acknowledged: nothing is left whatever damage skipped on the way claimed to hold.
      this.unackedEvents = 0;
      this.unackedBytes = 0;
    }
    this.updateGauges();
    this.admitWaiters();
    this.scheduleLedger();
  }

  /**
   * Writes the acknowledged position soon after it moves: one write in flight and at most one every
   * LEDGER_EVERY_MS; the acknowledgements that arrive meanwhile go out together in the next, so a crash
   * replays little again and a sink writing small batches does not cost a ledger write each.
   */
  private scheduleLedger(): void {
    if (!this.ledger || this.finishing) return;
    if (this.ledgerBusy) {
      this.ledgerAgain = true;
      return;
    }
    this.ledgerBusy = true;
    const wait = this.lastLedgerWrite + LEDGER_EVERY_MS - performance.now();
    const write = () => {
      this.lastLedgerWrite = performance.now();
      void this.persistLedger(false).finally(() => {
        this.ledgerBusy = false;
        if (this.ledgerAgain) {
          this.ledgerAgain = false;
          this.scheduleLedger();
        }
      });
    };
    if (wait <= 0) write();
    else setTimeout(write, wait).unref();
  }

  /** Writes the acknowledged position, then deletes the segments it covers (in that order: see deleteAckedSegments). */
  private persistLedger(sync: boolean): Promise<void> {
    this.ledgerChain = this.ledgerChain.then(async () => {
      const ledger = this.ledger;
      const queue = this.queue;
      if (!ledger || !queue) return;
      const ackedId = queue.ackedId;
      try {
        await ledger.write({ ackedId, readId: queue.readId, nextId: this.writer!.next, updatedAt: Date.now() }, sync);
        this.persistedAckedId = ackedId;
      } catch (error) {
        this.metrics?.component.error('ledger_write_failed');
        this.log.error({ dir: this.options.dir, err: errorText(error) }, 'disk buffer: ledger write failed');
        return;
      }
      await this.deleteAckedSegments();
    });
    return this.ledgerChain;
  }

  /**
   * Deletes the oldest segments while every record in them is acknowledged in the ledger on disk: deleting
   * first and crashing before the ledger write would make a restart wonder where those records went.
   */
  private async deleteAckedSegments(): Promise<void> {
    while (this.segments.length > 0) {
      const segment = this.segments[0]!;
      if (
        segment.lastId > this.persistedAckedId ||
        segment === this.writer?.activeSegment ||
        segment === this.queue?.readingSegment
      ) {
        break;
      }
      this.segments.shift();
      try {
        await unlink(segment.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.log.warn({ segment: segment.path, err: errorText(error) }, 'disk buffer: cannot delete a segment');
        }
      }
    }
    this.metrics?.segments.set(this.segments.length);
  }

  // ---- closing ----

  private maybeFinish(): void {
    if (!this.closing || this.finishing || this.filesOpening || this.waiters.length > 0) return;
    const queue = this.queue;
    if (queue && (queue.unsettled > 0 || queue.pumping || !this.writer!.idle || !queue.exhausted)) return;
    this.finishing = true;
    void this.finish();
  }

  private async finish(): Promise<void> {
    clearInterval(this.ageTimer);
    try {
      if (this.writer && this.queue) {
        await this.writer.close();
        this.updateGauges();
        await this.queue.close();
        await this.persistLedger(true);
        const ledger = this.ledger!;
        this.ledger = undefined;
        await ledger.close();
      }
    } catch (error) {
      this.log.error({ dir: this.options.dir, err: errorText(error) }, 'disk buffer: closing failed');
    } finally {
      await this.releaseLock?.().catch(() => {});
      if (owners.get(this.options.dir) === this) owners.delete(this.options.dir);
      this.resolveWhenOpen();
      this.resolveClosed();
    }
  }

  // ---- metrics ----

  private updateGauges(): void {
    const m = this.metrics;
    if (!m) return;
    m.component.bufferEvents.set(this.unackedEvents);
    m.component.bufferBytes.set(this.unackedBytes);
    if (this.writer && this.options.sync === 'interval') {
      m.unsyncedEvents.set(this.writer.unsyncedEvents);
      m.unsyncedBytes.set(this.writer.unsyncedBytes);
    }
  }

  /** The oldest unacknowledged event: written ones from the timeline, then the oldest waiting to be written. */
  private updateAge(): void {
    const t = this.timeline;
    const ackedId = this.queue?.ackedId ?? 0;
    let drop = 0;
    while (drop + 1 < t.length && t[drop + 1]!.id <= ackedId + 1) drop++;
    if (drop > 0) t.splice(0, drop);
    const lastWritten = this.writer!.next - 1;
    let oldest = t.length > 0 && ackedId < lastWritten ? t[0]!.at : Number.POSITIVE_INFINITY;
    const waiting = this.writer!.oldest;
    if (waiting !== undefined && waiting.writtenAt < oldest) oldest = waiting.writtenAt;
    const age = this.unackedEvents > 0 && oldest !== Number.POSITIVE_INFINITY ? (Date.now() - oldest) / 1000 : 0;
    this.metrics?.oldestAge.set(Math.max(0, age));
    this.updateGauges();
  }
}
