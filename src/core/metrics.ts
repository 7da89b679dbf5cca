import type { MetricValueWithName } from 'prom-client';
import type { ComponentKind } from './component.ts';
import { Counter, collectDefaultMetrics, Gauge, Registry } from './prom.ts';

/**
 * All metrics of one running pipeline. Children are bound to their labels once per component at build
 * time, so the hot path only adds numbers (once per batch, never per event).
 */
export class PipelineMetrics {
  readonly registry = new Registry();
  readonly receivedEvents: Counter<string>;
  readonly receivedBytes: Counter<string>;
  readonly sentEvents: Counter<string>;
  readonly sentBytes: Counter<string>;
  readonly errors: Counter<string>;
  readonly retries: Counter<string>;
  readonly deadLettered: Counter<string>;
  readonly discarded: Counter<string>;
  readonly bufferEvents: Gauge<string>;
  readonly bufferBytes: Gauge<string>;
  readonly bufferMaxEvents: Gauge<string>;
  readonly bufferDropped: Counter<string>;
  readonly pendingAcks: Gauge<string>;
  readonly latency: HistogramFamily;
  private readonly custom = new Map<string, Counter<string> | Gauge<string>>();
  private readonly counterChildren = new Map<
    Counter<string>,
    { labels: Record<string, string>; local: LocalCounter; reported: number }[]
  >();
  private readonly gaugeChildren = new Map<Gauge<string>, { labels: Record<string, string>; local: LocalGauge }[]>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const labelNames = ['component_id', 'component_kind', 'component_type'];
    this.receivedEvents = this.newCounter({
      name: 'fluxo_component_received_events_total',
      help: 'Events received by a component.',
      labelNames,
      registers,
    });
    this.receivedBytes = this.newCounter({
      name: 'fluxo_component_received_bytes_total',
      help: 'Bytes received by a component (wire bytes for sources, estimated for others).',
      labelNames,
      registers,
    });
    this.sentEvents = this.newCounter({
      name: 'fluxo_component_sent_events_total',
      help: 'Events sent on by a component (delivered, for sinks).',
      labelNames: [...labelNames, 'output'],
      registers,
    });
    this.sentBytes = this.newCounter({
      name: 'fluxo_component_sent_bytes_total',
      help: 'Bytes written by a sink to its destination.',
      labelNames,
      registers,
    });
    this.errors = this.newCounter({
      name: 'fluxo_component_errors_total',
      help: 'Errors by component and error type.',
      labelNames: [...labelNames, 'error_type'],
      registers,
    });
    this.retries = this.newCounter({
      name: 'fluxo_sink_retries_total',
      help: 'Sink writes retried after a transient error.',
      labelNames,
      registers,
    });
    this.deadLettered = this.newCounter({
      name: 'fluxo_dead_letter_events_total',
      help: 'Events sent to the dead letter output, by the component that rejected them.',
      labelNames,
      registers,
    });
    this.discarded = this.newCounter({
      name: 'fluxo_component_discarded_events_total',
      help: 'Events a component deliberately dropped (filter, sampling), by reason.',
      labelNames: [...labelNames, 'reason'],
      registers,
    });
    this.bufferEvents = this.newGauge({
      name: 'fluxo_buffer_events',
      help: "Events in a sink's buffer, including those being written.",
      labelNames,
      registers,
    });
    this.bufferBytes = this.newGauge({
      name: 'fluxo_buffer_bytes',
      help: "Bytes in a sink's buffer, including those being written.",
      labelNames,
      registers,
    });
    this.bufferMaxEvents = this.newGauge({
      name: 'fluxo_buffer_max_events',
      help: "The sink buffer's event limit.",
      labelNames,
      registers,
    });
    this.bufferDropped = this.newCounter({
      name: 'fluxo_buffer_dropped_events_total',
      help: 'Events dropped by a full buffer with when_full: drop_newest.',
      labelNames,
      registers,
    });
    this.pendingAcks = this.newGauge({
      name: 'fluxo_pending_acknowledgements',
      help: 'Batches emitted by a source and not yet settled by every sink.',
      labelNames,
      registers,
    });
    this.latency = new HistogramFamily(
      'fluxo_end_to_end_latency_seconds',
      'Time from receipt at the source to delivery by the sink.',
      // 75 ms splits the bucket under the 100 ms aim of issue 16 (receive → durable at the Q1 load).
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    );
    this.registry.registerMetric(this.latency as never);
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'fluxo_' });
  }

  private newCounter(config: {
    name: string;
    help: string;
    labelNames: string[];
    registers: Registry[];
  }): Counter<string> {
    const self = this;
    return new Counter({
      ...config,
      collect() {
        self.flushCounter(this as Counter<string>);
      },
    });
  }

  private newGauge(config: { name: string; help: string; labelNames: string[]; registers: Registry[] }): Gauge<string> {
    const self = this;
    return new Gauge({
      ...config,
      collect() {
        self.flushGauge(this as Gauge<string>);
      },
    });
  }

  /** A child of `counter` that the hot path increments as a plain number; folded into `counter` at scrape time. */
  localCounter(counter: Counter<string>, labels: Record<string, string>): LocalCounter {
    const local = new LocalCounter();
    let list = this.counterChildren.get(counter);
    if (!list) {
      list = [];
      this.counterChildren.set(counter, list);
    }
    list.push({ labels, local, reported: 0 });
    return local;
  }

  localGauge(gauge: Gauge<string>, labels: Record<string, string>): LocalGauge {
    const local = new LocalGauge();
    let list = this.gaugeChildren.get(gauge);
    if (!list) {
      list = [];
      this.gaugeChildren.set(gauge, list);
    }
    // A replaced component (reload) takes over its predecessor's series: the newest child sets the value.
    const i = list.findIndex((c) => sameLabels(c.labels, labels));
    if (i >= 0) list.splice(i, 1);
    list.push({ labels, local });
    return local;
  }

  private flushCounter(counter: Counter<string>): void {
    for (const child of this.counterChildren.get(counter) ?? []) {
      const delta = child.local.value - child.reported;
      if (delta > 0) {
        counter.inc(child.labels, delta);
        child.reported = child.local.value;
      }
    }
  }

  private flushGauge(gauge: Gauge<string>): void {
    for (const child of this.gaugeChildren.get(gauge) ?? []) gauge.set(child.labels, child.local.value);
  }

  forComponent(id: string, kind: ComponentKind, type: string): ComponentMetrics {
    return new ComponentMetrics(this, { component_id: id, component_kind: kind, component_type: type });
  }

  /** A component-specific counter, e.g. `fluxo_socket_lines_too_long_total`; created once per name. */
  counter(name: string, help: string, labelNames: string[]): Counter<string> {
    let metric = this.custom.get(name);
    if (!metric) {
      metric = this.newCounter({ name, help, labelNames, registers: [this.registry] });
      this.custom.set(name, metric);
    }
    return metric as Counter<string>;
  }

  gauge(name: string, help: string, labelNames: string[]): Gauge<string> {
    let metric = this.custom.get(name);
    if (!metric) {
      metric = this.newGauge({ name, help, labelNames, registers: [this.registry] });
      this.custom.set(name, metric);
    }
    return metric as Gauge<string>;
  }
}

