import type { Event } from '../event.ts';
import { type Compression, compress } from './compression.ts';
import { type EncodedLines, type Encoding, frame, pickLines } from './encoding.ts';

/**
 * One write a sink is asked to deliver. The runner builds it once and hands the same object to every retry
 * of the same events, so what it holds (the encoded body, the sink's own memo) is computed once: a retried
 * write sends the same bytes. After a partial answer the rest becomes a new request whose lines are picked
 * from the old one's, never encoded again.
 */
export interface SinkRequest {
  /** The events to deliver, in order; never empty. Owned by the pipeline: do not mutate. */
  readonly events: readonly Event[];
  /** 0 on the first attempt; each retry of these events (or of what a partial answer left) counts up. */
  readonly attempt: number;
  /** Size of the events as received (or estimated), for byte limits and metrics. */
  readonly bytes: number;
  /**
   * The body: the lines framed by the sink's `encoding` and compressed with its `compression`. Only for sinks
   * that declare an encoding.
   */
  payload(): Buffer;
  /** One encoded line per event, in order, uncompressed: for sinks that place events apart (file partitions). */
  lines(): EncodedLines;
  /** Sink-owned state for these events that survives retries (e.g. chunk ids prepared once). */
  memo<T>(make: () => T): T;
}

/**
 * What a destination answered about a write, when it answers per event (a bulk API, a stream that acked 700
 * of 1,000). Indices point into `request.events`. An index in neither list counts as delivered.
 */
export interface SendResult {
  /** Events the destination refused for what they are: they go to the dead letter output with the reason. */
  readonly rejected?: readonly { readonly index: number; readonly reason: string }[];
  /** Events that were not delivered and are to be sent again, after a backoff. */
  readonly retry?: readonly number[];
  /** Why the `retry` events failed, for the log (and its `retryAfterMs` when it is a RetryableError). */
  readonly error?: unknown;
}

const NO_MEMO: unique symbol = Symbol('no memo');

export class PreparedRequest implements SinkRequest {
  attempt = 0;
  private body: Buffer | undefined;
  private memoValue: unknown = NO_MEMO;

  constructor(
    readonly events: readonly Event[],
    readonly bytes: number,
    private readonly encoded: EncodedLines | undefined,
    private readonly encoding: Encoding | undefined,
    private readonly compression: Compression,
  ) {}

  /** Frames and compresses the body once, before the first attempt. */
  async prepare(): Promise<void> {
    if (this.encoded === undefined || this.encoding === undefined || this.body !== undefined) return;
    this.body = await compress(frame(this.encoded, this.encoding.codec), this.compression);
  }

  payload(): Buffer {
    if (this.body === undefined) {
      throw new Error('internal: payload() of a sink without an encoding, or before prepare()');
    }
    return this.body;
  }

  lines(): EncodedLines {
    if (this.encoded === undefined) {
      throw new Error('internal: lines() of a sink without an encoding');
    }
    return this.encoded;
  }

  memo<T>(make: () => T): T {
    if (this.memoValue === NO_MEMO) this.memoValue = make();
    return this.memoValue as T;
  }

  /** The request for the events at `indices` (what a partial answer left), its lines picked from these. */
  subset(indices: readonly number[]): PreparedRequest {
    const events = indices.map((i) => this.events[i]!);
    const bytes = Math.round((this.bytes * indices.length) / this.events.length);
    const lines = this.encoded === undefined ? undefined : pickLines(this.encoded, indices);
    const next = new PreparedRequest(events, bytes, lines, this.encoding, this.compression);
    next.attempt = this.attempt;
    return next;
  }
}
