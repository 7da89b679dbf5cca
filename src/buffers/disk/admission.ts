import type { Logger } from 'pino';
import type { Batch } from '../../core/ack.ts';
import { BufferClosedError } from '../../core/sink/buffer.ts';
import type { DeliveryQueue } from './delivery.ts';
import { errorText, isDiskFull } from './fs.ts';
import type { DiskBufferMetrics, WriteTimeline } from './metrics.ts';
import { PendingRecord } from './pending.ts';
import { type Frame, RecordEncoder } from './record.ts';
import type { Segment } from './scan.ts';
import type { SegmentWriter } from './writer.ts';

const MiB = 1024 * 1024;
/** Records admitted but not yet written: past this, pushes wait for the disk (it is slower than the sources). */
const PENDING_LIMIT_BYTES = 32 * MiB;
const FAIL_LOG_EVERY_MS = 30_000;

export interface AdmissionOptions {
  dir: string;
  maxSize: number;
  whenFull: 'block' | 'drop_newest';
  sync: 'always' | 'interval';
  writeDelayMs: number;
}

interface Waiter {
  batch: Batch;
  frame: Frame;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The open log: set once the buffer's files are open. */
interface OpenLog {
  writer: SegmentWriter;
  queue: DeliveryQueue;
  timeline: WriteTimeline;
}

/**
 * The write side of a disk buffer: what it holds and what may come in. A pushed batch is encoded and admitted
 * as a record (handed to the writer, and to the delivery queue), or held back, or dropped (drop_newest, past
 * max_size only: a slow or failing disk holds pushes back like block). Keeps the counts of what is admitted
 * and not acknowledged, and of what is not yet written, as the writer commits, discards or abandons records
 * and the sink acknowledges them; lets the held-back batches in as room returns.
 */
export class Admission {
  /** Events of the records admitted and not acknowledged by the sink (on disk or being written). */
  private unackedEvents = 0;
  private unackedBytes = 0;
  /** Bytes admitted and not yet written, discarded or abandoned. */
  private pendingBytes = 0;
  private readonly waiters: Waiter[] = [];
  readonly encoder = new RecordEncoder();
  private open: OpenLog | undefined;
  private lastFailLog = 0;

  constructor(
    private readonly options: AdmissionOptions,
    private readonly log: Logger,
    private readonly metrics: DiskBufferMetrics | undefined,
  ) {}

  get events(): number {
    return this.unackedEvents;
  }

  get bytes(): number {
    return this.unackedBytes;
  }

  /** Whether batches are held back. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** What the last run left unacknowledged (the scan at open). */
  restore(unacked: { events: number; bytes: number }): void {
    this.unackedEvents = unacked.events;
    this.unackedBytes = unacked.bytes;
  }

  /** The files are open: batches may be admitted from now on (admitWaiters() lets in those held back). */
  attach(open: OpenLog): void {
    this.open = open;
  }

  /** Admits the batch now (undefined) or once there is room (the promise); see DiskBuffer.push. */
  push(batch: Batch): Promise<void> | undefined {
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

  /** Refuses every batch held back, their shares failed (the buffer closed). */
  rejectWaiting(): void {
    for (const w of this.waiters.splice(0)) {
      this.encoder.release(w.frame.slab);
      w.batch.ack.release('failed');
      w.reject(new BufferClosedError());
    }
  }

  admitWaiters(): void {
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

  private canAdmit(size: number): boolean {
    const writer = this.open?.writer;
    return writer !== undefined && !writer.stalled && this.pendingBytes < PENDING_LIMIT_BYTES && this.fits(size);
  }

  /** A batch larger than max_size is let in alone rather than blocking forever. */
  private fits(size: number): boolean {
    return this.unackedBytes === 0 || this.unackedBytes + size <= this.options.maxSize;
  }

  /** drop_newest drops only for max_size: a slow or failing disk holds pushes back like block. */
  private mustDrop(size: number): boolean {
    const writer = this.open?.writer;
    return this.options.whenFull === 'drop_newest' && writer !== undefined && !writer.stalled && !this.fits(size);
  }

  private drop(batch: Batch, frame: Frame): void {
    this.encoder.release(frame.slab);
    // Opt-in loss: the share counts as settled so the source moves on; the drop is counted.
    this.metrics?.component.bufferDropped.inc(batch.events.length);
    batch.ack.release('delivered');
  }

  private admit(batch: Batch, { bytes: frame, slab }: Frame): void {
    const { writer, queue } = this.open!;
    this.pendingBytes += frame.length;
    this.unackedBytes += frame.length;
    this.unackedEvents += batch.events.length;
    const delay = this.options.writeDelayMs;
    const record = new PendingRecord(frame, slab, Date.now(), performance.now() + delay, batch);
    // Without a delay the sink gets the record once written; with one, at once if it can keep it in memory.
    // A record the sink will read from disk is written at the next commit: waiting would only delay it.
    const handedOut = queue.admitted(record, delay > 0);
    // The gauges follow at the commit, once per group rather than per batch.
    writer.enqueue(record, !handedOut && delay > 0);
  }

  /** The writer wrote `records` (SegmentWriter's committed hook): durable, so their sources may acknowledge. */
  committed(records: PendingRecord[], segment: Segment, offsets: number[]): void {
    const { queue, timeline } = this.open!;
    let events = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      this.pendingBytes -= r.frame.length;
      events += r.count;
      queue.committed(r, segment, offsets[i]!);
      timeline.written(r.id, r.writtenAt);
      // The writer is done with the bytes; the queue holds its own reference while it keeps the record.
      this.encoder.release(r.slab);
    }
    this.metrics?.written.inc(events);
    this.updateGauges();
    for (const r of records) r.markWritten();
    queue.serve();
    this.admitWaiters();
  }

  /** The sink delivered a record before it was due to be written: it never will be. */
  discarded(record: PendingRecord): void {
    this.pendingBytes -= record.frame.length;
    this.encoder.release(record.slab);
    this.metrics?.unwritten.inc(record.count);
    this.admitWaiters();
  }

  /** The writer stopped with `records` not written: their batches are not durable. */
  abandoned(records: PendingRecord[]): void {
    const queue = this.open!.queue;
    for (const r of records) {
      this.pendingBytes -= r.frame.length;
      // A record handed out early is counted off when its share with the sink settles.
      if (!r.handedEarly) {
        this.unackedBytes -= r.frame.length;
        this.unackedEvents -= r.count;
      }
      queue.abandoned(r);
      this.encoder.release(r.slab);
    }
    this.updateGauges();
    for (const r of records) r.markAbandoned();
  }

  writeFailed(error: unknown, attempt: number): void {
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

  writeRecovered(): void {
    this.metrics?.diskFull.set(0);
    this.log.warn(
      { dir: this.options.dir },
      'disk buffer: writing again, or nothing left to write; new events are accepted',
    );
    this.admitWaiters();
  }

  /** The sink's acknowledged position moved, freeing `events` and `bytes`. */
  advanced(events: number, bytes: number): void {
    this.unackedEvents -= events;
    this.unackedBytes -= bytes;
    if (this.pendingBytes === 0 && this.open!.queue.allAcknowledged) {
      // Everything written is acknowledged: nothing is left whatever damage skipped on the way claimed to hold.
      this.unackedEvents = 0;
      this.unackedBytes = 0;
    }
    this.updateGauges();
    this.admitWaiters();
  }

  updateGauges(): void {
    const writer = this.open?.writer;
    this.metrics?.setSize(this.unackedEvents, this.unackedBytes, this.options.sync === 'interval' ? writer : undefined);
  }
}