type Labels = { component_id: string; component_kind: string; component_type: string };

/**
 * A counter child that only adds to a number: prom-client hashes and validates the labels on every inc(),
 * which showed up in the hot path's profile. The registry reads these at scrape time (see PipelineMetrics.local*).
 */
export class LocalCounter {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class LocalGauge {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

/**
 * A histogram child that only counts into its buckets: prom-client's Histogram.observe() hashes the labels and
 * searches the buckets through closures on every call, one call per acknowledged batch (~14 % of socket →
 * blackhole's CPU). The family renders all children at scrape time in prom-client's histogram format.
 */
export class LocalHistogram {
  /** Per-bucket (not cumulative) counts; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram metric made of LocalHistogram children, registered with the prom-client registry as is. */
export class HistogramFamily {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children: { labels: Record<string, string>; local: LocalHistogram }[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
  ) {}

  /** The child for `labels`; a replaced component (reload) keeps adding to the same series. */
  child(labels: Record<string, string>): LocalHistogram {
    const found = this.children.find((c) => sameLabels(c.labels, labels));
    if (found) return found.local;
    const local = new LocalHistogram(this.bounds);
    this.children.push({ labels, local });
    return local;
  }

  get(): { name: string; help: string; type: string; values: MetricValueWithName<string>[]; aggregator: string } {
    const values: MetricValueWithName<string>[] = [];
    for (const { labels, local } of this.children) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += local.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels, value: local.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: local.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const { local } of this.children) {
      local.counts.fill(0);
      local.sum = 0;
      local.count = 0;
    }
  }
}

/** The metrics of one component, bound to its labels. */
export class ComponentMetrics {
  readonly receivedEvents: LocalCounter;
  readonly receivedBytes: LocalCounter;
  readonly sentEvents: LocalCounter;
  readonly sentBytes: LocalCounter;
  readonly retries: LocalCounter;
  readonly deadLettered: LocalCounter;
  readonly bufferEvents: LocalGauge;
  readonly bufferBytes: LocalGauge;
  readonly bufferDropped: LocalCounter;
  readonly bufferMaxEvents: LocalGauge;
  readonly pendingAcks: LocalGauge;
  readonly latency: LocalHistogram;
  private readonly byOutput = new Map<string, LocalCounter>();
  private readonly byErrorType = new Map<string, LocalCounter>();
  private readonly byReason = new Map<string, LocalCounter>();
  private readonly own = new Map<string, LocalCounter | LocalGauge>();

