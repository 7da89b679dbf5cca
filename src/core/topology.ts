import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { Acknowledgement, type Batch } from './ack.ts';
import type {
  ComponentContext,
  ComponentKind,
  EmitOptions,
  Sink,
  Source,
  SourceContext,
  Transform,
} from './component.ts';
import { FluxoError } from './errors.ts';
import { type Event, estimateEventBytes } from './event.ts';
import type { ComponentMetrics, PipelineMetrics } from './metrics.ts';
import {
  type ComponentRegistry,
  type ComponentSpec,
  DEAD_LETTER_ID,
  type PipelineConfig,
  type SinkSpec,
  type TransformSpec,
} from './pipeline-config.ts';
import type { SinkBuffer } from './sink/buffer.ts';
import { errorMessage, SinkRunner } from './sink/runner.ts';
import { runTransform } from './transform-run.ts';

/** Anything a batch can be handed to: a transform or a sink's buffer. */
interface Consumer {
  accept(batch: Batch): Promise<void> | undefined;
}

const RESOLVED = Promise.resolve();

/**
 * The consumers of one output of a node. Sending takes over one acknowledgement share and gives one to each
 * consumer; the events array is shared, which is safe because events are never mutated after emission.
 */
class Outlet {
  consumers: Consumer[] = [];
  /** Observers of what passes (fluxo tap); empty in normal operation, so the hot path pays one length check. */
  taps: TapListener[] = [];

  constructor(private readonly metrics: ComponentMetrics | undefined) {}

  send(batch: Batch): Promise<void> | undefined {
    if (this.taps.length > 0) notifyTaps(this.taps, batch.events);
    const consumers = this.consumers;
    const n = consumers.length;
    if (n === 0) {
      // Validation rejects dangling outputs except route outputs nobody reads: those events are dropped on purpose.
      this.metrics?.discarded('no_consumer', batch.events.length);
      batch.ack.release('delivered');
      return undefined;
    }
    if (n > 1) batch.ack.retain(n - 1);
    let single: Promise<void> | undefined;
    let many: Promise<void>[] | undefined;
    for (let i = 0; i < n; i++) {
      const p = consumers[i]!.accept(batch);
      if (p === undefined) continue;
      if (single === undefined) single = p;
      else if (many === undefined) many = [single, p];
      else many.push(p);
    }
    if (many) return Promise.all(many).then(() => undefined);
    return single;
  }
}

class TransformNode implements Consumer {
  readonly outlets = new Map<string, Outlet>();

  constructor(
    readonly spec: TransformSpec,
    readonly transform: Transform,
    readonly metrics: ComponentMetrics,
    private readonly topology: Topology,
  ) {
    this.outlets.set(spec.id, new Outlet(metrics));
    for (const name of transform.outputs ?? []) this.outlets.set(`${spec.id}.${name}`, new Outlet(metrics));
  }

  accept(batch: Batch): Promise<void> | undefined {
    const { events, ack } = batch;
    this.metrics.receivedEvents.inc(events.length);
    this.metrics.receivedBytes.inc(batch.bytes);
    const { pushed, dead, threw } = runTransform(this.spec.id, this.transform, events);
    if (threw) this.metrics.error('transform_threw');
    let pending: Promise<void>[] | undefined;
    let kept = 0;
    const perEvent = events.length > 0 ? batch.bytes / events.length : 0;
    for (const p of pushed) {
      const outlet = this.outlets.get(p.output === undefined ? this.spec.id : `${this.spec.id}.${p.output}`);
      if (!outlet) {
        this.metrics.error('unknown_output');
        dead.push({ events: p.events, reason: `transform ${this.spec.id} pushed to unknown output ${p.output}` });
        continue;
      }
      kept += p.events.length;
      (p.output === undefined ? this.metrics.sentEvents : this.metrics.sentEventsFor(p.output)).inc(p.events.length);
      ack.retain();
      const r = outlet.send({ events: p.events, ack, bytes: Math.round(perEvent * p.events.length) });
      if (r) {
        if (pending === undefined) pending = [r];
        else pending.push(r);
      }
    }
    for (const d of dead) {
      ack.retain();
      this.topology.deadLetter(
        this.spec.id,
        this.metrics,
        d.events,
        d.reason,
        ack,
        Math.round(perEvent * d.events.length),
      );
    }
    if (pushed.length === 0 && dead.length === 0) this.metrics.discarded('filtered', events.length);
    else if (kept < events.length && pushed.length > 0 && dead.length === 0 && !this.transform.outputs) {
      this.metrics.discarded('filtered', events.length - kept);
    }
    ack.release('delivered');
    if (!pending) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }
}

