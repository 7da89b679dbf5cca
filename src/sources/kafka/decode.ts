import type { Message } from '@platformatic/kafka';
import { type Event, HOSTNAME } from '../../core/event.ts';

/** What the kafka source puts under the event's `kafka` field. */
export interface KafkaMeta {
  topic: string;
  partition: number;
  offset: number;
  /** The message key as UTF-8 text, when the message has one. */
  key?: string;
  headers?: Record<string, string>;
}

export type KafkaDecoding = 'json' | 'text';

/** A decoded message, or why it cannot become an event (it is then dead-lettered). */
export type Decoded = { event: Event; error?: undefined } | { event: Event; error: string };

/** How much of a malformed value the dead letter keeps as its `message`. */
const MALFORMED_PREFIX_BYTES = 64 * 1024;

const utf8 = new TextDecoder();

function metaOf(m: Message): KafkaMeta {
  const meta: KafkaMeta = { topic: m.topic, partition: m.partition, offset: Number(m.offset) };
  if (m.key !== undefined && m.key !== null && m.key.length > 0) meta.key = utf8.decode(m.key);
  if (m.headers !== undefined && m.headers.size > 0) {
    const headers: Record<string, string> = {};
    for (const [name, value] of m.headers) headers[utf8.decode(name)] = value === undefined ? '' : utf8.decode(value);
    meta.headers = headers;
  }
  return meta;
}

/**
 * The event id, the same on every re-read: the `_id` the value already carries (an upstream Fluxo's, which its
 * kafka sink also sends as the `_id` header), else the `_id` header, else `<topic>:<partition>:<offset>`. Keeping
 * the upstream id lets the batch layer drop the duplicates of every hop with one id.
 */
function idOf(meta: KafkaMeta, carried: unknown): string {
  if (typeof carried === 'string' && carried !== '') return carried;
  const header = meta.headers?._id;
  if (header !== undefined && header !== '') return header;
  return `${meta.topic}:${meta.partition}:${meta.offset}`;
}

function timestampOf(m: Message): string {
  const ms = Number(m.timestamp);
  return new Date(Number.isFinite(ms) && ms > 0 ? ms : Date.now()).toISOString();
}

/**
 * One message as an event. `json`: the value must be a JSON object whose fields become the event's; `text`: the
 * value (UTF-8) is `message`. `kafka` says where it came from; `timestamp` (the message's), `host` and
 * `source_type` are set only where the value has none, so an event relayed by an upstream Fluxo keeps its own.
 */
export function decodeMessage(m: Message, decoding: KafkaDecoding): Decoded {
  const kafka = metaOf(m);
  const value = m.value ?? Buffer.alloc(0);
  if (decoding === 'text') {
    return {
      event: {
        message: utf8.decode(value),
        timestamp: timestampOf(m),
        host: HOSTNAME,
        source_type: 'kafka',
        kafka,
        _id: idOf(kafka, undefined),
      },
    };
  }
  let parsed: unknown;
  let problem: string | undefined;
  try {
    parsed = JSON.parse(utf8.decode(value));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      problem = `is JSON but not an object (${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed})`;
    }
  } catch (error) {
    problem = `is not valid JSON (${(error as Error).message})`;
  }
  if (problem !== undefined) {
    return {
      error: `message ${kafka.topic}:${kafka.partition}:${kafka.offset} ${problem}`,
      event: {
        message: utf8.decode(value.subarray(0, MALFORMED_PREFIX_BYTES)),
        timestamp: timestampOf(m),
        host: HOSTNAME,
        source_type: 'kafka',
        kafka,
        _id: idOf(kafka, undefined),
      },
    };
  }
  const event = parsed as Event;
  event.timestamp ??= timestampOf(m);
  event.host ??= HOSTNAME;
  event.source_type ??= 'kafka';
  event.kafka = kafka;
  event._id = idOf(kafka, event._id);
  return { event };
}
