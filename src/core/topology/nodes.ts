import type { Acknowledgement, Batch } from '../ack.ts';
import type { Sink, Source, Transform } from '../component.ts';
import type { ComponentMetrics, LocalCounter } from '../metrics.ts';
import type { ComponentSpec, SinkSpec, TransformSpec } from '../pipeline-config.ts';
import type { SinkBuffer } from '../sink/buffer.ts';
import type { SinkRunner } from '../sink/runner.ts';
import { runTransform } from '../transform-run.ts';
import type { DeadLetterOutput } from './dead-letter.ts';
import { type Consumer, notifyTaps, Outlet, type TapListener } from './outlet.ts';

/** A transform in the graph: runs it on each batch and hands what it made to its outlets or the dead letter. */
export class TransformNode implements Consumer {
  readonly outlets = new Map<string, Outlet>();

  constructor(
    readonly spec: TransformSpec,
    readonly transform: Transform,
    readonly metrics: ComponentMetrics,
    private readonly deadLetter: DeadLetterOutput,
  ) {
    this.outlets.set(spec.id, new Outlet(metrics));
    for (const name of transform.outputs ?? []) this.outlets.set(`${spec.id}.${name}`, new Outlet(metrics));
  }

  accept(batch: Batch): Promise<void> | undefined {
    const { events, ack } = batch;
    this.metrics.receivedEvents.inc(events.length);
    this.metrics.receivedBytes.inc(batch.bytes);
    const { pushed, dead, threw, unknownOutputs } = runTransform(this.spec.id, this.transform, events);
    if (threw) this.metrics.error('transform_threw');
    if (unknownOutputs > 0) this.metrics.error('unknown_output', unknownOutputs);
    let pending: Promise<void>[] | undefined;
    let kept = 0;
    const perEvent = events.length > 0 ? batch.bytes / events.length : 0;
    for (const p of pushed) {
      const outlet = this.outlets.get(p.output === undefined ? this.spec.id : `${this.spec.id}.${p.output}`)!;
      kept += p.events.length;
      (p.output === undefined ? this.metrics.sentEvents : this.metrics.sentEventsFor(p.output)).inc(p.events.length);
      ack.retain();
      const r = outlet.send({ events: p.events, ack, bytes: Math.round(perEvent * p.events.length) });
      if (r) {
        if (pending === undefined) pending = [r];
        else pending.push(r);
      }
    }
    for (const d of dead) {
      ack.retain();
      this.deadLetter.send(this.spec.id, this.metrics, d.events, d.reason, ack, Math.round(perEvent * d.events.length));
    }
    if (pushed.length === 0 && dead.length === 0) this.metrics.discarded('filtered', events.length);
    else if (kept < events.length && pushed.length > 0 && dead.length === 0 && !this.transform.outputs) {
      this.metrics.discarded('filtered', events.length - kept);
    }
    ack.release('delivered');
    if (!pending) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }
}

/** A sink in the graph: what reaches it goes into its buffer, which its runner empties into the sink. */
export class SinkNode implements Consumer {
  taps: TapListener[] = [];

  constructor(
    readonly spec: SinkSpec,
    readonly sink: Sink,
    readonly runner: SinkRunner,
    readonly buffer: SinkBuffer,
    readonly metrics: ComponentMetrics,
  ) {}

  accept(batch: Batch): Promise<void> | undefined {
    this.metrics.receivedEvents.inc(batch.events.length);
    this.metrics.receivedBytes.inc(batch.bytes);
    if (this.taps.length > 0) notifyTaps(this.taps, batch.events);
    return this.buffer.push(batch);
  }
}

export class SourceNode {
  stopped = false;
  /** Batches emitted and not yet settled by every sink, for the age of the oldest (the dashboard, `fluxo top`). */
  readonly unsettled = new Set<Acknowledgement>();
  readonly acknowledgedEvents: LocalCounter;
  readonly failedEvents: LocalCounter;
  constructor(
    readonly spec: ComponentSpec,
    readonly source: Source,
    readonly outlet: Outlet,
    readonly metrics: ComponentMetrics,
  ) {
    this.acknowledgedEvents = metrics.counter(
      'fluxo_source_acknowledged_events_total',
      'Events whose batch every sink settled (delivered, durably buffered or dead-lettered): acknowledged upstream.',
    );
    this.failedEvents = metrics.counter(
      'fluxo_source_unacknowledged_events_total',
      'Events whose batch settled as failed (shutdown, reload): not acknowledged, the sender or checkpoint keeps them.',
    );
  }
}