class SinkNode implements Consumer {
  taps: TapListener[] = [];

  constructor(
    readonly spec: SinkSpec,
    readonly sink: Sink,
    readonly runner: SinkRunner,
    readonly buffer: SinkBuffer,
    readonly metrics: ComponentMetrics,
  ) {}

  accept(batch: Batch): Promise<void> | undefined {
    this.metrics.receivedEvents.inc(batch.events.length);
    this.metrics.receivedBytes.inc(batch.bytes);
    if (this.taps.length > 0) notifyTaps(this.taps, batch.events);
    return this.buffer.push(batch);
  }
}

class SourceNode {
  stopped = false;
  constructor(
    readonly spec: ComponentSpec,
    readonly source: Source,
    readonly outlet: Outlet,
    readonly metrics: ComponentMetrics,
  ) {}
}

export interface TopologyOptions {
  logger: Logger;
  metrics: PipelineMetrics;
  /** Builds the buffer of a sink; the default builds memory buffers only. */
  createBuffer?: (spec: SinkSpec, context: ComponentContext) => SinkBuffer;
}

/** Sees the events a component emits (sources, transforms: every output) or receives (sinks). Must not mutate them. */
export type TapListener = (events: readonly Event[], output: string) => void;

function notifyTaps(taps: TapListener[], events: Event[], output = ''): void {
  for (const tap of taps) {
    try {
      tap(events, output);
    } catch {
      // A tap is a debugging aid: its failure must never disturb the pipeline.
    }
  }
}

export interface ComponentEndpoint {
  id: string;
  type: string;
  endpoint: string | undefined;
}

export type TopologyState = 'starting' | 'running' | 'draining' | 'stopped';

/**
 * The running graph. The only place that wires components together: it builds them from a validated config,
 * routes batches, owns the dead letter output, and changes the graph in place on reload.
 */
export class Topology {
  state: TopologyState = 'starting';
  private config: PipelineConfig;
  private readonly sources = new Map<string, SourceNode>();
  private readonly transforms = new Map<string, TransformNode>();
  private readonly sinks = new Map<string, SinkNode>();
  private readonly deadLetterOutlet: Outlet;
  private readonly logger: Logger;
  private readonly metrics: PipelineMetrics;

  constructor(
    config: PipelineConfig,
    private readonly registry: ComponentRegistry,
    private readonly options: TopologyOptions,
  ) {
    this.config = config;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.deadLetterOutlet = new Outlet(undefined);
  }

  get current(): PipelineConfig {
    return this.config;
  }

  /** Builds every component, then starts sinks before sources so no early batch waits on a sink not yet open. */
  async start(): Promise<void> {
    mkdirSync(this.config.dataDir, { recursive: true });
    const built = this.buildAll(this.config, () => true);
    this.install(built);
    this.rewire();
    await this.startSinks(built.sinks);
    await this.startSources(built.sources);
    this.state = 'running';
    await this.warnAboutOrphanBuffers();
  }

  /**
   * A disk buffer whose sink is no longer configured (renamed or removed) keeps its undelivered events on
   * disk, untouched: says so at start and after a reload that removed sinks, with what it holds and how to
   * get it delivered.
   */
  private async warnAboutOrphanBuffers(): Promise<void> {
    for (const def of this.registry.buffers.values()) {
      if (!def.reportOrphans) continue;
      const configured = new Set<string>();
      for (const spec of this.config.sinks.values()) if (spec.buffer.type === def.type) configured.add(spec.id);
      await def.reportOrphans(this.config.dataDir, configured, this.logger);
    }
  }

  /**
   * Graceful stop: sources stop accepting and hand over what they hold, sinks drain within the shutdown
   * timeout and close. What did not reach a sink by then is released as failed, so no source acknowledges it.
   */
  async stop(timeoutMs = this.config.shutdownTimeoutMs): Promise<boolean> {
    if (this.state === 'stopped' || this.state === 'draining') return true;
    this.state = 'draining';
    const deadline = Date.now() + timeoutMs;
    await this.stopSources([...this.sources.values()], deadline);
    const results = await Promise.all([...this.sinks.values()].map((n) => this.stopSink(n, deadline)));
    for (const t of this.transforms.values()) await t.transform.stop?.();
    this.state = 'stopped';
    return results.every(Boolean);
  }

