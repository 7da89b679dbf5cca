import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ComponentKind } from './component.ts';

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
  readonly latency: Histogram<string>;
  private readonly custom = new Map<string, Counter<string> | Gauge<string>>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const labelNames = ['component_id', 'component_kind', 'component_type'];
    this.receivedEvents = new Counter({
      name: 'fluxo_component_received_events_total',
      help: 'Events received by a component.',
      labelNames,
      registers,
    });
    this.receivedBytes = new Counter({
      name: 'fluxo_component_received_bytes_total',
      help: 'Bytes received by a component (wire bytes for sources, estimated for others).',
      labelNames,
      registers,
    });
    this.sentEvents = new Counter({
      name: 'fluxo_component_sent_events_total',
      help: 'Events sent on by a component (delivered, for sinks).',
      labelNames: [...labelNames, 'output'],
      registers,
    });
    this.sentBytes = new Counter({
      name: 'fluxo_component_sent_bytes_total',
      help: 'Bytes written by a sink to its destination.',
      labelNames,
      registers,
    });
    this.errors = new Counter({
      name: 'fluxo_component_errors_total',
      help: 'Errors by component and error type.',
      labelNames: [...labelNames, 'error_type'],
      registers,
    });
    this.retries = new Counter({
      name: 'fluxo_sink_retries_total',
      help: 'Sink writes retried after a transient error.',
      labelNames,
      registers,
    });
    this.deadLettered = new Counter({
      name: 'fluxo_dead_letter_events_total',
      help: 'Events sent to the dead letter output, by the component that rejected them.',
      labelNames,
      registers,
    });
    this.discarded = new Counter({
      name: 'fluxo_component_discarded_events_total',
      help: 'Events a component deliberately dropped (filter, sampling), by reason.',
      labelNames: [...labelNames, 'reason'],
      registers,
    });
    this.bufferEvents = new Gauge({
      name: 'fluxo_buffer_events',
      help: "Events in a sink's buffer, including those being written.",
      labelNames,
      registers,
    });
    this.bufferBytes = new Gauge({
      name: 'fluxo_buffer_bytes',
      help: "Bytes in a sink's buffer, including those being written.",
      labelNames,
      registers,
    });
    this.bufferMaxEvents = new Gauge({
      name: 'fluxo_buffer_max_events',
      help: "The sink buffer's event limit.",
      labelNames,
      registers,
    });
    this.bufferDropped = new Counter({
      name: 'fluxo_buffer_dropped_events_total',
      help: 'Events dropped by a full buffer with when_full: drop_newest.',
      labelNames,
      registers,
    });
    this.pendingAcks = new Gauge({
      name: 'fluxo_pending_acknowledgements',
      help: 'Batches emitted by a source and not yet settled by every sink.',
      labelNames,
      registers,
    });
    this.latency = new Histogram({
      name: 'fluxo_end_to_end_latency_seconds',
      help: 'Time from receipt at the source to delivery by the sink.',
      labelNames,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'fluxo_' });
  }

  forComponent(id: string, kind: ComponentKind, type: string): ComponentMetrics {
    return new ComponentMetrics(this, { component_id: id, component_kind: kind, component_type: type });
  }

  /** A component-specific counter, e.g. `fluxo_socket_lines_too_long_total`; created once per name. */
  counter(name: string, help: string, labelNames: string[]): Counter<string> {
    let metric = this.custom.get(name);
    if (!metric) {
      metric = new Counter({ name, help, labelNames, registers: [this.registry] });
      this.custom.set(name, metric);
    }
    return metric as Counter<string>;
  }

  gauge(name: string, help: string, labelNames: string[]): Gauge<string> {
    let metric = this.custom.get(name);
    if (!metric) {
      metric = new Gauge({ name, help, labelNames, registers: [this.registry] });
      this.custom.set(name, metric);
    }
    return metric as Gauge<string>;
  }
}

type Labels = { component_id: string; component_kind: string; component_type: string };

/** The metrics of one component, bound to its labels. */
export class ComponentMetrics {
  readonly receivedEvents;
  readonly receivedBytes;
  readonly sentEvents;
  readonly sentBytes;
  readonly retries;
  readonly deadLettered;
  readonly bufferEvents;
  readonly bufferBytes;
  readonly bufferDropped;
  readonly bufferMaxEvents;
  readonly pendingAcks;
  readonly latency;

  constructor(
    private readonly pipeline: PipelineMetrics,
    readonly labels: Labels,
  ) {
    this.receivedEvents = pipeline.receivedEvents.labels(labels);
    this.receivedBytes = pipeline.receivedBytes.labels(labels);
    this.sentEvents = pipeline.sentEvents.labels({ ...labels, output: '' });
    this.sentBytes = pipeline.sentBytes.labels(labels);
    this.retries = pipeline.retries.labels(labels);
    this.deadLettered = pipeline.deadLettered.labels(labels);
    this.bufferEvents = pipeline.bufferEvents.labels(labels);
    this.bufferBytes = pipeline.bufferBytes.labels(labels);
    this.bufferDropped = pipeline.bufferDropped.labels(labels);
    this.bufferMaxEvents = pipeline.bufferMaxEvents.labels(labels);
    this.pendingAcks = pipeline.pendingAcks.labels(labels);
    this.latency = pipeline.latency.labels(labels);
  }

  sentEventsFor(output: string) {
    return this.pipeline.sentEvents.labels({ ...this.labels, output });
  }

  error(errorType: string, count = 1): void {
    this.pipeline.errors.labels({ ...this.labels, error_type: errorType }).inc(count);
  }

  discarded(reason: string, count: number): void {
    this.pipeline.discarded.labels({ ...this.labels, reason }).inc(count);
  }

  /** A counter of this component's own, e.g. `counter('fluxo_socket_connections_rejected_total', …)`. */
  counter(name: string, help: string) {
    return this.pipeline.counter(name, help, Object.keys(this.labels)).labels(this.labels);
  }

  gauge(name: string, help: string) {
    return this.pipeline.gauge(name, help, Object.keys(this.labels)).labels(this.labels);
  }
}
