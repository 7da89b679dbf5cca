import type { Registry } from 'prom-client';
import type { ComponentMetrics } from '../../core/metrics.ts';
import { Histogram } from '../../core/prom.ts';
import { TIMELINE_STEP_MS, type TimelinePoint } from './scan.ts';

const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const LABELS = ['component_id', 'component_kind', 'component_type'];

/** One fsync histogram per metrics registry (prom-client refuses a second metric of the same name). */
const fsyncHistograms = new WeakMap<Registry, Histogram<string>>();

function fsyncHistogram(registry: Registry | undefined): Histogram<string> {
  const name = 'fluxo_disk_buffer_fsync_seconds';
  const help =
    'Latency of the durable writes of a disk buffer: with sync: always the O_DSYNC write of each group commit, with sync: interval each fdatasync.';
  if (!registry) return new Histogram({ name, help, labelNames: LABELS, buckets: FSYNC_BUCKETS, registers: [] });
  let h = fsyncHistograms.get(registry);
  if (!h) {
    h = new Histogram({ name, help, labelNames: LABELS, buckets: FSYNC_BUCKETS, registers: [registry] });
    fsyncHistograms.set(registry, h);
  }
  return h;
}

/** The disk buffer's metrics, bound to the sink's labels. */
export class DiskBufferMetrics {
  readonly fsync;
  readonly corrupt;
  readonly written;
  readonly unwritten;
  readonly replayed;
  readonly oldestAge;
  readonly unsyncedEvents;
  readonly unsyncedBytes;
  readonly diskFull;
  readonly maxBytes;
  readonly segments;

  constructor(
    readonly component: ComponentMetrics,
    registry: Registry | undefined,
  ) {
    const m = component;
    this.fsync = fsyncHistogram(registry).labels(m.labels);
    this.corrupt = m.counter(
      'fluxo_disk_buffer_corrupt_records_total',
      'Records of a disk buffer found damaged (CRC mismatch, torn or cut short) and skipped or truncated.',
    );
    this.written = m.counter(
      'fluxo_disk_buffer_written_events_total',
      'Events written to a disk buffer and acknowledged upstream (after their fsync with sync: always).',
    );
    this.unwritten = m.counter(
      'fluxo_disk_buffer_unwritten_events_total',
      'Events the sink delivered within write_delay, so never written to the disk buffer.',
    );
    this.replayed = m.counter(
      'fluxo_disk_buffer_replayed_events_total',
      'Events found on disk at start, written by an earlier run and not acknowledged by the sink: sent again.',
    );
    this.oldestAge = m.gauge(
      'fluxo_buffer_oldest_unacked_age_seconds',
      "Age of the oldest event in a sink's buffer that the sink has not acknowledged.",
    );
    this.unsyncedEvents = m.gauge(
      'fluxo_disk_buffer_unsynced_events',
      'Events acknowledged upstream but not yet fsynced (sync: interval): what a power loss or kernel crash could lose.',
    );
    this.unsyncedBytes = m.gauge(
      'fluxo_disk_buffer_unsynced_bytes',
      'Bytes acknowledged upstream but not yet fsynced (sync: interval).',
    );
    this.diskFull = m.gauge(
      'fluxo_disk_buffer_disk_full',
      '1 while a disk buffer cannot write (disk full or I/O error): it holds new events back like when_full: block.',
    );
    this.maxBytes = m.gauge('fluxo_buffer_max_bytes', "The sink buffer's size limit in bytes.");
    this.segments = m.gauge('fluxo_disk_buffer_segments', 'Segment files of a disk buffer.');
  }

  /** The buffer's size, and with sync: interval what is written but not yet fsynced (`unsynced`, the writer). */
  setSize(
    events: number,
    bytes: number,
    unsynced: { readonly unsyncedEvents: number; readonly unsyncedBytes: number } | undefined,
  ): void {
    this.component.bufferEvents.set(events);
    this.component.bufferBytes.set(bytes);
    if (unsynced) {
      this.unsyncedEvents.set(unsynced.unsyncedEvents);
      this.unsyncedBytes.set(unsynced.unsyncedBytes);
    }
  }
}

/**
 * When the written records were admitted, coarsely: a point every TIMELINE_STEP_MS at most (the scan at open
 * rebuilds it from the headers), for the oldest-unacknowledged age; the points the acknowledged position passed
 * are dropped.
 */
export class WriteTimeline {
  constructor(private readonly points: TimelinePoint[]) {}

  /** A record was written (records come in id order). */
  written(id: number, at: number): void {
    const t = this.points;
    if (t.length === 0 || at - t[t.length - 1]!.at >= TIMELINE_STEP_MS) t.push({ id, at });
  }

  /** When the oldest written record past `ackedId` was admitted; +Infinity when none is (the last is `lastId`). */
  oldestUnacked(ackedId: number, lastId: number): number {
    const t = this.points;
    let drop = 0;
    while (drop + 1 < t.length && t[drop + 1]!.id <= ackedId + 1) drop++;
    if (drop > 0) t.splice(0, drop);
    return t.length > 0 && ackedId < lastId ? t[0]!.at : Number.POSITIVE_INFINITY;
  }
}
