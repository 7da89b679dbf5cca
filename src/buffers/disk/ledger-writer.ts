import { unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import { errorText } from './fs.ts';
import type { Ledger } from './ledger.ts';
import type { DiskBufferMetrics } from './metrics.ts';
import type { Segment } from './scan.ts';

const LEDGER_EVERY_MS = 10;

/** Where the log stands, as the ledger records it and as segment deletion must respect. */
export interface LogPositions {
  /** The sink's side (DeliveryQueue). */
  readonly delivery: {
    readonly ackedId: number;
    readonly readId: number;
    /** The segment a read-back from disk is in, if any. */
    readonly readingSegment: Segment | undefined;
  };
  /** The write side (SegmentWriter). */
  readonly writer: { readonly written: number; readonly activeSegment: Segment | undefined };
}

/**
 * Keeps the ledger up with the sink's acknowledgements and deletes the segments they cover: the ledger is
 * written first, the segments deleted after, so that a crash in between leaves nothing unaccounted for.
 */
export class LedgerWriter {
  private ledger: Ledger | undefined;
  /** The acknowledged position the ledger on disk holds. */
  private persistedAckedId: number;
  private busy = false;
  private again = false;
  private stopped = false;
  private lastWrite = Number.NEGATIVE_INFINITY;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    ledger: Ledger,
    /** The log's segments, oldest first (shared with the writer, which appends). */
    private readonly segments: Segment[],
    /** The acknowledged position read from the ledger at open. */
    ackedId: number,
    private readonly positions: LogPositions,
    private readonly log: Logger,
    private readonly metrics: DiskBufferMetrics | undefined,
  ) {
    this.ledger = ledger;
    this.persistedAckedId = ackedId;
  }

  /**
   * Writes the acknowledged position soon after it moves: one write in flight and at most one every
   * LEDGER_EVERY_MS; the acknowledgements that arrive meanwhile go out together in the next, so a crash
   * replays little again and a sink writing small batches does not cost a ledger write each.
   */
  schedule(): void {
    if (!this.ledger || this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    const wait = this.lastWrite + LEDGER_EVERY_MS - performance.now();
    const write = () => {
      this.lastWrite = performance.now();
      void this.persist(false).finally(() => {
        this.busy = false;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
    };
    if (wait <= 0) write();
    else setTimeout(write, wait).unref();
  }

  /** No more scheduled writes: the buffer is finishing, and close() writes the last one. */
  stop(): void {
    this.stopped = true;
  }

  /** Writes the final position (fsynced), deletes what it covers, and closes the ledger. */
  async close(): Promise<void> {
    await this.persist(true);
    const ledger = this.ledger!;
    this.ledger = undefined;
    await ledger.close();
  }

  /** Writes the acknowledged position, then deletes the segments it covers (in that order: see deleteAcked). */
  private persist(sync: boolean): Promise<void> {
    this.chain = this.chain.then(async () => {
      const ledger = this.ledger;
      if (!ledger) return;
      const { delivery, writer } = this.positions;
      const ackedId = delivery.ackedId;
      try {
        await ledger.write({ ackedId, readId: delivery.readId, nextId: writer.written, updatedAt: Date.now() }, sync);
        this.persistedAckedId = ackedId;
      } catch (error) {
        this.metrics?.component.error('ledger_write_failed');
        this.log.error({ dir: this.dir, err: errorText(error) }, 'disk buffer: ledger write failed');
        return;
      }
      await this.deleteAcked();
    });
    return this.chain;
  }

  /**
   * Deletes the oldest segments while every record in them is acknowledged in the ledger on disk: deleting
   * first and crashing before the ledger write would make a restart wonder where those records went.
   */
  async deleteAcked(): Promise<void> {
    const { delivery, writer } = this.positions;
    while (this.segments.length > 0) {
      const segment = this.segments[0]!;
      if (
        segment.lastId > this.persistedAckedId ||
        segment === writer.activeSegment ||
        segment === delivery.readingSegment
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
}
