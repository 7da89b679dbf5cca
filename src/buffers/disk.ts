import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Batch, pushInPieces } from '../core/ack.ts';
import type { ComponentMetrics } from '../core/metrics.ts';
import { BufferClosedError, type SinkBuffer } from '../core/sink/buffer.ts';
import { Admission } from './disk/admission.ts';
import { DeliveryQueue } from './disk/delivery.ts';
import { errorText } from './disk/fs.ts';
import { DirectoryClaim } from './disk/handoff.ts';
import { LedgerWriter } from './disk/ledger-writer.ts';
import { DiskBufferMetrics, WriteTimeline } from './disk/metrics.ts';
import { type RecoveredLog, recoverLog } from './disk/recovery.ts';
import { SegmentWriter } from './disk/writer.ts';

/** Most events in one record: a larger batch is split on entry (each piece with its share of the ack). */
const MAX_RECORD_EVENTS = 10_000;
/** Most bytes (as received) in one record: far below V8's string limit, far above any source's batch. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
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
 *
 * This class wires the pieces together and owns the lifecycle (open, close, the drain); each idea is a module
 * of disk/: recovery.ts (what open finds), handoff.ts (a reload's new buffer waits for the old one), admission.ts
 * (push, backpressure and the counts), pending.ts (the states of an admitted record), writer.ts (group commit),
 * delivery.ts (the sink's side), ledger-writer.ts (the acknowledged position and segment deletion), metrics.ts.
 */
export class DiskBuffer implements SinkBuffer {
  /** Resolves once the buffer closed its files and released its directory (after close() and the drain). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private readonly maxSegmentSize: number;
  private readonly memoryBytes: number;
  private readonly log: Logger;
  private readonly metrics: DiskBufferMetrics | undefined;
  private readonly admission: Admission;
  /** This buffer's claim on its directory among the buffers of this process (a reload). */
  private readonly claim: DirectoryClaim;

  private opening: Promise<void> | undefined;
  private filesOpening = false;
  /** Set once open: the writer, the sink's side of the log, the ledger and the age timeline. */
  private writer: SegmentWriter | undefined;
  private queue: DeliveryQueue | undefined;
  private ledger: LedgerWriter | undefined;
  private timeline: WriteTimeline | undefined;
  private readonly whenOpen: Promise<void>;
  private resolveWhenOpen!: () => void;
  private releaseLock: (() => Promise<void>) | undefined;

