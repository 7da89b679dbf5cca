import type { Event } from './event.ts';

/**
 * How a batch's acknowledgement ended.
 * - `delivered`: every share was delivered, durably buffered, dead-lettered or deliberately dropped.
 * - `failed`: at least one share was not delivered (shutdown before delivery, a dropped reload): the source
 *   must not acknowledge upstream, so the sender or the checkpoint still has the events.
 */
export type AckStatus = 'delivered' | 'failed';

export type AckCallback = (status: AckStatus) => void;

/**
 * A reference-counted acknowledgement shared by all the pieces a batch becomes on its way through the
 * graph. The source holds the first share; fan-out and splits `retain()` one share per new holder before
 * passing it on; every holder calls `release()` exactly once. The callback fires once, when the last
 * share is released, with `failed` if any share failed.
 */
export class Acknowledgement {
  private shares = 1;
  private failed = false;
  private done = false;

  constructor(
    private readonly onSettled: AckCallback | undefined,
    /** When the source received the batch, for end-to-end latency. */
    readonly receivedAt: number = Date.now(),
  ) {}

  retain(count = 1): void {
    if (this.done) throw new Error('retain() on a settled acknowledgement');
    this.shares += count;
  }

  release(status: AckStatus = 'delivered'): void {
    if (this.done) throw new Error('release() on a settled acknowledgement: a share was released twice');
    if (status === 'failed') this.failed = true;
    if (--this.shares === 0) {
      this.done = true;
      this.onSettled?.(this.failed ? 'failed' : 'delivered');
    }
  }

  get pending(): number {
    return this.shares;
  }

  get settled(): boolean {
    return this.done;
  }
}

/** The unit that flows through the graph: events plus one share of an acknowledgement. */
export interface Batch {
  readonly events: Event[];
  /**
   * The events as JSON lines, `JSON.stringify(event)` and `\n` each, in order, when a buffer already encoded
   * them (the disk buffer's records are this): a sink writing JSON lines writes these bytes instead of
   * serializing every event again. Valid until the acknowledgement share is released.
   */
  readonly ndjson?: Buffer | undefined;
  readonly ack: Acknowledgement;
  /** Size in bytes as received (or estimated), for buffer limits and metrics. */
  readonly bytes: number;
}
