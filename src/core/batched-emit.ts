import type { AckStatus } from './ack.ts';
import type { EmitOptions } from './component.ts';
import type { Event } from './event.ts';

/**
 * The emits of a source still waiting for the pipeline to take them. Their count and the age of the oldest
 * are the source's backpressure signal (answer "busy" instead of reading more), and stop() waits for none.
 */
export class PendingEmits {
  /** Start time by emit id; a Map keeps insertion order, so the first entry is the oldest. */
  private readonly started = new Map<number, number>();
  private nextId = 0;
  private idleWaiters: (() => void)[] = [];

  get size(): number {
    return this.started.size;
  }

  begin(): number {
    const id = this.nextId++;
    this.started.set(id, Date.now());
    return id;
  }

  end(id: number): void {
    this.started.delete(id);
    if (this.started.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** How long the oldest waiting emit has waited, in ms; 0 when none waits. */
  oldestWaitMs(now = Date.now()): number {
    const oldest = this.started.values().next();
    return oldest.done ? 0 : now - oldest.value;
  }

  /** Resolves once no emit is waiting. */
  idle(): Promise<void> {
    if (this.started.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * How the batches of one request ended: every one `delivered`; some `failed` in a sink; or some `not_emitted`,
 * because the pipeline was stopping (those and the ones after them never entered it).
 */
export type BatchedOutcome = 'delivered' | 'failed' | 'not_emitted';

export interface BatchedEmitTarget {
  emit(events: Event[], options?: EmitOptions): Promise<void>;
  /** True once the source stops: the batches not yet emitted are then never emitted. */
  stopping(): boolean;
  /** A rejected emit (only a stopping pipeline rejects), for the source's debug log. */
  rejected?(error: unknown): void;
}

/**
 * Emits the events of one request as batches of at most `maxEvents`, each once the pipeline took the one
 * before (order kept; one request never fills the pipeline's queue alone), and calls `done` once, when every
 * emitted batch settled. Each batch is tracked in `pending` from its emit until the pipeline took or refused
 * it, and the next one is registered before the previous is marked taken: a stop() waiting on `pending.idle()`
 * never slips in between two batches of a request.
 */
export function emitInBatches(
  target: BatchedEmitTarget,
  pending: PendingEmits,
  events: Event[],
  options: { wireBytes: number; receivedAt?: number; maxEvents: number },
  done: (outcome: BatchedOutcome) => void,
): void {
  const total = events.length;
  if (total === 0) {
    done('delivered');
    return;
  }
  const { wireBytes, receivedAt, maxEvents } = options;
  const batches = Math.ceil(total / maxEvents);
  let unsettled = batches;
  let failed = false;
  let stopped = false;
  const settleOne = () => {
    if (--unsettled === 0) done(stopped ? 'not_emitted' : failed ? 'failed' : 'delivered');
  };
  const onSettled = (status: AckStatus) => {
    if (status !== 'delivered') failed = true;
    settleOne();
  };
  const notEmitted = (from: number) => {
    stopped = true;
    unsettled -= batches - from - 1;
    settleOne();
  };
  const emitFrom = (index: number) => {
    const start = index * maxEvents;
    const batch = batches === 1 ? events : events.slice(start, start + maxEvents);
    const bytes = batches === 1 ? wireBytes : Math.ceil((wireBytes * batch.length) / total);
    const id = pending.begin();
    const emitOptions: EmitOptions = { bytes, onSettled };
    if (receivedAt !== undefined) emitOptions.receivedAt = receivedAt;
    target.emit(batch, emitOptions).then(
      () => {
        if (index + 1 < batches) {
          if (target.stopping()) notEmitted(index + 1);
          else emitFrom(index + 1);
        }
        pending.end(id);
      },
      (error: unknown) => {
        // The batch was not taken, so its onSettled never runs.
        target.rejected?.(error);
        notEmitted(index);
        pending.end(id);
      },
    );
  };
  emitFrom(0);
}