  private closing = false;
  private aborted = false;
  private finishing = false;
  private ageTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: DiskBufferOptions,
    private readonly context: DiskBufferContext,
  ) {
    this.maxSegmentSize = options.maxSegmentSize ?? Math.min(128 * MiB, Math.max(MiB, Math.floor(options.maxSize / 8)));
    this.memoryBytes = options.memoryBytes ?? 32 * MiB;
    this.log = context.logger;
    this.metrics = context.metrics ? new DiskBufferMetrics(context.metrics, context.registry) : undefined;
    this.metrics?.maxBytes.set(options.maxSize);
    this.admission = new Admission(options, this.log, this.metrics);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.whenOpen = new Promise((resolve) => {
      this.resolveWhenOpen = resolve;
    });
    // A newer buffer of this directory waits (a reload): once closing, this one leaves the rest to it.
    this.claim = new DirectoryClaim(options.dir, this.closed, () => {
      if (this.closing) {
        this.queue?.stop();
        this.maybeFinish();
      }
    });
  }

  get events(): number {
    return this.admission.events;
  }

  get bytes(): number {
    return this.admission.bytes;
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
    // One batch is one record, encoded at once: a batch of millions of events (a transform's fan-out, a
    // source without its own cap) would become one string past V8's limit. It comes in as pieces.
    return pushInPieces(batch, MAX_RECORD_EVENTS, MAX_RECORD_BYTES, (piece) => this.admission.push(piece));
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
    this.admission.rejectWaiting();
    if (this.claim.superseded) this.queue?.stop();
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
    const previous = this.claim.claim();
    if (!previous) return this.openFiles();
    previous
      .then((ackedId) => this.openFiles(ackedId))
      .catch((error: unknown) => {
        this.metrics?.component.error('open_failed');
        this.log.error({ dir: this.options.dir, err: errorText(error) }, 'disk buffer: cannot open after reload');
      });
    return Promise.resolve();
  }

  /** `handedAckedId`: the final acknowledged position of this process's previous buffer of the directory. */
  private async openFiles(handedAckedId?: number): Promise<void> {
    const { dir } = this.options;
    if (this.finishing) return;
    this.filesOpening = true;
    let recovered: RecoveredLog;
    try {
      recovered = await recoverLog(dir, this.context.id, this.log, this.metrics, handedAckedId);
    } catch (error) {
      this.claim.release();
      this.filesOpening = false;
      this.maybeFinish();
      throw error;
    }
    const { segments, ackedId } = recovered;
    this.releaseLock = recovered.releaseLock;
    const admission = this.admission;
    admission.restore(recovered.unacked);
    const timeline = new WriteTimeline(recovered.timeline);
    this.timeline = timeline;
    const writer = new SegmentWriter(
      dir,
      segments,
      {
        maxSegmentSize: this.maxSegmentSize,
        sync: this.options.sync,
        syncIntervalMs: this.options.syncIntervalMs,
        commitIntervalMs: this.options.commitIntervalMs,
      },
      {
        committed: (records, segment, offsets) => admission.committed(records, segment, offsets),
        discarded: (record) => admission.discarded(record),
        fsynced: (seconds) => {
          this.metrics?.fsync.observe(seconds);
          if (this.options.sync === 'interval') admission.updateGauges();
        },
        failed: (error, attempt) => {
          // Past the drain deadline a failing write is not retried: what it held was never acknowledged.
          if (this.aborted) this.writer?.stop();
          admission.writeFailed(error, attempt);
        },
        recovered: () => admission.writeRecovered(),
        abandoned: (records) => {
          admission.abandoned(records);
          this.maybeFinish();
        },
        idle: () => {
          this.queue?.serve();
          this.maybeFinish();
        },
      },
      recovered.firstId,
    );
    this.writer = writer;
    const queue = new DeliveryQueue(
      {
        segments,
        activeSegment: () => writer.activeSegment,
        upstreamDone: () => this.closing && !admission.waiting && writer.idle,
        advanced: (_ackedId, events, bytes) => {
          admission.advanced(events, bytes);
          this.ledger!.schedule();
        },
        retain: (slab) => admission.encoder.retain(slab),
        release: (slab) => admission.encoder.release(slab),
        delivered: (record) => {
          record.markDelivered();
          writer.delivered();
        },
        settled: () => this.maybeFinish(),
        damaged: (segment, offset, reason, lostRecords) => {
          this.metrics?.corrupt.inc(lostRecords);
          this.log.error(
            { dir, segment, offset, reason, lost_records: lostRecords },
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
      recovered.firstUnacked,
      recovered.idsWithoutRecords,
    );
    this.queue = queue;
    // Closed while the files were opening: what waits for its write delay is written now (as close() does),
    // once the queue the writer's idle hook serves exists.
    if (this.closing) writer.flush();
    admission.attach({ writer, queue, timeline });
    for (const key of recovered.damage) queue.knownDamage.add(key);
    this.ledger = new LedgerWriter(
      dir,
      recovered.ledger,
      segments,
      ackedId,
      { delivery: queue, writer },
      this.log,
      this.metrics,
    );
    this.filesOpening = false;
    this.ageTimer = setInterval(() => this.updateAge(), 1000);
    this.ageTimer.unref();
    void this.ledger.deleteAcked();
    admission.updateGauges();
    this.updateAge();
    if (this.closing && this.claim.superseded) queue.stop();
    this.resolveWhenOpen();
    admission.admitWaiters();
    queue.serve();
    this.maybeFinish();
  }

  // ---- closing ----

  private maybeFinish(): void {
    if (!this.closing || this.finishing || this.filesOpening || this.admission.waiting) return;
    const queue = this.queue;
    if (queue && (queue.unsettled > 0 || queue.pumping || !this.writer!.idle || !queue.exhausted)) return;
    this.finishing = true;
    this.ledger?.stop();
    void this.finish();
  }

  private async finish(): Promise<void> {
    clearInterval(this.ageTimer);
    try {
      if (this.writer && this.queue) {
        await this.writer.close();
        this.admission.updateGauges();
        await this.queue.close();
        await this.ledger!.close();
      }
    } catch (error) {
      this.log.error({ dir: this.options.dir, err: errorText(error) }, 'disk buffer: closing failed');
    } finally {
      await this.releaseLock?.().catch(() => {});
      this.claim.release(this.queue?.ackedId);
      this.resolveWhenOpen();
      this.resolveClosed();
    }
  }

  /** The oldest unacknowledged event: written ones from the timeline, then the oldest waiting to be written. */
  private updateAge(): void {
    const writer = this.writer!;
    let oldest = this.timeline!.oldestUnacked(this.queue?.ackedId ?? 0, writer.next - 1);
    const waiting = writer.oldest;
    if (waiting !== undefined && waiting.writtenAt < oldest) oldest = waiting.writtenAt;
    const age = this.admission.events > 0 && oldest !== Number.POSITIVE_INFINITY ? (Date.now() - oldest) / 1000 : 0;
    this.metrics?.oldestAge.set(Math.max(0, age));
    this.admission.updateGauges();
  }
}
