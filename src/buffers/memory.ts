import { type Batch, pushInPieces } from '../core/ack.ts';
import type { ComponentMetrics } from '../core/metrics.ts';
import { BufferClosedError, type SinkBuffer } from '../core/sink/buffer.ts';
import { HeadQueue } from './head-queue.ts';
import { ReadyWatchers } from './ready-watchers.ts';

export interface MemoryBufferOptions {
  maxEvents: number;
  maxBytes: number;
  whenFull: 'block' | 'drop_newest';
}

interface Waiter {
  batch: Batch;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * A bounded FIFO of batches. Room is counted from push() until the runner calls done(), so events being
 * written still count: memory stays within the limits however slow the sink is. A batch larger than the
 * limits is split on entry into pieces within them.
 */
export class MemoryBuffer implements SinkBuffer {
  private readonly queue = new HeadQueue<Batch>();
  private readonly waiters: Waiter[] = [];
  /** Runner loops waiting for batches (one per unit of sink concurrency), first come first served. */
  private readonly takers: { resolve: (batches: Batch[] | null) => void; max: number }[] = [];
  private heldEvents = 0;
  private heldBytes = 0;
  /** Events queued and not yet taken. */
  private queuedEvents = 0;
  private readonly readyWatchers = new ReadyWatchers();
  private closed = false;

  constructor(
    private readonly options: MemoryBufferOptions,
    private readonly metrics?: ComponentMetrics,
  ) {}

  get events(): number {
    return this.heldEvents;
  }
  get bytes(): number {
    return this.heldBytes;
  }

  push(batch: Batch): Promise<void> | undefined {
    if (this.closed) return Promise.reject(new BufferClosedError());
    // Bounded on entry: a batch beyond the limits comes in as pieces that fit, each with its share of the
    // acknowledgement, so the buffer never holds more than its limits and block / drop_newest act per piece.
    return pushInPieces(batch, this.options.maxEvents, this.options.maxBytes, (piece) => this.pushPiece(piece));
  }

  private pushPiece(batch: Batch): Promise<void> | undefined {
    if (this.waiters.length === 0 && this.fits(batch)) {
      this.enqueue(batch);
      return undefined;
    }
    if (this.options.whenFull === 'drop_newest') {
      // Opt-in loss: the share counts as settled so the source moves on; the drop is counted.
      this.metrics?.bufferDropped.inc(batch.events.length);
      batch.ack.release('delivered');
      return undefined;
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ batch, resolve, reject }));
  }

  take(maxEvents: number): Promise<Batch[] | null> {
    if (this.queue.length > 0) return Promise.resolve(this.dequeue(maxEvents));
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.takers.push({ resolve, max: maxEvents }));
  }

  poll(maxEvents: number): Batch[] {
    return this.dequeue(maxEvents, true);
  }

  whenReady(minEvents: number, ready: () => void): () => void {
    if (this.closed || this.queuedEvents >= minEvents) {
      ready();
      return () => {};
    }
    return this.readyWatchers.add(minEvents, ready);
  }

  done(batches: Batch[]): void {
    for (const b of batches) {
      this.heldEvents -= b.events.length;
      this.heldBytes -= b.bytes;
    }
    this.updateGauges();
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.batch)) {
      const w = this.waiters.shift()!;
      this.enqueue(w.batch);
      w.resolve();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) {
      w.batch.ack.release('failed');
      w.reject(new BufferClosedError());
    }
    if (this.queue.length === 0) this.wakeTakers();
    this.readyWatchers.all();
  }

  abort(): void {
    this.close();
    const rest = this.queue.clear();
    this.queuedEvents = 0;
    for (const b of rest) b.ack.release('failed');
    this.done(rest);
    this.wakeTakers();
  }

  private fits(batch: Batch): boolean {
    if (this.heldEvents === 0) return true;
    return (
      this.heldEvents + batch.events.length <= this.options.maxEvents &&
      this.heldBytes + batch.bytes <= this.options.maxBytes
    );
  }

  private enqueue(batch: Batch): void {
    this.queue.push(batch);
    this.heldEvents += batch.events.length;
    this.heldBytes += batch.bytes;
    this.queuedEvents += batch.events.length;
    this.updateGauges();
    const taker = this.takers.shift();
    if (taker) taker.resolve(this.dequeue(taker.max));
    this.readyWatchers.check(this.queuedEvents);
  }

  /** Closed and empty: every waiting runner loop learns there is nothing more. */
  private wakeTakers(): void {
    for (const t of this.takers.splice(0)) t.resolve(null);
  }

  /** Up to `maxEvents` events; the first batch goes out whatever its size unless `strict`. */
  private dequeue(maxEvents: number, strict = false): Batch[] {
    const out: Batch[] = [];
    let n = 0;
    for (let b = this.queue.at(0); b !== undefined; b = this.queue.at(0)) {
      if ((strict || out.length > 0) && n + b.events.length > maxEvents) break;
      out.push(this.queue.shift()!);
      n += b.events.length;
    }
    this.queuedEvents -= n;
    return out;
  }

  private updateGauges(): void {
    if (!this.metrics) return;
    this.metrics.bufferEvents.set(this.heldEvents);
    this.metrics.bufferBytes.set(this.heldBytes);
  }
}
