import { inspect } from 'node:util';
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
    else stamped.push(encodable({ ...e, _dead_letter: { reason, component_id: componentId, at } }, e));
  }
  return { stamped, rejectedAgain };
}

/** Most characters of the inspected form an unencodable event keeps in `_raw`. */
const RAW_MAX_CHARS = 1024 * 1024;

/**
 * The dead letter path is total: whatever a transform made of an event (a cycle, a BigInt, nesting no encoder
 * survives), what goes to the dead letter output can always be written. An event JSON cannot encode becomes
 * one that says so, with its id, time and message when they are plain values, and `_raw`: its inspected form
 * (cycles and depth cut by util.inspect), base64, so a dead letter sink never rejects it again.
 */
function encodable(stamped: Event, original: Event): Event {
  try {
    JSON.stringify(stamped);
    return stamped;
  } catch (error) {
    const dl = stamped._dead_letter as Record<string, unknown>;
    const out: Event = {
      _dead_letter: { ...dl, unencodable: error instanceof Error ? error.message : String(error) },
    };
    for (const key of ['_id', 'timestamp', 'message', 'host', 'source_type'] as const) {
      const v = original[key];
      if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) out[key] = v;
    }
    let raw: string;
    try {
      raw = inspect(original, { depth: 16, breakLength: Number.POSITIVE_INFINITY, maxStringLength: RAW_MAX_CHARS });
    } catch {
      raw = '[uninspectable]';
    }
    out._raw = Buffer.from(raw.slice(0, RAW_MAX_CHARS)).toString('base64');
    return out;
  }
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
  if (event._raw !== undefined) return { ...event, _raw: `${String(event._raw).slice(0, 1024)}…` };
  const m = event.message;
  if (typeof m === 'string' && m.length > 1024) return { ...event, message: `${m.slice(0, 1024)}…` };
  return event;
}
