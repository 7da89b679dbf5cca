/**
 * The events every Parquet writer candidate gets: socket-source access lines parsed in place, the way the
 * default config's `parse` (apache_combined) leaves them, with the raw line kept in `message`. Deterministic for
 * a seed apart from `_id`, whose random bits change per process (its count of distinct values does not).
 */

import { AccessLogGenerator } from '../../src/codecs/access-log.ts';
import { parseAccessLog } from '../../src/codecs/parsers/access-log.ts';
import { type Event, EventIdGenerator } from '../../src/core/event.ts';

export const SEED = 20261202;
/** 2026-12-02T00:00:00Z; one event per millisecond, so about a thousand share each second of the log line. */
const START_MS = Date.UTC(2026, 11, 2);

export class AccessEventSource {
  private readonly lines = new AccessLogGenerator({ format: 'apache_combined', seed: SEED });
  private readonly ids = new EventIdGenerator();
  private sequence = 0;
  statusSum = 0;

  /** The next `count` events, as one batch a sink would be handed. */
  batch(count: number): Event[] {
    const out: Event[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const seq = ++this.sequence;
      const now = START_MS + seq;
      const message = this.lines.line(seq, now);
      const event: Event = {
        message,
        timestamp: '',
        host: '10.0.3.17',
        port: 51000 + (seq % 300),
        source_type: 'socket',
        _id: this.ids.next(now),
      };
      parseAccessLog(message, true, event);
      this.statusSum += event.status as number;
      out[i] = event;
    }
    return out;
  }
}

export type ColumnKind = 'string' | 'int32' | 'int64' | 'timestamp_ms';

/** The declared schema, in file order. `timestamp` is milliseconds since the epoch, adjusted to UTC. */
export const COLUMNS: readonly { name: string; kind: ColumnKind; nullable: boolean }[] = [
  { name: '_id', kind: 'string', nullable: false },
  { name: 'timestamp', kind: 'timestamp_ms', nullable: false },
  { name: 'host', kind: 'string', nullable: true },
  { name: 'port', kind: 'int32', nullable: true },
  { name: 'source_type', kind: 'string', nullable: true },
  { name: 'client', kind: 'string', nullable: true },
  { name: 'user', kind: 'string', nullable: true },
  { name: 'method', kind: 'string', nullable: true },
  { name: 'path', kind: 'string', nullable: true },
  { name: 'protocol', kind: 'string', nullable: true },
  { name: 'status', kind: 'int32', nullable: true },
  { name: 'bytes', kind: 'int64', nullable: true },
  { name: 'referrer', kind: 'string', nullable: true },
  { name: 'agent', kind: 'string', nullable: true },
  { name: 'message', kind: 'string', nullable: true },
];

/** Column-major values: strings or null, numbers or null; timestamps as epoch milliseconds. */
export type ColumnValues = (string | number | null)[][];

export function emptyColumns(): ColumnValues {
  return COLUMNS.map(() => []);
}

let lastIso = '';
let lastMs = 0;

/** ISO-8601 to epoch ms; consecutive events mostly share their second, so the last conversion is kept. */
export function isoToMs(iso: string): number {
  if (iso !== lastIso) {
    lastIso = iso;
    lastMs = Date.parse(iso);
  }
  return lastMs;
}

/** Appends a batch to column arrays: the transposition every columnar writer needs from row events. */
export function appendColumns(columns: ColumnValues, batch: readonly Event[]): void {
  for (let c = 0; c < COLUMNS.length; c++) {
    const { name, kind } = COLUMNS[c]!;
    const out = columns[c]!;
    if (kind === 'timestamp_ms') {
      for (const event of batch) out.push(isoToMs(event[name] as string));
    } else {
      for (const event of batch) out.push((event[name] as string | number | undefined) ?? null);
    }
  }
}
