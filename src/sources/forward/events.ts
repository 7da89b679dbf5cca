import { EventTime, entryTimeMs } from '../../codecs/forward.ts';
import type { Event, EventIdGenerator } from '../../core/event.ts';

/**
 * How a forward entry `[time, record]` becomes an event (docs/components.md repeats this):
 * - the record's keys become the event's top-level fields, as they are (nested maps stay nested);
 * - `message`: the record's `message`; when it has none, its `log` (Docker, Fluent Bit tail), which is then not
 *   kept under `log`; a record with neither has no `message`;
 * - `tag`: the message's tag; `timestamp`: the entry time (ISO-8601, milliseconds); `source_type`: `forward`.
 *   These three replace record keys of the same name;
 * - `host`: the record's `host` when it has one (the origin, e.g. a web server behind an agent), else the peer's address;
 * - `_id`: the record's `_id` when it is a string (set by an upstream Fluxo), else `<chunk>:<index>` (the entry's
 *   position in its message) when the sender asked for an ack, else a UUIDv7. A resent chunk so gets the same ids.
 * - MessagePack binary values become UTF-8 strings; nested EventTimes become epoch milliseconds.
 */
export class EntryConverter {
  private isoSecond = Number.NaN;
  private isoPrefix = '';

  constructor(private readonly ids: EventIdGenerator) {}

  /**
   * Appends the events of `entries` to `out`. Entries that are not `[time, record]` are appended to `invalid` with
   * the reason. `chunk` is the sender's chunk id (already trimmed) or undefined.
   */
  append(
    tag: string,
    entries: unknown[],
    peerHost: string,
    chunk: string | undefined,
    out: Event[],
    invalid: { entry: unknown; reason: string }[],
  ): void {
    const now = Date.now();
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (!Array.isArray(entry) || entry.length !== 2) {
        invalid.push({ entry, reason: 'forward entry is not a [time, record] pair' });
        continue;
      }
      const record = entry[1] as Record<string, unknown>;
      if (record === null || typeof record !== 'object' || Array.isArray(record) || record instanceof Uint8Array) {
        invalid.push({ entry, reason: 'forward entry record is not a map' });
        continue;
      }
      const ms = entryTimeMs(entry[0]);
      if (!(ms >= -62_135_596_800_000 && ms < 253_402_300_800_000)) {
        invalid.push({
          entry,
          reason: 'forward entry time is not a number of seconds or an EventTime in years 1-9999',
        });
        continue;
      }
      let event = record;
      if (record.message === undefined && record.log !== undefined) {
        // A copy without `log` rather than `delete`, which would turn the object into a slow dictionary.
        event = { message: record.log };
        for (const key in record) if (key !== 'log') event[key] = record[key];
      }
      for (const key in event) {
        const v = event[key];
        if (v !== null && typeof v === 'object') event[key] = plain(v);
      }
      event.tag = tag;
      event.timestamp = this.iso(ms);
      if (event.host === undefined) event.host = peerHost;
      event.source_type = 'forward';
      if (typeof event._id !== 'string') event._id = chunk === undefined ? this.ids.next(now) : `${chunk}:${i}`;
      out.push(event);
    }
  }

  /** ISO-8601 with milliseconds; the date part is formatted once per second. */
  private iso(ms: number): string {
    const whole = Math.floor(ms);
    const second = Math.floor(whole / 1000);
    if (second !== this.isoSecond) {
      this.isoSecond = second;
      this.isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    }
    return this.isoPrefix + MILLIS[whole - second * 1000]!;
  }
}

const MILLIS: string[] = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, '0')}Z`);

/** JSON-safe copy of a decoded MessagePack value: binary → UTF-8 text, EventTime → epoch ms; in place for containers. */
function plain(value: object): unknown {
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  if (value instanceof EventTime) return value.ms;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v !== null && typeof v === 'object') value[i] = plain(v);
    }
    return value;
  }
  const o = value as Record<string, unknown>;
  for (const key in o) {
    const v = o[key];
    if (v !== null && typeof v === 'object') o[key] = plain(v);
  }
  return o;
}

/** A short, JSON-safe description of an entry that could not become an event, for the dead letter output. */
export function describeInvalidEntry(entry: unknown): string {
  let text: string;
  try {
    // `this[key]` is the value before toJSON (a Buffer's would be its bytes as numbers).
    text = JSON.stringify(entry, function (this: Record<string, unknown>, key: string, v: unknown) {
      const raw = this[key];
      return raw instanceof Uint8Array ? `<${raw.length} bytes>` : raw instanceof EventTime ? raw.ms : v;
    });
  } catch {
    text = String(entry);
  }
  return text === undefined ? String(entry) : text.length > 1024 ? `${text.slice(0, 1024)}…` : text;
}