  /**
   * Applies a new config in place: unchanged components keep running untouched; changed or removed sources
   * stop first (handing over what they hold), changed sinks finish their buffers in the background after the
   * graph points at their replacements, and added components start. If a new component cannot be built the
   * reload is abandoned before anything was stopped.
   */
  async reload(next: PipelineConfig): Promise<{ added: string[]; changed: string[]; removed: string[] }> {
    const prev = this.config;
    const changed = (a: ComponentSpec | undefined, b: ComponentSpec | undefined) =>
      a !== undefined && b !== undefined && a.fingerprint !== b.fingerprint;
    const summary = { added: [] as string[], changed: [] as string[], removed: [] as string[] };
    for (const kind of ['sources', 'transforms', 'sinks'] as const) {
      for (const [id, spec] of next[kind]) {
        const old = prev[kind].get(id);
        if (!old) summary.added.push(id);
        else if (changed(old, spec)) summary.changed.push(id);
      }
      for (const id of prev[kind].keys()) if (!next[kind].has(id)) summary.removed.push(id);
    }
    const touched = new Set([...summary.added, ...summary.changed]);
    const built = this.buildAll(next, (id) => touched.has(id));

    const outgoing = new Set([...summary.changed, ...summary.removed]);
    const oldSources = [...this.sources.values()].filter((n) => outgoing.has(n.spec.id));
    const oldSinks = [...this.sinks.values()].filter((n) => outgoing.has(n.spec.id));
    await this.stopSources(oldSources, Date.now() + next.shutdownTimeoutMs);
    for (const n of oldSources) this.sources.delete(n.spec.id);
    for (const n of oldSinks) this.sinks.delete(n.spec.id);
    for (const id of outgoing) this.transforms.delete(id);

    await this.startSinks(built.sinks);
    this.config = next;
    this.install(built);
    this.rewire();
    // Old sinks are out of the graph now; they finish what they hold while the new ones take new batches.
    await Promise.all(oldSinks.map((n) => this.stopSink(n, Date.now() + next.shutdownTimeoutMs)));
    await this.startSources(built.sources);
    // A removed disk-buffered sink that could not deliver everything in time leaves it on disk: say so now.
    if (summary.removed.length > 0) await this.warnAboutOrphanBuffers();
    return summary;
  }

  /** Routes events to the dead letter output; `ack` carries one share the caller retained for it. */
  deadLetter(
    from: string,
    metrics: ComponentMetrics,
    events: Event[],
    reason: string,
    ack: Acknowledgement,
    bytes: number,
  ): void {
    metrics.deadLettered.inc(events.length);
    const at = new Date().toISOString();
    const fresh: Event[] = [];
    for (const e of events) {
      if (e._dead_letter !== undefined) {
        // Rejected again by a dead letter consumer: stop here instead of looping, but say so loudly.
        this.logger.error(
          { component: from, reason, event: truncate(e) },
          'dead-lettered event rejected again by a dead letter consumer',
        );
        continue;
      }
      fresh.push({ ...e, _dead_letter: { reason, component_id: from, at } });
    }
    if (this.deadLetterOutlet.consumers.length === 0 || fresh.length === 0) {
      for (const e of fresh) {
        this.logger.error(
          { component: from, reason, event: truncate(e) },
          'event dead-lettered (no component reads dead_letter)',
        );
      }
      ack.release('delivered');
      return;
    }
    const p = this.deadLetterOutlet.send({ events: fresh, ack, bytes });
    // Dead letter is off the hot path; its backpressure is not propagated to avoid a sink waiting on itself.
    p?.catch(() => {});
  }

  /** What runs and where: component ids, types, and where sources listen and sinks write. */
  describe(): { sources: ComponentEndpoint[]; transforms: ComponentEndpoint[]; sinks: ComponentEndpoint[] } {
    const sinkEndpoint = (n: SinkNode) =>
      this.registry.sinks.get(n.spec.type)?.describeEndpoint?.(n.spec.options as never);
    return {
      sources: [...this.sources.values()].map((n) => ({
        id: n.spec.id,
        type: n.spec.type,
        endpoint: n.source.endpoint?.(),
      })),
      transforms: [...this.transforms.values()].map((n) => ({ id: n.spec.id, type: n.spec.type, endpoint: undefined })),
      sinks: [...this.sinks.values()].map((n) => ({ id: n.spec.id, type: n.spec.type, endpoint: sinkEndpoint(n) })),
    };
  }

