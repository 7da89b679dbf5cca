import type { Registry } from 'prom-client';
import { MetricsHistory } from './history.ts';
import {
  type ComponentSnapshot,
  DEAD_LETTER_NODE,
  type EdgeSnapshot,
  type GraphComponent,
  type LedgerDrops,
  type LedgerRow,
  type PipelineSnapshot,
  quantileMs,
} from './snapshot.ts';
import { udpKernelDrops } from './udp-drops.ts';

/** What the telemetry reads from the running pipeline: its metrics registry and its wiring. */
export interface TelemetrySource {
  readonly registry: Registry;
  /** The components of the running config, with their inputs and buffer limits. */
  graph(): GraphComponent[];
  /** Per source, when its oldest batch not yet settled by every sink was received (epoch ms). */
  oldestUnsettled(): Map<string, number>;
  state(): string;
}

/** The cumulative numbers of one component at one instant, as read from the registry. */
interface RawComponent {
  received: number;
  sent: Map<string, number>;
  errors: Map<string, number>;
  retries: number;
  deadLettered: number;
  discarded: number;
  bufferEvents: number;
  bufferBytes: number;
  bufferMaxEvents: number;
  bufferMaxBytes: number;
  dropped: number;
  /** Sources: datagrams dropped from the 8 MiB hold while the pipeline was blocked. */
  udpBacklogDropped: number;
  /** Sources: datagrams the kernel dropped from the socket's full receive queue (/proc/net/udp). */
  udpKernelDropped: number;
  /** Sources: unterminated lines or frames dropped at a connection's close or reset. */
  partialDropped: number;
  /** Throttle transforms: events over budget. */
  throttled: number;
  pendingAcks: number;
  acknowledged: number;
  failed: number;
  /** Cumulative counts of the end-to-end latency histogram, one per bound of `bounds`. */
  buckets: number[];
}

/** A component with nothing counted yet. */
function emptyComponent(): RawComponent {
  return {
    received: 0,
    sent: new Map(),
    errors: new Map(),
    retries: 0,
    deadLettered: 0,
    discarded: 0,
    bufferEvents: 0,
    bufferBytes: 0,
    bufferMaxEvents: 0,
    bufferMaxBytes: 0,
    dropped: 0,
    udpBacklogDropped: 0,
    udpKernelDropped: 0,
    partialDropped: 0,
    throttled: 0,
    pendingAcks: 0,
    acknowledged: 0,
    failed: 0,
    buckets: [],
  };
}

interface RawSample {
  at: number;
  components: Map<string, RawComponent>;
  /** The latency histogram's upper bounds in seconds (the last is +Inf). */
  bounds: number[];
}

/** Seconds of history the p50/p99 are computed over: one second holds too few deliveries to say much. */
const LATENCY_WINDOW = 10;
/** Seconds a sink may hold events without delivering any before it is marked stalled. */
const STALL_AFTER = 3;

/**
 * Samples the pipeline's metrics once per interval into a snapshot (rates, buffer fill, latency percentiles, the
 * loss ledger) that the dashboard, `/api/events` and `fluxo top` show, and keeps the last minutes in a bounded
 * ring for sparklines. One timer for the whole process, whatever the number of viewers: a viewer costs one write
 * of the same JSON per second.
 */
export class PipelineTelemetry {
  readonly history: MetricsHistory;
  private timer: NodeJS.Timeout | undefined;
  private readonly raw: RawSample[] = [];
  private readonly idleSince = new Map<string, number>();
  private readonly listeners = new Set<(snapshot: PipelineSnapshot, json: string) => void>();
  private last: PipelineSnapshot | undefined;
  private lastJson = '';
  private sampling: Promise<PipelineSnapshot> | undefined;

  constructor(
    private readonly source: TelemetrySource,
    private readonly options: { intervalMs?: number; historySeconds?: number; clock?: () => number } = {},
  ) {
    this.history = new MetricsHistory(options.historySeconds ?? 900);
  }

  get intervalMs(): number {
    return this.options.intervalMs ?? 1000;
  }

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** The newest snapshot, taking one first if none was taken yet. */
  async latest(): Promise<PipelineSnapshot> {
    return this.last ?? this.sample();
  }

