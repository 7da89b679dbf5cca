import type { JsMsg } from '@nats-io/jetstream';
import { type Event, HOSTNAME } from '../../core/event.ts';

/** What the nats source puts under the event's `nats` field. */
export interface NatsMeta {
  stream: string;
  subject: string;
  seq: number;
  /** How many times the server delivered this message (1 the first time). */
  delivered: number;
  headers?: Record<string, string | string[]>;
}

export type NatsDecoding = 'json' | 'text';

/** A decoded message, or why it cannot become an event (it is then dead-lettered and terminated). */
export type Decoded = { event: Event; error?: undefined } | { event: Event; error: string };

/** How much of a malformed payload the dead letter keeps as its `message`. */
const MALFORMED_PREFIX_BYTES = 64 * 1024;

const utf8 = new TextDecoder();

function metaOf(m: JsMsg): NatsMeta {
  const meta: NatsMeta = {
    stream: m.info.stream,
    subject: m.subject,
    seq: m.seq,
    delivered: m.info.deliveryCount,
  };
  const h = m.headers;
  if (h !== undefined) {
    const headers: Record<string, string | string[]> = {};
    let any = false;
    for (const [name, values] of h) {
      if (values.length === 0) continue;
      headers[name] = values.length === 1 ? values[0]! : [...values];
      any = true;
    }
    if (any) meta.headers = headers;
  }
  return meta;
}

/**
 * The event id, stable across redeliveries: the `_id` the payload already carries (an upstream Fluxo's id, which
 * its nats sink also sent as `Nats-Msg-Id`), else the publisher's `Nats-Msg-Id`, else `<stream>:<stream seq>`.
 * Preferring the upstream id keeps one id for an event along the whole path, so the batch layer can drop the
 * duplicates of any hop.
 */
function idOf(m: JsMsg, carried: unknown): string {
  if (typeof carried === 'string' && carried !== '') return carried;
  const msgId = m.headers?.get('Nats-Msg-Id');
  if (msgId !== undefined && msgId !== '') return msgId;
  return `${m.info.stream}:${m.seq}`;
}

/**
 * One message as an event. `json`: the payload must be a JSON object, whose fields become the event's; `text`:
 * the payload (UTF-8) is `message`. Either way `nats` holds where it came from, and `timestamp` (the time the
 * stream stored it), `host` and `source_type` are set only where the payload has none, so an event relayed
 * by an upstream Fluxo keeps its own.
 */
export function decodeMessage(m: JsMsg, decoding: NatsDecoding): Decoded {
  const nats = metaOf(m);
  const stored = new Date(Math.floor(m.info.timestampNanos / 1_000_000)).toISOString();
  if (decoding === 'text') {
    return {
      event: {
        message: utf8.decode(m.data),
        timestamp: stored,
        host: HOSTNAME,
        source_type: 'nats',
        nats,
        _id: idOf(m, undefined),
      },
    };
  }
  let parsed: unknown;
  let problem: string | undefined;
  try {
    parsed = JSON.parse(utf8.decode(m.data));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      problem = `is JSON but not an object (${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed})`;
    }
  } catch (error) {
    problem = `is not valid JSON (${(error as Error).message})`;
  }
  if (problem !== undefined) {
    return {
      error: `message ${nats.stream}:${nats.seq} on ${nats.subject} ${problem}`,
      event: {
        message: utf8.decode(m.data.subarray(0, MALFORMED_PREFIX_BYTES)),
        timestamp: stored,
        host: HOSTNAME,
        source_type: 'nats',
        nats,
        _id: idOf(m, undefined),
      },
    };
  }
  const event = parsed as Event;
  event.timestamp ??= stored;
  event.host ??= HOSTNAME;
  event.source_type ??= 'nats';
  event.nats = nats;
  event._id = idOf(m, event._id);
  return { event };
}
