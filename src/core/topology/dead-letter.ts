import type { Logger } from 'pino';
import type { Acknowledgement } from '../ack.ts';
import type { Event } from '../event.ts';
import type { ComponentMetrics } from '../metrics.ts';
import { Outlet } from './outlet.ts';

export interface StampedDeadLetters {
  /** Copies of the events with `_dead_letter: { reason, component_id, at }`, for the dead letter output. */
  readonly stamped: Event[];
  /** Events that already carried `_dead_letter`: a dead letter consumer rejected them again. */
  readonly rejectedAgain: Event[];
}

/**
 * What a dead-lettered event becomes. Shared by the running topology and `fluxo test`, so a config's unit tests
 * extract from `dead_letter` exactly what the pipeline sends there. An event that already went through the dead
 * letter output is not stamped again: sending it back would loop.
 */
export function stampDeadLetter(
  events: readonly Event[],
  reason: string,
  componentId: string,
  at: string,
): StampedDeadLetters {
  const stamped: Event[] = [];
  const rejectedAgain: Event[] = [];
  for (const e of events) {
    if (e._dead_letter !== undefined) rejectedAgain.push(e);
    else stamped.push({ ...e, _dead_letter: { reason, component_id: componentId, at } });
  }
  return { stamped, rejectedAgain };
}

/** An event rejected again by a dead letter consumer stops here instead of looping, but says so loudly. */
export function logRejectedAgain(logger: Logger, componentId: string, reason: string, events: readonly Event[]): void {
  for (const e of events) {
    logger.error(
      { component: componentId, reason, event: truncateForLog(e) },
      'dead-lettered event rejected again by a dead letter consumer',
    );
  }
}

/**
 * The pipeline's dead letter output: the outlet that consumers naming `dead_letter` in their inputs read. When
 * nobody reads it, each event is logged with its reason, never dropped silently.
 */
export class DeadLetterOutput {
  readonly outlet = new Outlet(undefined);

  constructor(private readonly logger: Logger) {}

  /** Routes events to the dead letter output; `ack` carries one share the caller retained for it. */
  send(
    from: string,
    metrics: ComponentMetrics,
    events: Event[],
    reason: string,
    ack: Acknowledgement,
    bytes: number,
  ): void {
    metrics.deadLettered.inc(events.length);
    const { stamped, rejectedAgain } = stampDeadLetter(events, reason, from, new Date().toISOString());
    logRejectedAgain(this.logger, from, reason, rejectedAgain);
    if (this.outlet.consumers.length === 0 || stamped.length === 0) {
      for (const e of stamped) {
        this.logger.error(
          { component: from, reason, event: truncateForLog(e) },
          'event dead-lettered (no component reads dead_letter)',
        );
      }
      ack.release('delivered');
      return;
    }
    const p = this.outlet.send({ events: stamped, ack, bytes });
    // Dead letter is off the hot path; its backpressure is not propagated to avoid a sink waiting on itself.
    p?.catch(() => {});
  }
}

function truncateForLog(event: Event): Event {
  const m = event.message;
  if (typeof m === 'string' && m.length > 1024) return { ...event, message: `${m.slice(0, 1024)}…` };
  return event;
}