  /** Calls `listener` with every new snapshot (and its JSON, encoded once for every viewer); returns the remover. */
  subscribe(listener: (snapshot: PipelineSnapshot, json: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Takes a snapshot now; concurrent calls share one. */
  sample(): Promise<PipelineSnapshot> {
    this.sampling ??= this.read()
      .then((raw) => {
        const snapshot = this.snapshotOf(raw);
        this.last = snapshot;
        this.lastJson = JSON.stringify(snapshot);
        this.history.push(snapshot);
        for (const l of this.listeners) l(snapshot, this.lastJson);
        return snapshot;
      })
      .finally(() => {
        this.sampling = undefined;
      });
    return this.sampling;
  }

  private async read(): Promise<RawSample> {
    const components = new Map<string, RawComponent>();
    const of = (id: string): RawComponent => {
      let c = components.get(id);
      if (!c) {
        c = emptyComponent();
        components.set(id, c);
      }
      return c;
    };
    type Value = { value: number; labels: Record<string, string | number>; metricName?: string };
    const read = async (name: string, apply: (c: RawComponent, v: Value) => void) => {
      const metric = this.source.registry.getSingleMetric(name);
      if (!metric) return;
      const values = (await metric.get()).values as Value[];
      for (const v of values) {
        const id = v.labels.component_id;
        if (typeof id === 'string') apply(of(id), v);
      }
    };
    const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
    const bounds: number[] = [];
    await read('fluxo_component_received_events_total', (c, v) => (c.received += v.value));
    await read('fluxo_component_sent_events_total', (c, v) => add(c.sent, String(v.labels.output ?? ''), v.value));
    await read('fluxo_component_errors_total', (c, v) => add(c.errors, String(v.labels.error_type), v.value));
    await read('fluxo_sink_retries_total', (c, v) => (c.retries += v.value));
    await read('fluxo_dead_letter_events_total', (c, v) => (c.deadLettered += v.value));
    await read('fluxo_component_discarded_events_total', (c, v) => (c.discarded += v.value));
    await read('fluxo_buffer_events', (c, v) => (c.bufferEvents = v.value));
    await read('fluxo_buffer_bytes', (c, v) => (c.bufferBytes = v.value));
    await read('fluxo_buffer_max_events', (c, v) => (c.bufferMaxEvents = v.value));
    await read('fluxo_buffer_max_bytes', (c, v) => (c.bufferMaxBytes = v.value));
    await read('fluxo_buffer_dropped_events_total', (c, v) => (c.dropped += v.value));
    for (const name of UDP_BACKLOG_DROPS) await read(name, (c, v) => (c.udpBacklogDropped += v.value));
    for (const name of this.partialDropMetrics()) await read(name, (c, v) => (c.partialDropped += v.value));
    await read('fluxo_throttled_events_total', (c, v) => (c.throttled += v.value));
    for (const [id, n] of await udpKernelDrops(this.udpSources())) of(id).udpKernelDropped = n;
    await read('fluxo_pending_acknowledgements', (c, v) => (c.pendingAcks = v.value));
    await read('fluxo_source_acknowledged_events_total', (c, v) => (c.acknowledged += v.value));
    await read('fluxo_source_unacknowledged_events_total', (c, v) => (c.failed += v.value));
    await read('fluxo_end_to_end_latency_seconds', (c, v) => {
      if (v.metricName?.endsWith('_bucket') !== true) return;
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
      let i = bounds.indexOf(le);
      if (i < 0) {
        bounds.push(le);
        i = bounds.length - 1;
      }
      c.buckets[i] = (c.buckets[i] ?? 0) + v.value;
    });
    return { at: (this.options.clock ?? Date.now)(), components, bounds };
  }

  /** The sources listening on UDP, from the graph's endpoints (none: /proc is never read). */
  private udpSources(): GraphComponent[] {
    return this.source.graph().filter((g) => g.kind === 'source' && g.endpoint?.startsWith('udp ') === true);
  }

  /** `fluxo_<source>_partial_<unit>_dropped_total` of every stream source in the registry, named once each. */
  private partialDropMetrics(): string[] {
    const names: string[] = [];
    for (const m of this.source.registry.getMetricsAsArray()) {
      const name = (m as unknown as { name: string }).name;
      if (PARTIAL_DROPS.test(name)) names.push(name);
    }
    return names;
  }

  private snapshotOf(now: RawSample): PipelineSnapshot {
    const prev = this.raw.at(-1);
    const windowStart = this.raw.length >= LATENCY_WINDOW ? this.raw[this.raw.length - LATENCY_WINDOW] : this.raw[0];
    this.raw.push(now);
    if (this.raw.length > LATENCY_WINDOW) this.raw.shift();
    const dt = prev ? Math.max(0.001, (now.at - prev.at) / 1000) : 0;
    const rate = (a: number, b: number | undefined) => (dt === 0 || b === undefined ? 0 : Math.max(0, a - b) / dt);
    const sum = (m: Map<string, number> | undefined) => {
      let s = 0;
      for (const v of m?.values() ?? []) s += v;
      return s;
    };
    const graph = this.source.graph();
    const oldest = this.source.oldestUnsettled();
    const components: ComponentSnapshot[] = [];
    let deadLetterTotal = 0;
    let deadLetterRate = 0;
    for (const g of graph) {
      const c = now.components.get(g.id) ?? emptyComponent();
      const p = prev?.components.get(g.id);
      const errors = sum(c.errors);
      const snap: ComponentSnapshot = {
        id: g.id,
        kind: g.kind,
        type: g.type,
        in_per_s: round(rate(c.received, p?.received)),
        out_per_s: round(rate(sum(c.sent), p ? sum(p.sent) : undefined)),
        received_total: c.received,
        sent_total: sum(c.sent),
        errors_total: errors,
        errors_per_s: round(rate(errors, p ? sum(p.errors) : undefined)),
        error_types: Object.fromEntries(c.errors),
        retries_total: c.retries,
        dead_lettered_total: c.deadLettered,
        discarded_total: c.discarded,
      };
      deadLetterTotal += c.deadLettered;
      deadLetterRate += rate(c.deadLettered, p?.deadLettered);
      if (g.kind === 'source') {
        snap.pending_acks = c.pendingAcks;
        const at = oldest.get(g.id);
        snap.oldest_unacked_ms = at === undefined ? null : Math.max(0, now.at - at);
      }
      if (g.kind === 'sink') {
        const maxEvents = c.bufferMaxEvents || g.buffer?.max_events || 0;
        const maxBytes = c.bufferMaxBytes || g.buffer?.max_bytes || 0;
        const fill = Math.max(
          maxEvents > 0 ? c.bufferEvents / maxEvents : 0,
          maxBytes > 0 ? c.bufferBytes / maxBytes : 0,
        );
        snap.buffer = {
          type: g.buffer?.type ?? 'memory',
          when_full: g.buffer?.when_full ?? 'block',
          events: c.bufferEvents,
          bytes: c.bufferBytes,
          max_events: maxEvents || null,
          max_bytes: maxBytes || null,
          fill: round(Math.min(1, fill), 4),
          dropped_total: c.dropped,
        };
        const w = windowStart?.components.get(g.id);
        const delta = c.buckets.map((n, i) => n - (w?.buckets[i] ?? 0));
        snap.latency_p50_ms = quantileMs(now.bounds, delta, 0.5);
        snap.latency_p99_ms = quantileMs(now.bounds, delta, 0.99);
        // Holding events and delivering none for a few seconds: the destination does not answer or refuses.
        if (c.bufferEvents > 0 && snap.out_per_s === 0 && prev !== undefined) {
          if (!this.idleSince.has(g.id)) this.idleSince.set(g.id, now.at);
        } else {
          this.idleSince.delete(g.id);
        }
        const since = this.idleSince.get(g.id);
        snap.stalled = since !== undefined && now.at - since >= STALL_AFTER * 1000 - this.intervalMs / 2;
      }
      components.push(snap);
    }
    components.push({
      id: DEAD_LETTER_NODE,
      kind: 'dead_letter',
      type: 'dead_letter',
      in_per_s: round(deadLetterRate),
      out_per_s: round(deadLetterRate),
      received_total: deadLetterTotal,
      sent_total: deadLetterTotal,
      errors_total: 0,
      errors_per_s: 0,
      error_types: {},
      retries_total: 0,
      dead_lettered_total: 0,
      discarded_total: 0,
    });

    const edges: EdgeSnapshot[] = [];
    const kinds = new Map(graph.map((g) => [g.id, g.kind]));
    for (const g of graph) {
      for (const input of g.inputs) {
        const dot = input.indexOf('.');
        const from = dot > 0 && kinds.get(input.slice(0, dot)) === 'transform' ? input.slice(0, dot) : input;
        const output = from === input ? '' : input.slice(dot + 1);
        let perS: number;
        if (from === DEAD_LETTER_NODE) perS = deadLetterRate;
        else {
          const c = now.components.get(from);
          const p = prev?.components.get(from);
          perS = rate(c?.sent.get(output) ?? 0, p ? (p.sent.get(output) ?? 0) : undefined);
        }
        edges.push({ from, to: g.id, output, per_s: round(perS) });
      }
    }
    for (const c of components) {
      if (c.kind !== 'dead_letter' && c.dead_lettered_total > 0)
        edges.push({
          from: c.id,
          to: DEAD_LETTER_NODE,
          output: 'dead_letter',
          per_s: round(rate(c.dead_lettered_total, prev?.components.get(c.id)?.deadLettered)),
        });
    }

    const ledger: LedgerRow[] = [];
    const reachOf = new Map(graph.filter((g) => g.kind === 'source').map((g) => [g.id, downstream(g.id, graph)]));
    // A throttle's over-budget events are lost unless something reads its `<id>.dropped` output.
    const consumed = new Set(graph.flatMap((g) => g.inputs));
    for (const [id, reach] of reachOf) {
      const c = now.components.get(id) ?? emptyComponent();
      let deadLettered = c.deadLettered;
      const drops: LedgerDrops = {
        buffer_full: 0,
        throttled: 0,
        udp_backlog: c.udpBacklogDropped,
        udp_kernel: c.udpKernelDropped,
        partial: c.partialDropped,
      };
      for (const r of reach) {
        const d = now.components.get(r);
        deadLettered += d?.deadLettered ?? 0;
        drops.buffer_full += d?.dropped ?? 0;
        if (!consumed.has(`${r}.dropped`)) drops.throttled += d?.throttled ?? 0;
      }
      const dropped = drops.buffer_full + drops.throttled + drops.udp_backlog + drops.udp_kernel + drops.partial;
      ledger.push({
        source: id,
        accepted: c.received,
        acknowledged: c.acknowledged,
        in_flight: Math.max(0, c.received - c.acknowledged - c.failed),
        not_acknowledged: c.failed,
        dead_lettered: deadLettered,
        dropped,
        drops,
        // A component fed by several sources counts its dead letters and drops in each of their rows.
        shared: [...reachOf].some(([other, r]) => other !== id && r.some((x) => reach.includes(x))),
      });
    }
    return {
      at: now.at,
      interval_ms: this.intervalMs,
      state: this.source.state(),
      components,
      edges,
      ledger,
    };
  }
}

/** The UDP listeners' hold-overflow counters (socket and syslog sources). */
const UDP_BACKLOG_DROPS = ['fluxo_socket_udp_datagrams_dropped_total', 'fluxo_syslog_udp_datagrams_dropped_total'];
const PARTIAL_DROPS = /^fluxo_[a-z]+_partial_[a-z]+_dropped_total$/;

/** The transforms and sinks that events of `id` can reach. */
function downstream(id: string, graph: readonly GraphComponent[]): string[] {
  const seen = new Set<string>();
  const walk = (from: string) => {
    for (const g of graph) {
      if (seen.has(g.id)) continue;
      if (g.inputs.some((i) => i === from || i.startsWith(`${from}.`))) {
        seen.add(g.id);
        walk(g.id);
      }
    }
  };
  walk(id);
  return [...seen];
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
