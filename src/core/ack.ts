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

/**
 * Cuts a batch into pieces of at most `maxEvents` events and `maxBytes` bytes (Batch.bytes shared in proportion
 * to the events; a single event larger than `maxBytes` is a piece of its own), in order. Each piece carries its
 * own share of the batch's acknowledgement, so the source is acknowledged once every piece was settled. A batch
 * within both limits comes back as it is. Shared by the memory buffer (bounded on entry) and the sink runner
 * (bounded writes); a piece drops `ndjson`.
 */
export function splitBatch(batch: Batch, maxEvents: number, maxBytes: number): Batch[] {
  const n = batch.events.length;
  if (n <= 1 || (n <= maxEvents && batch.bytes <= maxBytes)) return [batch];
  const perByBytes = batch.bytes > 0 ? Math.floor((n * maxBytes) / batch.bytes) : n;
  const per = Math.max(1, Math.min(maxEvents, perByBytes));
  const count = Math.ceil(n / per);
  if (count <= 1) return [batch];
  batch.ack.retain(count - 1);
  const pieces: Batch[] = [];
  for (let start = 0; start < n; start += per) {
    const events = batch.events.slice(start, start + per);
    pieces.push({ events, ndjson: undefined, bytes: Math.round((batch.bytes * events.length) / n), ack: batch.ack });
  }
  return pieces;
}

/**
 * A buffer's push() bounded on entry: `batch` goes to `pushPiece` as it is when it fits both limits, else as
 * the pieces of splitBatch, each with its share of the acknowledgement. Returns undefined when every piece was
 * admitted at once, else one promise for those that wait.
 */
export function pushInPieces(
  batch: Batch,
  maxEvents: number,
  maxBytes: number,
  pushPiece: (piece: Batch) => Promise<void> | undefined,
): Promise<void> | undefined {
  if (batch.events.length <= maxEvents && batch.bytes <= maxBytes) return pushPiece(batch);
  const waits: Promise<void>[] = [];
  for (const piece of splitBatch(batch, maxEvents, maxBytes)) {
    const wait = pushPiece(piece);
    if (wait !== undefined) waits.push(wait);
  }
  return waits.length === 0 ? undefined : Promise.all(waits).then(() => {});
}
