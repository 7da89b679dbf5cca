import type { Logger } from 'pino';
import { Acknowledgement, type AckStatus, type Batch } from '../ack.ts';
import type { Sink } from '../component.ts';
import { PermanentError, RetryableError } from '../errors.ts';
import type { Event } from '../event.ts';
import type { ComponentMetrics } from '../metrics.ts';
import { backoffDelay, type RetryPolicy, sleep } from '../retry.ts';
import type { SinkBuffer } from './buffer.ts';

export interface SinkRunnerOptions {
  /** Most events handed to one write(); several queued batches are merged up to it (group commit). */
  batchMaxEvents: number;
  /** A write with fewer than batchMaxEvents waits until its oldest event is this old for more to join it. */
  batchTimeoutMs: number;
  concurrency: number;
  retry: RetryPolicy;
}

export type DeadLetterFn = (events: Event[], reason: string, ack: Acknowledgement, bytes: number) => void;

/**
 * Moves batches from a sink's buffer into the sink: merges queued batches into one write, retries
 * transient errors with backoff forever (or up to max_attempts), dead-letters permanent rejections, and
 * releases each batch's acknowledgement share only once the sink has confirmed the write.
 */
export class SinkRunner {
  private readonly abortController = new AbortController();
  private loops: Promise<void>[] = [];
  private writing = 0;

  constructor(
    private readonly id: string,
    private readonly sink: Sink,
    readonly buffer: SinkBuffer,
    private readonly options: SinkRunnerOptions,
    private readonly metrics: ComponentMetrics,
    private readonly logger: Logger,
    private readonly deadLetter: DeadLetterFn,
  ) {}

  start(): void {
    for (let i = 0; i < Math.max(1, this.options.concurrency); i++) this.loops.push(this.loop());
  }

  /** True while a write is in flight or batches wait in the buffer. */
  get busy(): boolean {
    return this.writing > 0 || this.buffer.events > 0;
  }

  /**
   * Closes the buffer and waits until everything in it is written, or until `deadline` (epoch ms): then
   * in-flight writes are aborted and what was not delivered is released as failed, never acknowledged.
   * Returns true when everything was delivered.
   */
  async drain(deadline: number): Promise<boolean> {
    this.buffer.close();
    const all = Promise.all(this.loops);
    const remaining = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), Math.max(0, remaining));
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return true;
    const left = this.buffer.events;
    this.logger.warn(
      { sink: this.id, undelivered_events: left },
      'shutdown timeout: sink did not drain, its events stay unacknowledged',
    );
    this.abortController.abort(new Error('shutdown timeout'));
    this.buffer.abort();
    await all;
    return false;
  }

  private async loop(): Promise<void> {
    const signal = this.abortController.signal;
    for (;;) {
      const batches = await this.buffer.take(this.options.batchMaxEvents);
      if (batches === null) return;
      this.writing++;
      if (this.options.batchTimeoutMs > 0) await this.linger(batches, signal);
      try {
        const status = await this.deliver(batches, signal);
        for (const b of batches) b.ack.release(status);
      } finally {
        this.writing--;
        this.buffer.done(batches);
      }
    }
  }

  /**
   * Holds a short write back until its oldest event is batch.timeout old, then adds what arrived meanwhile
   * (up to batchMaxEvents). It goes earlier once a full write is ready. Only a write that emptied the buffer
   * waits: under load writes are full anyway, and a write that waited behind a slow one is old enough to go.
   */
  private async linger(batches: Batch[], signal: AbortSignal): Promise<void> {
    const max = this.options.batchMaxEvents;
    let count = 0;
    for (const b of batches) count += b.events.length;
    if (count >= max) return;
    let oldest = batches[0]!.ack.receivedAt;
    for (const b of batches) if (b.ack.receivedAt < oldest) oldest = b.ack.receivedAt;
    const wait = oldest + this.options.batchTimeoutMs - Date.now();
    if (wait > 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        let stopWatching: (() => void) | undefined;
        const done = () => {
          clearTimeout(timer);
          stopWatching?.();
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, wait);
        signal.addEventListener('abort', done);
        // May call done() at once; a second done() is harmless.
        stopWatching = this.buffer.whenReady(max - count, done);
      });
    }
    while (count < max) {
      const more = this.buffer.poll(max - count);
      if (more.length === 0) return;
      for (const b of more) {
        batches.push(b);
        count += b.events.length;
      }
    }
  }

  private async deliver(batches: Batch[], signal: AbortSignal): Promise<AckStatus> {
    const events = batches.length === 1 ? batches[0]!.events : batches.flatMap((b) => b.events);
    const ndjson = ndjsonOf(batches);
    let bytes = 0;
    for (const b of batches) bytes += b.bytes;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) return 'failed';
      try {
        await this.sink.write(events, signal, ndjson);
        this.recordDelivered(batches, events.length, bytes);
        return 'delivered';
      } catch (error) {
        if (signal.aborted) return 'failed';
        if (error instanceof PermanentError) {
          this.rejectPermanently(batches, events, bytes, error);
          return 'delivered';
        }
        const max = this.options.retry.maxAttempts;
        if (max > 0 && attempt + 1 >= max) {
          this.metrics.error('retries_exhausted');
          this.rejectPermanently(
            batches,
            events,
            bytes,
            new PermanentError(`gave up after ${attempt + 1} attempts: ${errorMessage(error)}`),
          );
          return 'delivered';
        }
        this.metrics.error(error instanceof RetryableError ? 'retryable' : 'write_failed');
        this.metrics.retries.inc();
        const delay = Math.max(
          backoffDelay(this.options.retry, attempt),
          error instanceof RetryableError ? (error.retryAfterMs ?? 0) : 0,
        );
        if (attempt === 0 || attempt % 10 === 0) {
          this.logger.warn(
            { sink: this.id, attempt: attempt + 1, retry_in_ms: delay, err: errorMessage(error) },
            'sink write failed, retrying',
          );
        }
        try {
          await sleep(delay, signal);
        } catch {
          return 'failed';
        }
      }
    }
  }

  private recordDelivered(batches: Batch[], count: number, bytes: number): void {
    this.metrics.sentEvents.inc(count);
    this.metrics.sentBytes.inc(bytes);
    const now = Date.now();
    for (const b of batches) this.metrics.latency.observe((now - b.ack.receivedAt) / 1000);
  }

  /**
   * Hands rejected events to the dead letter output. They keep the batches' acknowledgement alive through
   * one combined share, so the source acknowledges them only once the dead letter consumers did.
   */
  private rejectPermanently(batches: Batch[], events: Event[], bytes: number, error: PermanentError): void {
    const rejected = error.events ?? events;
    const delivered = events.length - rejected.length;
    if (delivered > 0) this.metrics.sentEvents.inc(delivered);
    for (const b of batches) b.ack.retain();
    const combined = new Acknowledgement((status) => {
      for (const b of batches) b.ack.release(status);
    }, batches[0]!.ack.receivedAt);
    this.deadLetter(rejected, error.reason, combined, Math.round((bytes * rejected.length) / events.length));
  }
}

/** The merged events as JSON lines when every batch carries its own (Batch.ndjson). */
function ndjsonOf(batches: Batch[]): Buffer | undefined {
  if (batches.length === 1) return batches[0]!.ndjson;
  const parts: Buffer[] = [];
  for (const b of batches) {
    if (b.ndjson === undefined) return undefined;
    parts.push(b.ndjson);
  }
  return Buffer.concat(parts);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