  /**
   * Observes the events of a component without changing the pipeline: what a source or transform emits (all
   * outputs), or what a sink receives. Returns the function that removes the tap, or undefined for an
   * unknown id. A reload that replaces the component ends the tap (the caller sees no more events).
   */
  tap(id: string, listener: TapListener): (() => void) | undefined {
    const attached: { list: TapListener[]; tap: TapListener }[] = [];
    const source = this.sources.get(id);
    if (source) attached.push({ list: source.outlet.taps, tap: listener });
    const transform = this.transforms.get(id);
    if (transform) {
      for (const [name, outlet] of transform.outlets) {
        const output = name === id ? '' : name.slice(id.length + 1);
        attached.push({ list: outlet.taps, tap: (events) => listener(events, output) });
      }
    }
    const sink = this.sinks.get(id);
    if (sink) attached.push({ list: sink.taps, tap: listener });
    if (attached.length === 0) return undefined;
    for (const a of attached) a.list.push(a.tap);
    return () => {
      for (const a of attached) {
        const i = a.list.indexOf(a.tap);
        if (i >= 0) a.list.splice(i, 1);
      }
    };
  }

  /**
   * Resolves when every source has finished by itself (stdin at EOF, a generator's count reached);
   * undefined when some source runs until stopped.
   */
  sourcesFinished(): Promise<void> | undefined {
    const finished = [...this.sources.values()].map((n) => n.source.finished);
    if (finished.length === 0 || finished.some((f) => f === undefined)) return undefined;
    return Promise.all(finished).then(() => undefined);
  }

  metricsText(): Promise<string> {
    return this.metrics.registry.metrics();
  }

  /** Sinks whose buffer or writes are not yet empty: used by tests and the shutdown log. */
  busySinks(): string[] {
    return [...this.sinks.values()].filter((n) => n.runner.busy).map((n) => n.spec.id);
  }

  private context(id: string, kind: ComponentKind, type: string): ComponentContext {
    return {
      id,
      dataDir: this.config.dataDir,
      logger: this.logger.child({ component: id, component_type: type }),
      metrics: this.metrics.forComponent(id, kind, type),
    };
  }

  private buildAll(config: PipelineConfig, include: (id: string) => boolean) {
    const sources: SourceNode[] = [];
    const transforms: TransformNode[] = [];
    const sinks: SinkNode[] = [];
    const saved = this.config;
    this.config = config; // contexts read data_dir from the config being built
    try {
      for (const spec of config.sinks.values()) {
        if (!include(spec.id)) continue;
        const def = this.registry.sinks.get(spec.type)!;
        const ctx = this.context(spec.id, 'sink', spec.type);
        const sink = def.build(spec.options as never, ctx);
        const buffer = this.options.createBuffer?.(spec, ctx) ?? this.createBuffer(spec, ctx);
        const runner = new SinkRunner(
          spec.id,
          sink,
          buffer,
          {
            batchMaxEvents: spec.batchMaxEvents,
            batchTimeoutMs: spec.batchTimeoutMs,
            concurrency: spec.concurrency,
            retry: spec.retry,
          },
          ctx.metrics,
          ctx.logger,
          (events, reason, ack, bytes) => this.deadLetter(spec.id, ctx.metrics, events, reason, ack, bytes),
        );
        sinks.push(new SinkNode(spec, sink, runner, buffer, ctx.metrics));
      }
      for (const spec of config.transforms.values()) {
        if (!include(spec.id)) continue;
        const def = this.registry.transforms.get(spec.type)!;
        const ctx = this.context(spec.id, 'transform', spec.type);
        transforms.push(new TransformNode(spec, def.build(spec.options as never, ctx), ctx.metrics, this));
      }
      for (const spec of config.sources.values()) {
        if (!include(spec.id)) continue;
        const def = this.registry.sources.get(spec.type)!;
        const base = this.context(spec.id, 'source', spec.type);
        const outlet = new Outlet(base.metrics);
        const holder: { node?: SourceNode } = {};
        const ctx: SourceContext = {
          ...base,
          emit: (events, options) => this.emit(holder.node!, events, options),
          deadLetter: (events, reason) => {
            const ack = new Acknowledgement(undefined);
            this.deadLetter(spec.id, base.metrics, events, reason, ack, 0);
          },
        };
        const node = new SourceNode(spec, def.build(spec.options as never, ctx), outlet, base.metrics);
        holder.node = node;
        sources.push(node);
      }
    } finally {
      this.config = saved;
    }
    return { sources, transforms, sinks };
  }

