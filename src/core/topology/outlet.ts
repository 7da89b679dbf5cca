import type { Batch } from '../ack.ts';
import type { Event } from '../event.ts';
import type { ComponentMetrics } from '../metrics.ts';

/** Anything a batch can be handed to: a transform or a sink's buffer. */
export interface Consumer {
  accept(batch: Batch): Promise<void> | undefined;
}

/** Sees the events a component emits (sources, transforms: every output) or receives (sinks). Must not mutate them. */
export type TapListener = (events: readonly Event[], output: string) => void;

export function notifyTaps(taps: TapListener[], events: Event[], output = ''): void {
  for (const tap of taps) {
    try {
      tap(events, output);
    } catch {
      // A tap is a debugging aid: its failure must never disturb the pipeline.
    }
  }
}

/**
 * The consumers of one output of a node. Sending takes over one acknowledgement share and gives one to each
 * consumer; the events array is shared, which is safe because events are never mutated after emission.
 */
export class Outlet {
  consumers: Consumer[] = [];
  /** Observers of what passes (fluxo tap); empty in normal operation, so the hot path pays one length check. */
  taps: TapListener[] = [];

  constructor(private readonly metrics: ComponentMetrics | undefined) {}

  send(batch: Batch): Promise<void> | undefined {
    if (this.taps.length > 0) notifyTaps(this.taps, batch.events);
    const consumers = this.consumers;
    const n = consumers.length;
    if (n === 0) {
      // Validation rejects dangling outputs except route outputs nobody reads: those events are dropped on purpose.
      this.metrics?.discarded('no_consumer', batch.events.length);
      batch.ack.release('delivered');
      return undefined;
    }
    if (n > 1) batch.ack.retain(n - 1);
    let single: Promise<void> | undefined;
    let many: Promise<void>[] | undefined;
    for (let i = 0; i < n; i++) {
      const p = consumers[i]!.accept(batch);
      if (p === undefined) continue;
      if (single === undefined) single = p;
      else if (many === undefined) many = [single, p];
      else many.push(p);
    }
    if (many) return Promise.all(many).then(() => undefined);
    return single;
  }
}
