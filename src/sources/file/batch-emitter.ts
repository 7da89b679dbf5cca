import type { MultilineOutput } from '../../codecs/multiline.ts';
import type { AckStatus } from '../../core/ack.ts';
import type { SourceContext } from '../../core/component.ts';
import { type Event, HOSTNAME, ReceiptClock } from '../../core/event.ts';
import type { AckWindow, WindowEntry } from './ack-window.ts';
import type { CheckpointRecord } from './checkpoints.ts';
import { clearFramedLines, type FramedLines, newFramedLines } from './line-framer.ts';
import type { FileMetrics } from './metrics.ts';
import type { TailedFile } from './tailed-file.ts';

/** What the reader learns from settling batches. */
export interface SettleListener {
  /** A checkpoint offset moved: the checkpoints need writing. */
  committed(): void;
  /** A batch of `f` failed; `window` is the one it belonged to (the file may have a new one since). */
  failed(f: TailedFile, window: AckWindow): void;
}

/**
 * Turns what a file's framer produced into batches: lines through the file's multiline groups, events with
 * `file`, `offset` and the deterministic `_id` (`<fingerprint>:<offset>`), one window entry per batch up to
 * the file's safe offset, and the emit awaited (backpressure). Settling moves the file's checkpoint.
 */
export class FileBatchEmitter {
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly framed: FramedLines = newFramedLines();
  private readonly grouped: MultilineOutput = { messages: [], positions: [] };
  private readonly clock = new ReceiptClock();
  private readonly overlongReason: string;

  constructor(
    private readonly ctx: SourceContext,
    private readonly metrics: FileMetrics,
    maxLineBytes: number,
    private readonly listener: SettleListener,
  ) {
    this.overlongReason = `line longer than max_line_bytes (${maxLineBytes} bytes)`;
  }

  /**
   * Emits what is held: the partial line when `partial` (the file stopped growing, or ended), the multiline
   * group when `final` (the file ended) or when its timeout passed.
   */
  async flushHeld(f: TailedFile, partial: boolean, final: boolean): Promise<void> {
    const out = this.framed;
    clearFramedLines(out);
    if (partial && f.framer.flushPartial(out)) this.metrics.partialFlushed.inc();
    this.countFraming(out);
    await this.emitFramed(f, out, 0, final);
  }

  async emitChunk(f: TailedFile, chunk: Buffer): Promise<void> {
    const out = this.framed;
    clearFramedLines(out);
    f.framer.push(chunk, out);
    this.countFraming(out);
    await this.emitFramed(f, out, chunk.length, false);
  }

  private countFraming(out: FramedLines): void {
    if (out.invalidUtf8 > 0) this.metrics.invalidUtf8.inc(out.invalidUtf8);
    if (out.overlong > 0) this.metrics.tooLong.inc(out.overlong);
  }

  /**
   * Turns framed lines into one batch (through the multiline groups when configured), opens its window entry
   * up to the file's safe offset, and awaits the pipeline. `final`: the held group is emitted too.
   */
  private async emitFramed(f: TailedFile, out: FramedLines, bytes: number, final: boolean): Promise<void> {
    const now = Date.now();
    let messages = out.lines;
    let offsets = out.offsets;
    const ml = f.multiline;
    if (ml !== undefined) {
      const grouped = this.grouped;
      grouped.messages.length = 0;
      grouped.positions.length = 0;
      for (let i = 0; i < messages.length; i++) ml.push(messages[i]!, offsets[i]!, messages[i]!.length, now, grouped);
      if (final) ml.flush(grouped);
      else ml.expire(now, grouped);
      if (ml.splitGroups > 0) {
        this.metrics.groupsSplit.inc(ml.splitGroups);
        ml.splitGroups = 0;
      }
      messages = grouped.messages;
      offsets = grouped.positions;
    }
    const end = f.safeOffset;
    if (messages.length === 0 && end === f.emittedTo) return;
    const window = f.window;
    const entry = window.open(f.emittedTo, end);
    f.emittedTo = end;
    const record = f.record;
    if (messages.length === 0) {
      this.settle(f, window, record, entry, 'delivered', false);
      return;
    }
    const events = this.buildEvents(f, messages, offsets, now);
    messages.length = 0;
    offsets.length = 0;
    this.inFlight++;
    const onSettled = (status: AckStatus) => this.settle(f, window, record, entry, status, true);
    try {
      await this.ctx.emit(events, { bytes, onSettled, receivedAt: now });
    } catch (error) {
      // Only a stopping pipeline rejects; the batch was not taken, so it is not acknowledged either.
      this.ctx.logger.debug({ err: String(error) }, 'file source: emit rejected');
      this.settle(f, window, record, entry, 'failed', true);
    }
  }

  private buildEvents(f: TailedFile, messages: string[], offsets: number[], now: number): Event[] {
    this.clock.now(now);
    const timestamp = this.clock.iso;
    const file = f.path;
    const prefix = f.idPrefix;
    const events: Event[] = [];
    for (let i = 0; i < messages.length; i++) {
      const offset = offsets[i]!;
      events.push({
        message: messages[i],
        timestamp,
        host: HOSTNAME,
        source_type: 'file',
        file,
        offset,
        _id: prefix + offset,
      });
    }
    return events;
  }

  /** `counted`: the entry's batch was counted in `inFlight` (it had events). */
  private settle(
    f: TailedFile,
    window: AckWindow,
    record: CheckpointRecord,
    entry: WindowEntry,
    status: AckStatus,
    counted: boolean,
  ): void {
    if (!entry.pending) return; // settled already, or abandoned by a rewind
    if (window.settle(entry, status)) {
      record.offset = window.committed;
      this.listener.committed();
    }
    if (status === 'failed') {
      this.metrics.failedBatches.inc();
      this.listener.failed(f, window);
    }
    if (counted) {
      this.inFlight--;
      this.notifyIdle();
    }
  }

  /** A rewind abandoned `n` batches still in flight: their outcome no longer matters. */
  abandoned(n: number): void {
    this.inFlight -= n;
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.inFlight > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Resolves when no batch is in flight (every emitted batch settled). */
  idle(): Promise<void> {
    if (this.inFlight <= 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  overlong(f: TailedFile, prefix: string, offset: number, bytes: number): void {
    const now = Date.now();
    this.ctx.deadLetter(
      [
        {
          message: prefix,
          timestamp: new Date(now).toISOString(),
          host: HOSTNAME,
          source_type: 'file',
          file: f.path,
          offset,
          _id: f.idPrefix + offset,
          _truncated: true,
          _original_bytes: bytes,
        },
      ],
      this.overlongReason,
    );
  }
}
