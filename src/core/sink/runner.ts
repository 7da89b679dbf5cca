import type { Logger } from 'pino';
import { Acknowledgement, type AckStatus, type Batch, splitBatch } from '../ack.ts';
import type { Sink } from '../component.ts';
import { FluxoError, PermanentError, RetryableError } from '../errors.ts';
import type { Event } from '../event.ts';
import type { ComponentMetrics } from '../metrics.ts';
import { RateLimitedWarnings } from '../rate-limited-warnings.ts';
import { abortable, backoffDelay, type RetryPolicy, sleep } from '../retry.ts';
import type { SinkBuffer } from './buffer.ts';
import { encodeEvents, scanLines, UNENCODABLE_REASON } from './encoding.ts';
import { PreparedRequest, type SendResult } from './request.ts';

export interface SinkRunnerOptions {
  /** Most events handed to one write(); several queued batches are merged up to it (group commit). */
  batchMaxEvents: number;
  /** Most bytes (Batch.bytes) per write: merging stops before it, and one larger batch is split. */
  batchMaxBytes: number;
  /** A write with fewer than batchMaxEvents waits until its oldest event is this old for more to join it. */
  batchTimeoutMs: number;
  /** How long one attempt may take before it is aborted and retried; 0: no limit. */
  timeoutMs: number;
  /** Call the sink's healthcheck once after it connected. */
  healthcheck: boolean;
  concurrency: number;
  retry: RetryPolicy;
  /** A failure that repeats (connect, write) is logged at most once per this long, with its count; default 10 s. */
  failureLogEveryMs?: number;
}

export type DeadLetterFn = (events: Event[], reason: string, ack: Acknowledgement, bytes: number) => void;

/** Part of a taken batch that goes into one write: the whole batch, or a slice of one too big for a write. */
interface Piece {
  readonly events: Event[];
  readonly ndjson?: Buffer | undefined;
  readonly bytes: number;
  readonly ack: Acknowledgement;
}

/**
 * Moves batches from a sink's buffer into the sink: connects it (retrying with backoff), merges queued
 * batches into writes bounded in events and bytes, encodes and compresses each write once, retries transient
 * errors and what a partial answer left with backoff forever (or up to max_attempts), dead-letters what the
 * destination rejected or cannot be encoded, and releases each batch's acknowledgement share only once the
 * sink has confirmed it.
 */
export class SinkRunner {
  private readonly abortController = new AbortController();
  /** The deadlines of the writes in flight, aborted with the runner (see deadline()). */
  private readonly deadlines = new Set<Deadline>();
  private loops: Promise<void>[] = [];
  private writing = 0;
  /** Resolves true once the sink connected, false when the runner was aborted first. */
  private connected: Promise<boolean> = Promise.resolve(true);
  /** Failed connects and writes: the first is logged, repeats at most once per failureLogEveryMs with their count. */
  private readonly failures: RateLimitedWarnings;

  constructor(
    private readonly id: string,
    private readonly sink: Sink,
    readonly buffer: SinkBuffer,
    private readonly options: SinkRunnerOptions,
    private readonly metrics: ComponentMetrics,
    private readonly logger: Logger,
    private readonly deadLetter: DeadLetterFn,
  ) {
    this.failures = new RateLimitedWarnings(logger, options.failureLogEveryMs ?? 10_000);
  }

  start(): void {
    const runner = this.abortController.signal;
    runner.addEventListener('abort', () => {
      for (const d of this.deadlines) d.abort(runner.reason);
    });
    this.connected = this.connect();
    for (let i = 0; i < Math.max(1, this.options.concurrency); i++) this.loops.push(this.loop());
  }

