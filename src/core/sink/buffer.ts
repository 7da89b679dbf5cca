import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Batch } from '../ack.ts';
import type { ComponentContext } from '../component.ts';
import { FluxoError } from '../errors.ts';
import type { BufferSpec } from '../pipeline-config.ts';

/**
 * The queue in front of one sink. A buffer takes over the acknowledgement share of each batch it accepts:
 * a memory buffer hands the share on to the sink runner, which releases it on delivery; a disk buffer
 * releases it once the batch is fsynced and hands out batches whose shares advance its own ledger.
 */
export interface SinkBuffer {
  /** Prepares the buffer before its sink starts (a disk buffer locks its directory and checks its log). */
  open?(): Promise<void>;
  /**
   * Accepts a batch. Returns undefined when it was taken at once, or a promise that resolves when there
   * was room (when_full: block). Rejects with BufferClosedError if the buffer closes while waiting.
   */
  push(batch: Batch): Promise<void> | undefined;
  /** Waits for at least one batch and returns batches holding up to `maxEvents` events; null once closed and empty. */
  take(maxEvents: number): Promise<Batch[] | null>;
  /** Returns the batches ready now, holding up to `maxEvents` events (never more); [] when none fits. */
  poll(maxEvents: number): Batch[];
  /**
   * Calls `ready` once, as soon as at least `minEvents` events wait to be taken (or the buffer closes, or the
   * sink is behind a backlog on disk). Returns a function that cancels the call.
   */
  whenReady(minEvents: number, ready: () => void): () => void;
  /** The runner finished with batches from take() (delivered or dead-lettered): their room is free again. */
  done(batches: Batch[]): void;
  /** No more pushes: waiting pushes are rejected, take() returns null once the queue is empty. */
  close(): void;
  /** Releases the shares of everything still queued as `failed` and wakes take() with null. */
  abort(): void;
  readonly events: number;
  readonly bytes: number;
}

export class BufferClosedError extends FluxoError {
  constructor() {
    super('FLUXO_BUFFER_CLOSED', 'the buffer was closed: the pipeline is stopping');
  }
}

/** What a buffer gets to build itself: the sink's context and the pipeline's metrics registry. */
export interface BufferContext extends ComponentContext {
  /** The pipeline's Prometheus registry, for metrics a buffer keeps beyond the component's (a histogram). */
  readonly registry: Registry;
}

/**
 * A kind of buffer (`buffer: { type }` in a sink's config). The core knows buffers only through this: the
 * implementations live in src/buffers/ and are registered beside the components (src/registry.ts).
 */
export interface BufferDefinition<T extends BufferSpec['type'] = BufferSpec['type']> {
  readonly kind: 'buffer';
  readonly type: T;
  create(spec: Extract<BufferSpec, { type: T }>, context: BufferContext): SinkBuffer;
  /**
   * Says what this kind of buffer left under `dataDir` for sinks that no longer use it (renamed or removed
   * sinks), at start and after a reload that removed sinks. `configured` holds the ids of the sinks that use
   * this kind of buffer now.
   */
  reportOrphans?(dataDir: string, configured: ReadonlySet<string>, logger: Logger): Promise<void>;
}

/** A buffer definition of any kind, as the registry holds them. */
export type AnyBufferDefinition = { [T in BufferSpec['type']]: BufferDefinition<T> }[BufferSpec['type']];

export function defineBuffer<T extends BufferSpec['type']>(d: BufferDefinition<T>): BufferDefinition<T> {
  return d;
}