  private createBuffer(spec: SinkSpec, context: ComponentContext): SinkBuffer {
    const def = this.registry.buffers.get(spec.buffer.type);
    if (!def) {
      throw new FluxoError(
        'FLUXO_BUFFER_UNKNOWN',
        `sink ${spec.id}: no buffer of type ${spec.buffer.type} is registered`,
      );
    }
    return def.create(spec.buffer as never, { ...context, registry: this.metrics.registry });
  }

  private install(built: ReturnType<Topology['buildAll']>): void {
    for (const n of built.sinks) this.sinks.set(n.spec.id, n);
    for (const n of built.transforms) this.transforms.set(n.spec.id, n);
    for (const n of built.sources) this.sources.set(n.spec.id, n);
  }

  /** Points every outlet at the consumers that name it in `inputs`, per the current config. */
  private rewire(): void {
    const outlets = new Map<string, Outlet>();
    outlets.set(DEAD_LETTER_ID, this.deadLetterOutlet);
    for (const n of this.sources.values()) outlets.set(n.spec.id, n.outlet);
    for (const n of this.transforms.values()) for (const [name, o] of n.outlets) outlets.set(name, o);
    const wiring = new Map<Outlet, Consumer[]>();
    for (const o of outlets.values()) wiring.set(o, []);
    const consumers: [readonly string[], Consumer][] = [
      ...[...this.transforms.values()].map((n) => [n.spec.inputs, n] as [readonly string[], Consumer]),
      ...[...this.sinks.values()].map((n) => [n.spec.inputs, n] as [readonly string[], Consumer]),
    ];
    for (const [inputs, consumer] of consumers) {
      for (const input of inputs) {
        const outlet = outlets.get(input);
        if (!outlet) throw new Error(`internal: input ${input} has no outlet (validation should have caught it)`);
        wiring.get(outlet)!.push(consumer);
      }
    }
    // Swap whole arrays so a send() in progress keeps iterating the list it started with.
    for (const [outlet, list] of wiring) outlet.consumers = list;
  }

  private emit(node: SourceNode, events: Event[], options: EmitOptions | undefined): Promise<void> {
    if (node.stopped && this.state === 'stopped') return Promise.reject(new Error('pipeline stopped'));
    if (events.length === 0) return RESOLVED;
    let bytes = options?.bytes;
    if (bytes === undefined) {
      bytes = 0;
      for (const e of events) bytes += estimateEventBytes(e);
    }
    const metrics = node.metrics;
    metrics.receivedEvents.inc(events.length);
    metrics.receivedBytes.inc(bytes);
    metrics.sentEvents.inc(events.length);
    metrics.pendingAcks.inc();
    const onSettled = options?.onSettled;
    const ack = new Acknowledgement((status) => {
      metrics.pendingAcks.dec();
      onSettled?.(status);
    }, options?.receivedAt);
    return node.outlet.send({ events, ack, bytes }) ?? RESOLVED;
  }

  private async startSinks(nodes: SinkNode[]): Promise<void> {
    for (const n of nodes) {
      // Locks the directory and checks the log; replay starts with the runner.
      await n.buffer.open?.();
      await n.sink.start?.();
      n.runner.start();
    }
  }

  private async startSources(nodes: SourceNode[]): Promise<void> {
    for (const n of nodes) await n.source.start();
  }

  private async stopSources(nodes: SourceNode[], deadline: number): Promise<void> {
    await Promise.all(
      nodes.map(async (n) => {
        n.stopped = true;
        const stopped = n.source.stop().catch((error) => {
          this.logger.error({ component: n.spec.id, err: errorMessage(error) }, 'source failed to stop cleanly');
        });
        // A source blocked on backpressure cannot finish before the sinks drain; do not wait past the deadline.
        await Promise.race([stopped, delay(Math.max(0, deadline - Date.now()))]);
      }),
    );
  }

  private async stopSink(node: SinkNode, deadline: number): Promise<boolean> {
    const drained = await node.runner.drain(deadline);
    try {
      await node.sink.stop();
    } catch (error) {
      this.logger.error({ component: node.spec.id, err: errorMessage(error) }, 'sink failed to close cleanly');
      return false;
    }
    return drained;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function truncate(event: Event): Event {
  const m = event.message;
  if (typeof m === 'string' && m.length > 1024) return { ...event, message: `${m.slice(0, 1024)}…` };
  return event;
}
