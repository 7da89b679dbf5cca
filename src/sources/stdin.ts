import type { Readable } from 'node:stream';
import { z } from 'zod';
import { LineSplitter } from '../codecs/lines.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { type Event, EventIdGenerator, HOSTNAME } from '../core/event.ts';
import { size } from '../core/units.ts';

const options = z.object({
  max_line_bytes: size()
    .default(100 * 1024)
    .describe(
      'Longest accepted line in bytes (`\\n` excluded). A longer line goes to the dead letter output with its first KiB ' +
        'and its size, and is counted in `fluxo_stdin_lines_too_long_total`.',
    ),
});

export type StdinSourceOptions = z.infer<typeof options>;

export const stdinSource = defineSource({
  kind: 'source',
  type: 'stdin',
  description: 'Reads newline-delimited lines from standard input; finishes at end of input.',
  options,
  example: ['sources:', '  piped:', '    type: stdin', '    max_line_bytes: 1MiB'].join('\n'),
  build: (opts, ctx) => stdinSourceFrom(process.stdin, opts, ctx),
});

/** The stdin source reading any stream of bytes instead of process.stdin (tests, embedding). */
export function stdinSourceFrom(
  stream: Readable,
  opts: StdinSourceOptions,
  ctx: SourceContext,
): Source & { readonly finished: Promise<void> } {
  return new ReadableLineSource(stream, opts, ctx);
}

/**
 * Lines of a byte stream, one emit per chunk read. While a batch waits for the pipeline the stream is paused,
 * so a writer to a pipe blocks once the pipe's buffer is full: backpressure reaches the producing process.
 */
class ReadableLineSource implements Source {
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;
  private readonly splitter: LineSplitter;
  private readonly ids = new EventIdGenerator();
  private readonly tooLong;
  private readonly partialDropped;
  private readonly overlongReason: string;
  private unreportedBytes = 0;
  private inFlight = 0;
  private ended = false;
  private stopping = false;
  private idleWaiters: (() => void)[] = [];
  private readonly onData = (chunk: Buffer | string) => this.receive(chunk);
  private readonly onEnd = () => this.end();
  private readonly onError = (error: Error) => this.fail(error);
  private readonly onEmitSettled = () => this.settled();
  private readonly onEmitRejected = (error: unknown) => {
    this.ctx.logger.debug({ err: String(error) }, 'emit rejected');
    this.settled();
  };

  constructor(
    private readonly stream: Readable,
    opts: StdinSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    this.finished = new Promise((resolve) => {
      this.resolveFinished = resolve;
    });
    this.tooLong = ctx.metrics.counter(
      'fluxo_stdin_lines_too_long_total',
      'Lines longer than max_line_bytes, sent to the dead letter output.',
    );
    this.partialDropped = ctx.metrics.counter(
      'fluxo_stdin_partial_lines_dropped_total',
      'Unterminated lines dropped because the source stopped before end of input.',
    );
    this.overlongReason = `line longer than max_line_bytes (${opts.max_line_bytes} bytes)`;
    this.splitter = new LineSplitter({
      maxLineBytes: opts.max_line_bytes,
      onOverlong: (prefix, bytes) => this.deadLetterOverlong(prefix, bytes),
    });
  }

  async start(): Promise<void> {
    this.stream.on('data', this.onData);
    this.stream.on('end', this.onEnd);
    this.stream.on('error', this.onError);
    this.stream.resume();
  }

  async stop(): Promise<void> {
    if (!this.stopping && !this.ended) {
      this.stopping = true;
      this.detach();
      // The writer may still complete a half line we hold, but we will not read it: drop it and say so.
      if (this.splitter.discardPartial() > 0) {
        this.partialDropped.inc();
        this.ctx.logger.warn('dropped an unterminated line at shutdown');
      }
    }
    this.stopping = true;
    await this.idle();
    this.resolveFinished();
  }

  private receive(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.unreportedBytes += bytes.length;
    const lines = this.splitter.push(bytes);
    if (lines.length > 0) this.emitLines(lines);
  }

  private end(): void {
    this.ended = true;
    this.detach();
    // End of input completes the last line, newline or not.
    const last = this.splitter.flush();
    if (last !== undefined) this.emitLines([last]);
    this.idle().then(this.resolveFinished);
  }

  private fail(error: Error): void {
    this.ctx.logger.error({ err: error.message }, 'stdin read failed; the source stops');
    this.ended = true;
    this.detach();
    if (this.splitter.discardPartial() > 0) this.partialDropped.inc();
    this.idle().then(this.resolveFinished);
  }

  private emitLines(lines: readonly string[]): void {
    const now = Date.now();
    const timestamp = new Date(now).toISOString();
    const ids = this.ids;
    const events: Event[] = [];
    for (let i = 0; i < lines.length; i++) {
      const message = lines[i]!;
      if (message.length === 0) continue;
      events.push({ message, timestamp, host: HOSTNAME, source_type: 'stdin', _id: ids.next(now) });
    }
    if (events.length === 0) return;
    const bytes = this.unreportedBytes;
    this.unreportedBytes = 0;
    this.inFlight++;
    this.stream.pause();
    this.ctx.emit(events, { bytes }).then(this.onEmitSettled, this.onEmitRejected);
  }

  private settled(): void {
    if (--this.inFlight > 0) return;
    if (!this.stopping && !this.ended) this.stream.resume();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
    });
  }

  private detach(): void {
    this.stream.pause();
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    // Keep a listener: an error after we stopped reading must not crash the process.
    this.stream.on('error', noop);
  }

  private deadLetterOverlong(prefix: string, originalBytes: number): void {
    const now = Date.now();
    this.tooLong.inc();
    const event: Event = {
      message: prefix,
      timestamp: new Date(now).toISOString(),
      host: HOSTNAME,
      source_type: 'stdin',
      _id: this.ids.next(now),
      _truncated: true,
      _original_bytes: originalBytes,
    };
    this.ctx.deadLetter([event], this.overlongReason);
  }
}

function noop(): void {}
