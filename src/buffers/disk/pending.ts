import type { Batch } from '../../core/ack.ts';
import type { Event } from '../../core/event.ts';
import type { Slab } from './record.ts';

/**
 * Where an admitted record stands. Its way to the sink is chosen at admission: through its commit (`queued`),
 * or, with a write delay, from memory before its write (`handed`). The transitions, each a method below:
 *
 * ```
 *   from       event                                         to         the incoming share
 *   queued     handed out at admission (DeliveryQueue)       handed     held
 *   queued     its commit completed (Admission.committed)    written    released: delivered (durable)
 *   queued     the writer stopped (Admission.abandoned)      abandoned  released: failed
 *   handed     the sink delivered it                         delivered  released: delivered
 *   handed     its commit completed                          written    released: delivered (durable)
 *   handed     the writer stopped                            abandoned  released: failed
 *   delivered  its commit completed (it was under way)       written    released already
 *   written, abandoned: final; the sink delivering one, or a stop finding a delivered one, changes nothing.
 * ```
 *
 * The share is held in `queued` and `handed` only and released by the transition that leaves them, so it is
 * released exactly once, at whichever comes first: the durable write, the delivery, or the stop (as failed, so
 * its source does not acknowledge it). A `delivered` record is not written unless its write had started: the
 * writer drops it from its queue unwritten.
 */
export type PendingState = 'queued' | 'handed' | 'delivered' | 'written' | 'abandoned';

/** A record admitted by the buffer, on its way to the disk and to the sink. */
export class PendingRecord {
  /**
   * The log id, given as its group commit completes, just before the buffer hears of the commit: 0 while the
   * record is not in the log (one the sink delivers before its write never gets one).
   */
  id = 0;
  readonly events: Event[];
  readonly count: number;
  /**
   * The sink delivered it while its write was under way, and the acknowledged position already moved over it
   * without an id: once the commit gives it one, that id is acknowledged too (DeliveryQueue.committed).
   */
  ackedWithoutId = false;
  private current: PendingState = 'queued';

  constructor(
    /** Header (blank until the commit seals it) and payload. */
    readonly frame: Buffer,
    /** Where `frame` lives; the writer's reference is released once the record is written or discarded. */
    readonly slab: Slab | undefined,
    /** When it was admitted (epoch ms): the header's time, for the oldest-age gauge after a restart. */
    readonly writtenAt: number,
    /** performance.now() past which it is written unless the sink delivered it (admission + write_delay). */
    readonly dueAt: number,
    /** The incoming batch, whose share is released once the record is durable or delivered. */
    readonly batch: Batch,
  ) {
    this.events = batch.events;
    this.count = batch.events.length;
  }

  get state(): PendingState {
    return this.current;
  }

  /**
   * Handed to the sink from memory before its write, so it reaches the sink through its admission rather than
   * its commit. Asked before it is written or abandoned; nothing asks after.
   */
  get handedEarly(): boolean {
    return this.current === 'handed' || this.current === 'delivered';
  }

  /** queued → handed: the delivery queue handed it to the sink at its admission. */
  markHandedOut(): void {
    if (this.current === 'queued') this.current = 'handed';
  }

  /** handed → delivered: the sink delivered it before its write completed. */
  markDelivered(): void {
    if (this.current !== 'handed') return;
    this.current = 'delivered';
    this.batch.ack.release('delivered');
  }

  /** queued, handed or delivered → written: its commit completed, so it is durable. */
  markWritten(): void {
    if (this.current === 'delivered') {
      this.current = 'written';
    } else if (this.holdsShare) {
      this.current = 'written';
      this.batch.ack.release('delivered');
    }
  }

  /** queued or handed → abandoned: the writer stopped before writing it. */
  markAbandoned(): void {
    if (!this.holdsShare) return;
    this.current = 'abandoned';
    this.batch.ack.release('failed');
  }

  private get holdsShare(): boolean {
    return this.current === 'queued' || this.current === 'handed';
  }
}
