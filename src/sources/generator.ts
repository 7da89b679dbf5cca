import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AccessLogGenerator } from '../codecs/access-log.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import { type Event, EventIdGenerator, HOSTNAME } from '../core/event.ts';

const options = z.object({
  format: z
    .enum(['apache_combined', 'nginx_combined', 'lines'])
    .default('apache_combined')
    .describe(
      'What to generate: realistic web access-log lines in Apache or nginx *combined* format, or your own `lines`.',
    ),
  lines: z
    .array(z.string())
    .default([])
    .describe('With `format: lines`: the lines to emit, in turn, starting over at the end.'),
  rate: z
    .number()
    .nonnegative()
    .default(10)
    .describe('Events per second, held on average over time; 0 means as fast as the pipeline accepts them.'),
  count: z
    .number()
    .int()
    .nonnegative()
    .default(0)
    .describe('How many events to generate before the source finishes; 0 means until stopped.'),
  batch_size: z.number().int().positive().default(100).describe('Most events per emitted batch.'),
  sequence: z
    .boolean()
    .default(true)
    .describe(
      'Number the events from 1 in a `sequence` field (and, for access-log formats, as `seq=<n>` in the request ' +
        'query string), to check downstream that every event arrived exactly once.',
    ),
  seed: z
    .number()
    .int()
    .optional()
    .describe('Seed of the access-log generator: the same seed gives the same lines. Random when absent.'),
});

export type GeneratorSourceOptions = z.infer<typeof options>;

export const generatorSource = defineSource({
  kind: 'source',
  type: 'generator',
  description: 'Generates synthetic events (web access logs or given lines) at a steady rate, for tests and demos.',
  options,
  example: [
    'sources:',
    '  demo:',
    '    type: generator',
    '    format: nginx_combined',
    '    rate: 1000',
    '    count: 100000',
  ].join('\n'),
  build: (opts, ctx) => new GeneratorSource(opts, ctx),
});

/** Time as the generator's schedule sees it; injectable so tests check the schedule without wall time. */
export interface GeneratorClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Waits `ms` (0: one event-loop turn); may reject once `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: GeneratorClock = {
  now: () => performance.now(),
  sleep: (ms, signal) => (ms <= 0 ? immediate(undefined, { signal }) : sleep(ms, undefined, { signal })),
};

/**
 * The shortest wait between batches: at high rates the generator sleeps at least this long and then emits
 * what fell due meanwhile, so it never needs one timer per event.
 */
export const MIN_TICK_MS = 10;

/**
 * A token bucket holds the rate: tokens accrue at `rate` per second, each event spends one. The bucket holds
 * at most one second of events (and at least one batch), so after a long stall (backpressure) the generator
 * catches up by at most that much instead of bursting everything it missed.
 */
export class GeneratorSource implements Source {
  readonly finished: Promise<void> | undefined;
  private readonly ids = new EventIdGenerator();
  private readonly accessLog: AccessLogGenerator | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private produced = 0;
  private resolveFinished: (() => void) | undefined;

  constructor(
    private readonly opts: GeneratorSourceOptions,
    private readonly ctx: SourceContext,
    private readonly clock: GeneratorClock = systemClock,
  ) {
    if (opts.format === 'lines' && opts.lines.length === 0) {
      throw new FluxoError(
        'FLUXO_SOURCE_INVALID_OPTIONS',
        `source ${ctx.id}: format "lines" needs a non-empty "lines" list of the lines to generate`,
      );
    }
    if (opts.format !== 'lines') this.accessLog = new AccessLogGenerator({ format: opts.format, seed: opts.seed });
    // Only a bounded generator finishes by itself; an endless one runs until the pipeline stops.
    if (opts.count > 0) {
      this.finished = new Promise((resolve) => {
        this.resolveFinished = resolve;
      });
    }
  }

  async start(): Promise<void> {
    this.loop ??= this.run().then(
      () => this.resolveFinished?.(),
      (error: unknown) => {
        this.ctx.logger.debug({ err: String(error) }, 'generator stopped');
        this.resolveFinished?.();
      },
    );
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    this.resolveFinished?.();
  }

  /** Events generated so far. */
  get generated(): number {
    return this.produced;
  }

  private async run(): Promise<void> {
    const { rate, count, batch_size: batchSize } = this.opts;
    const signal = this.abort.signal;
    const clock = this.clock;
    const capacity = Math.max(batchSize, rate);
    let tokens = 0;
    let last = clock.now();
    while (!signal.aborted) {
      let n = batchSize;
      if (rate > 0) {
        const now = clock.now();
        tokens = Math.min(capacity, tokens + ((now - last) * rate) / 1000);
        last = now;
        if (tokens < 1) {
          await clock.sleep(Math.max(MIN_TICK_MS, ((1 - tokens) * 1000) / rate), signal);
          continue;
        }
        n = Math.min(n, Math.floor(tokens));
      }
      if (count > 0) n = Math.min(n, count - this.produced);
      tokens -= n;
      await this.ctx.emit(this.batch(n));
      if (count > 0 && this.produced >= count) return;
      // Let I/O and timers run between batches even when the pipeline accepts everything at once.
      if (rate === 0 || tokens >= 1) await clock.sleep(0, signal);
    }
  }

  private batch(n: number): Event[] {
    const now = Date.now();
    const timestamp = new Date(now).toISOString();
    const ids = this.ids;
    const accessLog = this.accessLog;
    const lines = this.opts.lines;
    const withSequence = this.opts.sequence;
    const first = this.produced;
    const events: Event[] = [];
    for (let i = 0; i < n; i++) {
      const sequence = first + i + 1;
      const message =
        accessLog === undefined
          ? lines[(first + i) % lines.length]!
          : accessLog.line(withSequence ? sequence : undefined, now);
      events.push(
        withSequence
          ? { message, timestamp, host: HOSTNAME, source_type: 'generator', sequence, _id: ids.next(now) }
          : { message, timestamp, host: HOSTNAME, source_type: 'generator', _id: ids.next(now) },
      );
    }
    this.produced = first + n;
    return events;
  }
}
