import { type Event, HOSTNAME } from '../../core/event.ts';

export type RedisDecoding = 'json' | 'text';

/** A decoded stream entry, or why it cannot become an event (it is then dead-lettered and acknowledged). */
export type DecodedEntry = { event: Event; error?: undefined } | { event: Event; error: string };

const MALFORMED_PREFIX_CHARS = 64 * 1024;

/** Entry ids are `<ms>-<seq>`: the milliseconds the server stored the entry, a fine timestamp when none is given. */
function entryTime(id: string): string {
  const ms = Number(id.slice(0, id.indexOf('-')));
  return Number.isFinite(ms) ? new Date(ms).toISOString() : new Date().toISOString();
}

/**
 * One entry as an event. `json`: the `message_field` holds a JSON object (what a redis sink writes) whose fields
 * become the event; the entry's other fields are added where the object has none. `text`: every entry field
 * becomes an event field as the string it is. `redis: { key, id }` says where it came from; `timestamp` (the
 * entry id's time), `host` and `source_type` are set only where missing, so a relayed event keeps its own.
 * `_id`: the event's own `_id` (an upstream Fluxo's), else the entry's `_id` field, else `<key>:<entry id>` —
 * the same on every re-read and claim.
 */
export function decodeEntry(
  key: string,
  id: string,
  fields: readonly string[],
  decoding: RedisDecoding,
  messageField: string,
): DecodedEntry {
  const flat: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) flat[fields[i]!] = fields[i + 1]!;
  const redis = { key, id };
  const fallbackId = `${key}:${id}`;
  if (decoding === 'text') {
    const event: Event = { ...flat };
    event.timestamp ??= entryTime(id);
    event.host ??= HOSTNAME;
    event.source_type ??= 'redis';
    event.redis = redis;
    if (typeof event._id !== 'string' || event._id === '') event._id = fallbackId;
    return { event };
  }
  const raw = flat[messageField];
  let problem: string | undefined;
  let parsed: unknown;
  if (raw === undefined) problem = `has no field "${messageField}"`;
  else {
    try {
      parsed = JSON.parse(raw);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        problem = `field "${messageField}" is JSON but not an object`;
      }
    } catch (error) {
      problem = `field "${messageField}" is not valid JSON (${(error as Error).message})`;
    }
  }
  if (problem !== undefined) {
    return {
      error: `entry ${id} of ${key} ${problem}`,
      event: {
        message: (raw ?? JSON.stringify(flat)).slice(0, MALFORMED_PREFIX_CHARS),
        timestamp: entryTime(id),
        host: HOSTNAME,
        source_type: 'redis',
        redis,
        _id: typeof flat._id === 'string' && flat._id !== '' ? flat._id : fallbackId,
      },
    };
  }
  const event = parsed as Event;
  for (const name in flat) if (name !== messageField && event[name] === undefined) event[name] = flat[name];
  event.timestamp ??= entryTime(id);
  event.host ??= HOSTNAME;
  event.source_type ??= 'redis';
  event.redis = redis;
  if (typeof event._id !== 'string' || event._id === '') event._id = fallbackId;
  return { event };
}

/** A stream entry as a reply holds it: its id and its fields (null when the stream lost it meanwhile). */
export type Entry = [id: string, fields: string[] | null];

/**
 * Entries of an XREADGROUP reply for one stream: `[[key, [[id, [f, v, …]] | [id, null], …]]]` on the wire, which
 * node-redis hands over as `{ key: [...] }`; null when a BLOCK ran out.
 */
export function streamEntries(reply: unknown): Entry[] {
  if (reply === null || typeof reply !== 'object') return [];
  if (Array.isArray(reply)) return reply.length === 0 ? [] : entryList((reply[0] as unknown[])[1]);
  if (reply instanceof Map) return entryList([...reply.values()][0]);
  return entryList(Object.values(reply)[0]);
}

export function entryList(list: unknown): Entry[] {
  if (!Array.isArray(list)) return [];
  const out: Entry[] = [];
  for (const item of list) {
    if (!Array.isArray(item)) continue;
    const fields = item[1];
    out.push([String(item[0]), Array.isArray(fields) ? fields.map(String) : null]);
  }
  return out;
}
