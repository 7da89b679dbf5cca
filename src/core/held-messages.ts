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

  /** Gives the batch's room back and wakes a source waiting for it. */
  release(batch: HeldBatch<T>): void {
    this.held -= batch.count;
    if (this.key !== undefined) for (const item of batch.items) this.keys.delete(this.key(item));
    this.wake();
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

/**
 * How a stopping stream source closes its connection: the settles still to come need it for their acks or
 * commits, so it closes once the last held message is released, or after `graceMs` at the latest.
 */
export class CloseWhenReleased {
  private stopping = false;
  private fallback: NodeJS.Timeout | undefined;

  constructor(
    private readonly close: () => Promise<void>,
    private readonly graceMs = 30_000,
  ) {}

  /** At stop(), with the number of messages held then: closes at once when none. */
  async stop(held: number): Promise<void> {
    this.stopping = true;
    if (held === 0) return this.closeNow();
    this.fallback = setTimeout(() => void this.closeNow(), this.graceMs);
    this.fallback.unref();
  }

  /** After a release, with the number still held: closes once a stopping source holds none. */
  released(held: number): void {
    if (this.stopping && held === 0) void this.closeNow();
  }

  private closeNow(): Promise<void> {
    clearTimeout(this.fallback);
    return this.close();
  }
}
