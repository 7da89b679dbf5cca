import type { AckStatus } from './ack.ts';
import type { SourceContext } from './component.ts';
import type { Event } from './event.ts';

/**
 * What a stream source holds: messages delivered to it by the server and handed to the pipeline, not yet settled
 * back (acked, nak-ed, left pending). The count bounds how much more the source may ask for (its backpressure
 * bound, e.g. max_ack_pending); `key` lets a source see that a redelivery or a claim is of a message it already
 * holds. A batch is settled once (the first status wins), and releases its room separately, so a source can keep
 * it counted until the server answered the acknowledgement.
 */
export interface HeldBatch<T> {
  readonly items: readonly T[];
  /** The messages it holds: one per item unless hold() was told otherwise. */
  readonly count: number;
  /** When it was handed to the pipeline (Date.now()). */
  readonly since: number;
}

export class HeldMessages<T> {
  private readonly unsettled = new Set<HeldBatch<T>>();
  private readonly keys = new Set<string>();
  private held = 0;
  private waiters: (() => void)[] = [];
  /** Set by closeWhenReleased(): the source stops, and closes its connection once nothing is held. */
  private closing: { close: () => Promise<void>; fallback: NodeJS.Timeout; done: boolean } | undefined;

  constructor(
    private readonly limit: number,
    private readonly key?: (item: T) => string,
  ) {}

  /** Messages held, settled or not, until released. */
  get count(): number {
    return this.held;
  }

  /** How many more the source may take now. */
  room(): number {
    return this.limit - this.held;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** The keys of every message held (settled ones too until released). */
  heldKeys(): string[] {
    return [...this.keys];
  }

  /** Batches not settled yet. */
  batches(): Iterable<HeldBatch<T>> {
    return this.unsettled;
  }

  /** `count`: the messages `items` stand for, when an item is not one message (a range of offsets). */
  hold(items: readonly T[], count = items.length): HeldBatch<T> {
    const batch: HeldBatch<T> = { items, count, since: Date.now() };
    this.unsettled.add(batch);
    this.held += count;
    if (this.key !== undefined) for (const item of items) this.keys.add(this.key(item));
    return batch;
  }

  /** True the first time only: a batch settles once, whatever calls come after. */
  settle(batch: HeldBatch<T>): boolean {
    return this.unsettled.delete(batch);
  }

  /** Gives the batch's room back and wakes a source waiting for it; closes a stopping source that holds no more. */
  release(batch: HeldBatch<T>): void {
    this.held -= batch.count;
    if (this.key !== undefined) for (const item of batch.items) this.keys.delete(this.key(item));
    this.wake();
    if (this.closing !== undefined && this.held === 0) void this.closeNow();
  }

  /**
   * Holds `items` and hands `events` to the pipeline; `settle` gets the batch and its status, once it is known.
   * Only a stopping pipeline rejects an emit: the batch was not taken, and settles as failed.
   */
  async emit(
    ctx: SourceContext,
    events: Event[],
    bytes: number,
    batch: HeldBatch<T>,
    settle: (batch: HeldBatch<T>, status: AckStatus) => void,
  ): Promise<void> {
    try {
      await ctx.emit(events, { bytes, onSettled: (status) => settle(batch, status) });
    } catch (error) {
      ctx.logger.debug({ err: String(error) }, `source ${ctx.id}: emit rejected`);
      settle(batch, 'failed');
    }
  }

  /**
   * How a stopping source closes its connection: the settles still to come need it for their acks or commits,
   * so `close` runs once the last held message is released (at once when none is), or after `graceMs`.
   */
  async closeWhenReleased(close: () => Promise<void>, graceMs = 30_000): Promise<void> {
    if (this.closing !== undefined) return;
    const fallback = setTimeout(() => void this.closeNow(), graceMs);
    fallback.unref();
    this.closing = { close, fallback, done: false };
    if (this.held === 0) return this.closeNow();
  }

  private closeNow(): Promise<void> {
    const closing = this.closing!;
    if (closing.done) return Promise.resolve();
    closing.done = true;
    clearTimeout(closing.fallback);
    return closing.close();
  }

  /** Resolves once there is room, or at once when `signal` aborted (a stopping source). */
  waitForRoom(signal: AbortSignal): Promise<void> {
    if (this.held < this.limit || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Resolves at the next wake(), or after `maxMs`. */
  nextRelease(maxMs: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      setTimeout(resolve, maxMs).unref();
    });
  }

  /** Wakes every waiter (room was given back, or the source stops). */
  wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