  /**
   * Connects the sink, retrying with backoff: a destination down at start is neither a crash nor a busy loop,
   * and its buffer fills (and pushes back) meanwhile. Then asks its healthcheck once.
   */
  private async connect(): Promise<boolean> {
    const signal = this.abortController.signal;
    const sink = this.sink;
    if (sink.connect) {
      for (let attempt = 0; ; attempt++) {
        if (signal.aborted) return false;
        try {
          // A sink whose connect ignores the abort must not hold a stop (drain waits for the loops, which wait
          // for the connect).
          await abortable(sink.connect(signal), signal);
          if (attempt > 0) this.logger.info({ sink: this.id, attempts: attempt + 1 }, 'sink connected');
          break;
        } catch (error) {
          if (signal.aborted) return false;
          this.metrics.error('connect_failed');
          const delay = backoffDelay(this.options.retry, attempt);
          const fields = { attempt: attempt + 1, retry_in_ms: delay, err: errorMessage(error) };
          if (!(await this.backOff('connect', delay, fields, 'sink could not connect, retrying', signal))) return false;
        }
      }
    }
    if (this.options.healthcheck && sink.healthcheck) {
      try {
        await abortable(sink.healthcheck(signal), signal);
      } catch (error) {
        if (signal.aborted) return false;
        this.metrics.error('healthcheck_failed');
        this.logger.warn(
          { sink: this.id, err: errorMessage(error) },
          'sink healthcheck failed: the destination may not accept writes; retrying them as they come',
        );
      }
    }
    return true;
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
    this.abortController.abort(
      new FluxoError(
        'FLUXO_SHUTDOWN_TIMEOUT',
        `sink ${this.id}: shutdown timeout, its undelivered events stay unacknowledged`,
      ),
    );
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
      try {
        if (this.options.batchTimeoutMs > 0) await this.linger(batches, signal);
        if (!(await this.connected)) {
          for (const b of batches) b.ack.release('failed');
          continue;
        }
        for (const write of this.writesOf(batches)) {
          const status = await this.deliver(write, signal);
          for (const p of write) p.ack.release(status);
        }
      } finally {
        this.writing--;
        this.buffer.done(batches);
      }
    }
  }

  /**
   * Cuts what was taken into writes of at most batchMaxEvents events and batchMaxBytes bytes. Batches are
   * never reordered; one batch larger than either limit is sliced, each slice holding its own share of the
   * batch's acknowledgement.
   */
  private writesOf(batches: Batch[]): Piece[][] {
    const { batchMaxEvents: maxEvents, batchMaxBytes: maxBytes } = this.options;
    if (batches.length === 1) {
      const b = batches[0]!;
      if (b.events.length <= maxEvents && b.bytes <= maxBytes) return [[b]];
    }
    const writes: Piece[][] = [];
    let current: Piece[] = [];
    let events = 0;
    let bytes = 0;
    const add = (p: Piece) => {
      if (current.length > 0 && (events + p.events.length > maxEvents || bytes + p.bytes > maxBytes)) {
        writes.push(current);
        current = [];
        events = 0;
        bytes = 0;
      }
      current.push(p);
      events += p.events.length;
      bytes += p.bytes;
    };
    for (const b of batches) for (const piece of splitBatch(b, maxEvents, maxBytes)) add(piece);
    if (current.length > 0) writes.push(current);
    return writes;
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

  /**
   * Delivers one write: encodes it once (what cannot be encoded is dead-lettered at once), then sends the same
   * request until the destination took all of it, retrying what it did not take with backoff.
   */
  private async deliver(pieces: Piece[], signal: AbortSignal): Promise<AckStatus> {
    // Past the shutdown deadline the writes left of a taken batch are not even encoded: thousands of them would
    // each be serialized only to fail, and hold shutdown well past shutdown_timeout.
    if (signal.aborted) return 'failed';
    const all = pieces.length === 1 ? pieces[0]!.events : pieces.flatMap((p) => p.events);
    let bytes = 0;
    for (const p of pieces) bytes += p.bytes;
    const request = this.prepare(pieces, all, bytes);
    if (request === undefined) return 'delivered';
    return this.send(pieces, request, signal);
  }

  /** The request of a write, or undefined when none of its events can be encoded (all dead-lettered). */
  private prepare(pieces: Piece[], events: Event[], bytes: number): PreparedRequest | undefined {
    const { request, unencodable } = prepareRequest(this.sink, events, bytes, ndjsonOf(pieces));
    if (unencodable.length > 0) {
      this.metrics.error('encode_failed', unencodable.length);
      const perEvent = bytes / events.length;
      this.rejectPermanently(pieces, unencodable, Math.round(perEvent * unencodable.length), UNENCODABLE_REASON);
    }
    return request;
  }

  private async send(pieces: Piece[], first: PreparedRequest, signal: AbortSignal): Promise<AckStatus> {
    let request = first;
    for (;;) {
      if (signal.aborted) return 'failed';
      try {
        // Frames and compresses once per request: a no-op on a retry of the same one.
        await request.prepare();
      } catch (error) {
        const reason = `cannot be compressed: ${errorMessage(error)}`;
        this.rejectPermanently(pieces, [...request.events], request.bytes, reason);
        return 'delivered';
      }
      let failure: unknown;
      const timeoutMs = this.options.timeoutMs;
      const timeout = timeoutMs > 0 ? this.deadline(timeoutMs) : undefined;
      try {
        const result = await this.sink.send(request, timeout ? timeout.signal : signal);
        const left = this.settle(pieces, request, result);
        if (left === undefined) {
          this.recordLatency(pieces);
          return 'delivered';
        }
        failure = result?.error ?? new RetryableError(`${left.events.length} event(s) not taken by the destination`);
        request = left;
      } catch (error) {
        if (signal.aborted) return 'failed';
        if (error instanceof PermanentError) {
          this.settle(pieces, request, permanentResult(request.events, error));
          this.recordLatency(pieces);
          return 'delivered';
        }
        failure =
          timeout?.timedOut === true ? new RetryableError(`no answer within ${timeoutMs} ms`, { cause: error }) : error;
      } finally {
        timeout?.clear();
      }
      const attempt = request.attempt;
      const max = this.options.retry.maxAttempts;
      if (max > 0 && attempt + 1 >= max) {
        this.metrics.error('retries_exhausted');
        this.rejectPermanently(
          pieces,
          [...request.events],
          request.bytes,
          `gave up after ${attempt + 1} attempts: ${errorMessage(failure)}`,
        );
        return 'delivered';
      }
      this.metrics.error(
        failure instanceof RetryableError ? (timeout?.timedOut ? 'timeout' : 'retryable') : 'write_failed',
      );
      this.metrics.retries.inc();
      const delay = Math.max(
        backoffDelay(this.options.retry, attempt),
        failure instanceof RetryableError ? (failure.retryAfterMs ?? 0) : 0,
      );
      const fields = {
        attempt: attempt + 1,
        events: request.events.length,
        retry_in_ms: delay,
        err: errorMessage(failure),
      };
      request.attempt++;
      if (!(await this.backOff('write', delay, fields, 'sink write failed, retrying', signal))) return 'failed';
    }
  }

  /**
   * Waits `delay` before another attempt, saying so rate-limited: a failure that repeats (a destination down, a
   * write it keeps refusing) logs its first occurrence, then at most once per failureLogEveryMs with the attempt
   * count of the write and how many failures were not logged since (`suppressed`); every retry is counted in
   * fluxo_sink_retries_total. Resolves false as soon as the runner is aborted (shutdown timeout), so a retrying
   * write never holds shutdown past its deadline.
   */
  private async backOff(
    kind: 'connect' | 'write',
    delay: number,
    fields: Record<string, unknown>,
    message: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    this.failures.warn(kind, { sink: this.id, ...fields }, message);
    try {
      await sleep(delay, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Counts what an answer delivered, dead-letters what it rejected, and returns the request for what is to be
   * sent again (undefined when nothing is).
   */
  private settle(
    pieces: Piece[],
    request: PreparedRequest,
    result: SendResult | undefined,
  ): PreparedRequest | undefined {
    const total = request.events.length;
    const rejected = result?.rejected ?? [];
    const retry = result?.retry ?? [];
    const perEvent = total > 0 ? request.bytes / total : 0;
    const delivered = total - rejected.length - retry.length;
    if (delivered > 0) {
      this.metrics.sentEvents.inc(delivered);
      this.metrics.sentBytes.inc(Math.round(perEvent * delivered));
    }
    if (rejected.length > 0) {
      const byReason = new Map<string, Event[]>();
      for (const { index, reason } of rejected) {
        const event = request.events[index];
        if (event === undefined) continue;
        let list = byReason.get(reason);
        if (list === undefined) {
          list = [];
          byReason.set(reason, list);
        }
        list.push(event as Event);
      }
      for (const [reason, events] of byReason) {
        this.rejectPermanently(pieces, events, Math.round(perEvent * events.length), reason);
      }
    }
    return retry.length > 0 ? request.subset(retry) : undefined;
  }

  /**
   * The signal of one attempt: aborted after `ms` or with the runner. One controller and one timer per
   * attempt; AbortSignal.timeout + AbortSignal.any cost ~45 µs per write on Node 20, a visible share of a
   * fast sink's CPU (socket → blackhole).
   */
  private deadline(ms: number): Deadline {
    const d = new Deadline(ms, this.deadlines);
    if (this.abortController.signal.aborted) d.abort(this.abortController.signal.reason);
    return d;
  }

  private recordLatency(pieces: Piece[]): void {
    const now = Date.now();
    let last: Acknowledgement | undefined;
    for (const p of pieces) {
      if (p.ack === last) continue;
      last = p.ack;
      this.metrics.latency.observe((now - p.ack.receivedAt) / 1000);
    }
  }

  /**
   * Hands rejected events to the dead letter output. They keep the write's acknowledgements alive through
   * one combined share, so the source acknowledges them only once the dead letter consumers did.
   */
  private rejectPermanently(pieces: Piece[], events: Event[], bytes: number, reason: string): void {
    for (const p of pieces) p.ack.retain();
    const combined = new Acknowledgement((status) => {
      for (const p of pieces) p.ack.release(status);
    }, pieces[0]!.ack.receivedAt);
    this.deadLetter(events, reason, combined, bytes);
  }
}

/**
 * Encodes a write for `sink` once (unless `ndjson` already holds its events as JSON lines and the encoding is
 * JSON): the request to send, undefined when no event could be encoded, and the events that could not.
 */
export function prepareRequest(
  sink: Sink,
  events: Event[],
  bytes: number,
  ndjson: Buffer | undefined,
): { request: PreparedRequest | undefined; unencodable: Event[] } {
  const encoding = sink.encoding;
  if (encoding === undefined) {
    return { request: new PreparedRequest(events, bytes, undefined, undefined, 'none'), unencodable: [] };
  }
  const compression = sink.compression ?? 'none';
  const lines = encoding.codec !== 'text' && ndjson !== undefined ? scanLines(ndjson, events.length) : undefined;
  if (lines !== undefined) {
    return { request: new PreparedRequest(events, bytes, lines, encoding, compression), unencodable: [] };
  }
  const rejected: number[] = [];
  const encoded = encodeEvents(events, encoding, rejected);
  if (rejected.length === 0) {
    return { request: new PreparedRequest(events, bytes, encoded, encoding, compression), unencodable: [] };
  }
  const unencodable = rejected.map((i) => events[i]!);
  if (encoded.count === 0) return { request: undefined, unencodable };
  const skip = new Set(rejected);
  const kept = events.filter((_, i) => !skip.has(i));
  const keptBytes = Math.round((bytes * kept.length) / events.length);
  return { request: new PreparedRequest(kept, keptBytes, encoded, encoding, compression), unencodable };
}

/** A PermanentError as an answer: all of the request rejected, or only its `events`, the rest delivered. */
function permanentResult(events: readonly Event[], error: PermanentError): SendResult {
  if (error.events === undefined) return { rejected: events.map((_, index) => ({ index, reason: error.reason })) };
  const bad = new Set<Event>(error.events);
  const rejected: { index: number; reason: string }[] = [];
  for (let i = 0; i < events.length; i++) if (bad.has(events[i]!)) rejected.push({ index: i, reason: error.reason });
  return { rejected };
}

/** The write's events as JSON lines when every piece carries its own (Batch.ndjson): nothing to encode. */
function ndjsonOf(pieces: Piece[]): Buffer | undefined {
  if (pieces.length === 1) return pieces[0]!.ndjson;
  const parts: Buffer[] = [];
  for (const p of pieces) {
    if (p.ndjson === undefined) return undefined;
    parts.push(p.ndjson);
  }
  return Buffer.concat(parts);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One write attempt's deadline (SinkRunner.deadline()). */
class Deadline extends AbortController {
  timedOut = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    ms: number,
    private readonly live: Set<Deadline>,
  ) {
    super();
    live.add(this);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError'));
    }, ms);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.live.delete(this);
  }
}
