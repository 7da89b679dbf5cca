import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { Acknowledgement } from '../ack.ts';
import type { EmitOptions } from '../component.ts';
import { FluxoError } from '../errors.ts';
import { type Event, estimateEventBytes } from '../event.ts';
import type { PipelineMetrics } from '../metrics.ts';
import { type ComponentRegistry, type ComponentSpec, DEAD_LETTER_ID, type PipelineConfig } from '../pipeline-config.ts';
import { settledWithin } from '../retry.ts';
import { errorMessage } from '../sink/runner.ts';
import { type BuildEnvironment, type BuiltNodes, buildNodes } from './build.ts';
import { DeadLetterOutput } from './dead-letter.ts';
import type { SinkNode, SourceNode, TransformNode } from './nodes.ts';
import type { Consumer, Outlet, TapListener } from './outlet.ts';

export interface TopologyOptions {
  logger: Logger;
  metrics: PipelineMetrics;
}

export interface ComponentEndpoint {
  id: string;
  type: string;
  endpoint: string | undefined;
}

export type TopologyState = 'starting' | 'running' | 'draining' | 'stopped';

const RESOLVED = Promise.resolve();

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
  private readonly deadLetter: DeadLetterOutput;
  private readonly logger: Logger;
  private readonly metrics: PipelineMetrics;
  private readonly environment: BuildEnvironment;

  constructor(
    config: PipelineConfig,
    private readonly registry: ComponentRegistry,
    options: TopologyOptions,
  ) {
    this.config = config;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.deadLetter = new DeadLetterOutput(options.logger);
    this.environment = {
      registry,
      logger: options.logger,
      metrics: options.metrics,
      deadLetter: this.deadLetter,
      emit: (node, events, emitOptions) => this.emit(node, events, emitOptions),
    };
  }

  get current(): PipelineConfig {
    return this.config;
  }

  /** Builds every component, then starts sinks before sources so no early batch waits on a sink not yet open. */
  async start(): Promise<void> {
    mkdirSync(this.config.dataDir, { recursive: true });
    const built = buildNodes(this.config, () => true, this.environment);
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
    const built = buildNodes(next, (id) => touched.has(id), this.environment);

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

  /** Per source, when the oldest batch not yet settled by every sink was received (epoch ms); absent: none. */
  oldestUnsettled(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, n] of this.sources) {
      let oldest = Number.POSITIVE_INFINITY;
      for (const a of n.unsettled) if (a.receivedAt < oldest) oldest = a.receivedAt;
      if (oldest !== Number.POSITIVE_INFINITY) out.set(id, oldest);
    }
    return out;
  }

  metricsText(): Promise<string> {
    return this.metrics.registry.metrics();
  }

  /** Sinks whose buffer or writes are not yet empty: used by tests and the shutdown log. */
  busySinks(): string[] {
    return [...this.sinks.values()].filter((n) => n.runner.busy).map((n) => n.spec.id);
  }

  private install(built: BuiltNodes): void {
    for (const n of built.sinks) this.sinks.set(n.spec.id, n);
    for (const n of built.transforms) this.transforms.set(n.spec.id, n);
    for (const n of built.sources) this.sources.set(n.spec.id, n);
  }

  /** Points every outlet at the consumers that name it in `inputs`, per the current config. */
  private rewire(): void {
    const outlets = new Map<string, Outlet>();
    outlets.set(DEAD_LETTER_ID, this.deadLetter.outlet);
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
    if (node.stopped && this.state === 'stopped')
      return Promise.reject(new FluxoError('FLUXO_PIPELINE_STOPPED', 'pipeline stopped'));
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
    const count = events.length;
    const ack: Acknowledgement = new Acknowledgement((status) => {
      metrics.pendingAcks.dec();
      node.unsettled.delete(ack);
      (status === 'delivered' ? node.acknowledgedEvents : node.failedEvents).inc(count);
      onSettled?.(status);
    }, options?.receivedAt);
    node.unsettled.add(ack);
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
        await settledWithin(stopped, Math.max(0, deadline - Date.now()));
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