  constructor(
    private readonly pipeline: PipelineMetrics,
    readonly labels: Labels,
  ) {
    this.receivedEvents = pipeline.localCounter(pipeline.receivedEvents, labels);
    this.receivedBytes = pipeline.localCounter(pipeline.receivedBytes, labels);
    this.sentEvents = pipeline.localCounter(pipeline.sentEvents, { ...labels, output: '' });
    this.sentBytes = pipeline.localCounter(pipeline.sentBytes, labels);
    this.retries = pipeline.localCounter(pipeline.retries, labels);
    this.deadLettered = pipeline.localCounter(pipeline.deadLettered, labels);
    this.bufferEvents = pipeline.localGauge(pipeline.bufferEvents, labels);
    this.bufferBytes = pipeline.localGauge(pipeline.bufferBytes, labels);
    this.bufferDropped = pipeline.localCounter(pipeline.bufferDropped, labels);
    this.bufferMaxEvents = pipeline.localGauge(pipeline.bufferMaxEvents, labels);
    this.pendingAcks = pipeline.localGauge(pipeline.pendingAcks, labels);
    this.latency = pipeline.latency.child(labels);
  }

  /** The prom-client registry, for a component that needs a metric type of its own (e.g. a histogram). */
  get registry(): Registry {
    return this.pipeline.registry;
  }

  sentEventsFor(output: string): LocalCounter {
    let c = this.byOutput.get(output);
    if (!c) {
      c = this.pipeline.localCounter(this.pipeline.sentEvents, { ...this.labels, output });
      this.byOutput.set(output, c);
    }
    return c;
  }

  error(errorType: string, count = 1): void {
    let c = this.byErrorType.get(errorType);
    if (!c) {
      c = this.pipeline.localCounter(this.pipeline.errors, { ...this.labels, error_type: errorType });
      this.byErrorType.set(errorType, c);
    }
    c.inc(count);
  }

  discarded(reason: string, count: number): void {
    let c = this.byReason.get(reason);
    if (!c) {
      c = this.pipeline.localCounter(this.pipeline.discarded, { ...this.labels, reason });
      this.byReason.set(reason, c);
    }
    c.inc(count);
  }

  /** A counter of this component's own, e.g. `counter('fluxo_socket_connections_rejected_total', …)`. */
  counter(name: string, help: string): LocalCounter {
    let c = this.own.get(name);
    if (!c) {
      c = this.pipeline.localCounter(this.pipeline.counter(name, help, Object.keys(this.labels)), this.labels);
      this.own.set(name, c);
    }
    return c as LocalCounter;
  }

  gauge(name: string, help: string): LocalGauge {
    let g = this.own.get(name);
    if (!g) {
      g = this.pipeline.localGauge(this.pipeline.gauge(name, help, Object.keys(this.labels)), this.labels);
      this.own.set(name, g);
    }
    return g as LocalGauge;
  }
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
