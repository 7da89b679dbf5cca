/**
 * The shape of what the dashboard, `GET /api/snapshot`, `GET /api/events` (one per second) and `fluxo top` read.
 * Plain JSON: numbers are events, bytes, events per second or milliseconds, as the field names say.
 */

/** The id of the dead letter output in the graph (what consumers name in `inputs`). */
export const DEAD_LETTER_NODE = 'dead_letter';

export type NodeKind = 'source' | 'transform' | 'sink' | 'dead_letter';

/** A component of the running config, as the dashboard draws it. */
export interface GraphComponent {
  id: string;
  kind: 'source' | 'transform' | 'sink';
  type: string;
  /** Ids of sources or transform outputs (`route.errors`), or `dead_letter`. */
  inputs: readonly string[];
  endpoint?: string | undefined;
  buffer?: { type: string; max_events?: number | undefined; max_bytes?: number | undefined; when_full: string };
}

export interface BufferSnapshot {
  type: string;
  when_full: string;
  events: number;
  bytes: number;
  max_events: number | null;
  max_bytes: number | null;
  /** The fuller of events/max_events and bytes/max_bytes, 0 to 1. */
  fill: number;
  /** Events dropped by `when_full: drop_newest`. */
  dropped_total: number;
}

export interface ComponentSnapshot {
  id: string;
  kind: NodeKind;
  type: string;
  in_per_s: number;
  out_per_s: number;
  received_total: number;
  sent_total: number;
  errors_total: number;
  errors_per_s: number;
  error_types: Record<string, number>;
  retries_total: number;
  dead_lettered_total: number;
  discarded_total: number;
  /** Sources: batches emitted and not yet settled by every sink. */
  pending_acks?: number;
  /** Sources: age of the oldest batch not yet settled; null when none is pending. */
  oldest_unacked_ms?: number | null;
  /** Sinks. */
  buffer?: BufferSnapshot;
  /** Sinks: end-to-end latency (receipt at the source → delivery) over the last 10 s; null without deliveries. */
  latency_p50_ms?: number | null;
  latency_p99_ms?: number | null;
  /** Sinks: holding events and delivering none for 3 s or more. */
  stalled?: boolean;
}

export interface EdgeSnapshot {
  from: string;
  to: string;
  /** A transform's named output (`errors` of `route.errors`), `dead_letter`, or '' for the main one. */
  output: string;
  per_s: number;
}

/** Per source, "is anything lost": each accepted event ends acknowledged, in flight, dead-lettered or dropped. */
export interface LedgerRow {
  source: string;
  /** Events the source took in (and emitted into the pipeline). */
  accepted: number;
  /** Events every sink settled: the source acknowledged them upstream. */
  acknowledged: number;
  /** Accepted, not yet settled: in buffers or being written. */
  in_flight: number;
  /** Settled as failed (shutdown or reload before delivery): never acknowledged, so the sender still has them. */
  not_acknowledged: number;
  /** Dead-lettered by this source or a component downstream of it (they count as settled). */
  dead_lettered: number;
  /** Everything lost, the sum of `drops`. */
  dropped: number;
  /** `dropped` by cause, so the operator sees why. */
  drops: LedgerDrops;
  /** Some downstream component also takes another source's events: its dead letters and drops show in both rows. */
  shared: boolean;
}

/**
 * The causes of loss. `buffer_full` and `throttled` are accepted events (counted in `accepted`, settled as
 * handled); the others never made it into the pipeline, so they are not in `accepted`: UDP datagrams (one or
 * more events each) and unterminated lines or frames.
 */
export interface LedgerDrops {
  /** Dropped by a full buffer downstream with `when_full: drop_newest`. */
  buffer_full: number;
  /** Over a throttle's budget downstream (and not rerouted to a consumed `<id>.dropped` output). */
  throttled: number;
  /** UDP datagrams dropped by Fluxo while the pipeline was blocked and 8 MiB were already held. */
  udp_backlog: number;
  /** UDP datagrams the kernel dropped from the socket's full receive queue (Linux /proc/net/udp; since the socket opened). */
  udp_kernel: number;
  /** Unterminated lines or frames dropped when a connection closed or was reset (TCP sources, stdin, relp). */
  partial: number;
}

export interface PipelineSnapshot {
  /** Epoch ms of the sample. */
  at: number;
  interval_ms: number;
  state: string;
  components: ComponentSnapshot[];
  edges: EdgeSnapshot[];
  ledger: LedgerRow[];
}

/**
 * The `q`-quantile in milliseconds of histogram counts per bucket (cumulative, as Prometheus keeps them, over
 * `bounds` in seconds), interpolated linearly inside the bucket as `histogram_quantile` does; null without samples.
 */
export function quantileMs(bounds: readonly number[], cumulative: readonly number[], q: number): number | null {
  const order = bounds.map((b, i) => [b, cumulative[i] ?? 0] as const).sort((a, b) => a[0] - b[0]);
  const total = order.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of order) {
    if (count >= rank) {
      // Past the last finite bound there is nothing to interpolate to: the last finite bound is the best answer.
      if (!Number.isFinite(bound)) return Math.round(lowerBound * 1000 * 1000) / 1000;
      const inBucket = count - lowerCount;
      const seconds = inBucket > 0 ? lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / inBucket : bound;
      return Math.round(seconds * 1000 * 1000) / 1000;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return null;
}
