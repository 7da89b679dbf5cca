import type { Logger } from 'pino';
import type { z } from 'zod';
import type { AckCallback } from './ack.ts';
import type { Event } from './event.ts';
import type { ComponentMetrics } from './metrics.ts';
import type { Compression } from './sink/compression.ts';
import type { Encoding } from './sink/encoding.ts';
import type { SendResult, SinkRequest } from './sink/request.ts';

/** What every running component gets from the runtime. */
export interface ComponentContext {
  /** The component id from the config, e.g. `web_syslog`. */
  readonly id: string;
  /** Absolute `data_dir`; a component keeps its state under `<data_dir>/<kind>s/<id>/` or similar. */
  readonly dataDir: string;
  readonly logger: Logger;
  readonly metrics: ComponentMetrics;
}

export interface EmitOptions {
  /** Bytes as received on the wire or read from disk; estimated from `message` when absent. */
  bytes?: number;
  /** Called once when every sink settled the batch (see Acknowledgement). */
  onSettled?: AckCallback;
  /** When the events were received, for end-to-end latency; defaults to now. */
  receivedAt?: number;
}

export interface SourceContext extends ComponentContext {
  /**
   * Hands a batch to the graph. The promise resolves once every consumer accepted it: awaiting it before
   * reading more input is how a source obeys backpressure. It rejects only when the pipeline is stopping.
   * The events array is owned by the pipeline from here on.
   */
  emit(events: Event[], options?: EmitOptions): Promise<void>;
  /** Sends events that cannot be processed (e.g. an overlong line) to the dead letter output. */
  deadLetter(events: Event[], reason: string): void;
}

export interface Source {
  /** Binds sockets, opens files; resolves when the source is accepting input. */
  start(): Promise<void>;
  /**
   * Stops accepting input, emits what it already holds (partial lines are not events yet and are dropped
   * only when the protocol allows it), and resolves when the last emit() was accepted.
   */
  stop(): Promise<void>;
  /**
   * Where the source actually listens once started, e.g. `tcp 127.0.0.1:40123` (port 0 resolved): printed in
   * the start-up banner and read by tests.
   */
  endpoint?(): string | undefined;
  /**
   * For sources that end by themselves (stdin at EOF, a generator with a `count`): resolves when the last
   * batch was emitted. `fluxo run` stops the pipeline gracefully once every source has finished.
   */
  readonly finished?: Promise<void>;
}

/** Where a transform puts what it made of a batch. */
export interface TransformOutput {
  /** Events for the default output, or for the named output `output` (route). */
  push(events: Event[], output?: string): void;
  /** Events that cannot be transformed, with the reason, to the dead letter output. */
  deadLetter(events: Event[], reason: string): void;
}

export interface Transform {
  /** Named outputs, addressed downstream as `<id>.<name>`; absent means one default output `<id>`. */
  readonly outputs?: readonly string[];
  /**
   * Synchronous by contract: transforms run inline in the caller's turn, so nothing on the hot path awaits.
   * Input events must not be mutated; build new objects for changed events.
   */
  process(events: Event[], out: TransformOutput): void;
  stop?(): Promise<void>;
}

/**
 * A running sink: destination logic only. Everything else a sink needs comes from the kit in src/core/sink/:
 * batching by events, bytes and time, encoding and compression done once per write, per-attempt timeouts,
 * retries with backoff, partial retries, dead letters, concurrency and acknowledgement release.
 */
export interface Sink {
  /** How the kit encodes each write before send() (request.payload(), request.lines()); absent: the sink encodes. */
  readonly encoding?: Encoding;
  /** How the kit compresses request.payload(); `none` when absent. */
  readonly compression?: Compression;
  /** Local preparation that must succeed for the pipeline to start (recover files of a crash). */
  start?(): Promise<void>;
  /**
   * Reaches the destination (a connection, a client, a session). Retried with backoff until it succeeds: a
   * destination down at start is neither a crash nor a busy loop. Writes wait for it.
   */
  connect?(signal: AbortSignal): Promise<void>;
  /** Asks the destination once after connect whether it is usable; a failure is logged and counted, not fatal. */
  healthcheck?(signal: AbortSignal): Promise<void>;
  /**
   * Delivers a request. Resolves only once the destination confirmed its events (or they are durable): with
   * nothing when all were delivered, or a SendResult when the destination answered per event. Throws
   * RetryableError (or any error) to retry the whole request after a backoff, PermanentError to dead-letter
   * it (or its `events`). Must stop promptly when `signal` aborts (shutdown, the per-attempt timeout).
   */
  send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined>;
  /** Flushes and closes; after it resolves everything delivered is complete and visible. */
  stop(): Promise<void>;
}

export type ComponentKind = 'source' | 'transform' | 'sink';

interface DefinitionBase<K extends ComponentKind, S extends z.ZodObject> {
  readonly kind: K;
  readonly type: string;
  /** One line for `fluxo --help` and docs/components.md. */
  readonly description: string;
  /** The component's own options (without `type`, `inputs`, `buffer`, …), each field with `.describe()`. */
  readonly options: S;
  /** A config snippet shown in the generated docs. */
  readonly example?: string;
}

export interface SourceDefinition<S extends z.ZodObject = z.ZodObject> extends DefinitionBase<'source', S> {
  build(options: z.infer<S>, context: SourceContext): Source;
}

export interface TransformDefinition<S extends z.ZodObject = z.ZodObject> extends DefinitionBase<'transform', S> {
  /** Names of the outputs this config gives the transform (route); downstream names them `<id>.<name>`. */
  outputs?(options: z.infer<S>): string[];
  build(options: z.infer<S>, context: ComponentContext): Transform;
}

export interface SinkDefinition<S extends z.ZodObject = z.ZodObject> extends DefinitionBase<'sink', S> {
  /** Where the sink writes, for the start-up banner, e.g. `./data/master/dt=%Y-%m-%d/…`. */
  describeEndpoint?(options: z.infer<S>): string | undefined;
  /**
   * `batch.timeout` when the configuration leaves it out: how long a write waits for more events. Sinks that
   * pay a fixed price per write (an fsync, a request) linger a little so that many small batches share it.
   */
  defaultBatchTimeoutMs?: number;
  build(options: z.infer<S>, context: ComponentContext): Sink;
}

export type ComponentDefinition = SourceDefinition | TransformDefinition | SinkDefinition;

/** Helpers so a component file gets its option types inferred from its schema. */
export function defineSource<S extends z.ZodObject>(d: SourceDefinition<S>): SourceDefinition<S> {
  return d;
}
export function defineTransform<S extends z.ZodObject>(d: TransformDefinition<S>): TransformDefinition<S> {
  return d;
}
export function defineSink<S extends z.ZodObject>(d: SinkDefinition<S>): SinkDefinition<S> {
  return d;
}
