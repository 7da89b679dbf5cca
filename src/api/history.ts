import type { PipelineSnapshot } from './snapshot.ts';

/** One component's numbers at one sample: what the sparklines draw. */
export interface HistoryPoint {
  in_per_s: number;
  out_per_s: number;
  errors_per_s: number;
  /** Sinks: buffer fill, 0 to 1. */
  fill: number | null;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
}

export const HISTORY_FIELDS = [
  'in_per_s',
  'out_per_s',
  'errors_per_s',
  'fill',
  'latency_p50_ms',
  'latency_p99_ms',
] as const satisfies readonly (keyof HistoryPoint)[];

/** `GET /api/history`: per component and field, one value per sample time in `at` (null: the component was absent). */
export interface HistoryDump {
  at: number[];
  series: Record<string, Record<(typeof HISTORY_FIELDS)[number], (number | null)[]>>;
}

interface Entry {
  at: number;
  points: Map<string, HistoryPoint>;
}

/**
 * The last `capacity` samples of every component, in a fixed-size ring: memory stays bounded however long the
 * process runs (900 one-second samples of a 10-component pipeline: ~9,000 small objects).
 */
export class MetricsHistory {
  private readonly ring: (Entry | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('history capacity must be a positive integer');
    this.ring = new Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(snapshot: PipelineSnapshot): void {
    const points = new Map<string, HistoryPoint>();
    for (const c of snapshot.components) {
      points.set(c.id, {
        in_per_s: c.in_per_s,
        out_per_s: c.out_per_s,
        errors_per_s: c.errors_per_s,
        fill: c.buffer?.fill ?? null,
        latency_p50_ms: c.latency_p50_ms ?? null,
        latency_p99_ms: c.latency_p99_ms ?? null,
      });
    }
    this.ring[this.next] = { at: snapshot.at, points };
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The samples, oldest first. */
  entries(): { at: number; points: ReadonlyMap<string, HistoryPoint> }[] {
    const out: Entry[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out.push(this.ring[(start + i) % this.capacity]!);
    return out;
  }

  /** Column form for the dashboard: one array per component and field, aligned with `at`. */
  dump(): HistoryDump {
    const entries = this.entries();
    const ids = new Set<string>();
    for (const e of entries) for (const id of e.points.keys()) ids.add(id);
    const series: HistoryDump['series'] = {};
    for (const id of ids) {
      const columns = {} as HistoryDump['series'][string];
      for (const f of HISTORY_FIELDS) columns[f] = entries.map((e) => e.points.get(id)?.[f] ?? null);
      series[id] = columns;
    }
    return { at: entries.map((e) => e.at), series };
  }
}
