import type { Socket } from 'node:net';
import { OVERLONG_PREFIX_BYTES } from '../../codecs/lines.ts';
import {
  encodeRelpResponse,
  parseRelpOffers,
  RELP_SERVERCLOSE,
  RelpDecoder,
  type RelpFrame,
} from '../../codecs/relp.ts';
import type { AckStatus } from '../../core/ack.ts';
import type { Event } from '../../core/event.ts';
import type { ExpiryReason, TimedConnection } from '../../core/net/connection-deadlines.ts';
import type { RelpSource } from './server.ts';

/** What this server offers in its answer to `open`. */
const SERVER_OFFERS = 'relp_version=0\nrelp_software=fluxo\ncommands=syslog';

/** An answer waiting for its turn: `frame` is set once it may be sent (for `syslog`: once its batch settled). */
interface Answer {
  readonly txnr: number;
  frame: Buffer | undefined;
}

/**
 * One RELP session. The frames of one read become one batch; while the pipeline has not accepted it the socket
 * is paused (backpressure reaches rsyslog's queue). Each `syslog` frame is answered `200 OK` only once every
 * sink settled the batch as delivered, in the order of the frames; a failed batch is not answered and the
 * connection is closed, so librelp resends everything unanswered on its next session.
 */
export class RelpConnection implements TimedConnection {
  lastReadMs = 0;
  lastFrameMs = 0;
  partialSinceMs = -1;
  private readonly decoder: RelpDecoder;
  /** Answers in the order of their frames; `answers[head]` is the next to send. */
  private answers: Answer[] = [];
  private head = 0;
  private opened = false;
  /** Batches not yet accepted by the pipeline: reading waits for them. */
  private accepting = 0;
  /** The client sent `close` or ended its side: answer what is pending, then close. */
  private closing = false;
  /** The source is stopping: answer what is pending, then `serverclose`. */
  private stopping = false;
  private finished = false;
  private unreportedBytes = 0;

  constructor(
    private readonly socket: Socket,
    private readonly source: RelpSource,
    readonly host: string,
  ) {
    this.decoder = new RelpDecoder({
      maxDataBytes: source.opts.max_message_bytes,
      prefixBytes: OVERLONG_PREFIX_BYTES,
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.closing = true;
      this.closeWhenAnswered();
    });
    socket.on('close', () => source.closed(this));
    socket.on('error', (error) => source.ctx.logger.debug({ err: error.message, host }, 'relp connection error'));
  }

  /** Waiting for the pipeline or owing answers: its silence is ours, not the peer's (never idle, never evicted). */
  get waiting(): boolean {
    return this.accepting > 0 || this.head < this.answers.length;
  }

  /** Closed for a deadline (ConnectionDeadlines counted and logged it): an unfinished frame is dropped. */
  expire(reason: ExpiryReason): void {
    if (this.decoder.discardPartial() > 0) this.source.metrics.partial.inc();
    this.finished = true;
    this.socket.destroy();
    this.source.closed(this);
    this.source.ctx.logger.debug({ host: this.host, reason }, 'relp connection closed');
  }

  /** Stops reading; answers what settles, then sends `serverclose`. True when an unfinished frame was dropped. */
  stop(): boolean {
    this.stopping = true;
    this.socket.pause();
    const partial = this.decoder.discardPartial() > 0;
    this.closeWhenAnswered();
    return partial;
  }

  private onData(chunk: Buffer): void {
    if (this.closing || this.stopping || this.socket.destroyed) return;
    this.unreportedBytes += chunk.length;
    const deadlines = this.source.deadlines;
    deadlines.received(this);
    const frames: RelpFrame[] = [];
    let error = this.decoder.push(chunk, frames);
    if (frames.length > 0) deadlines.framed(this, !this.decoder.idle);
    const events: Event[] = [];
    const pending: Answer[] = [];
    for (const frame of frames) {
      const problem = this.handle(frame, events, pending);
      if (problem !== undefined) {
        error = problem;
        break;
      }
      if (this.closing) break;
    }
    if (events.length > 0) this.emit(events, pending);
    this.flush();
    if (error !== undefined) {
      // The frames before the error were handed over; nothing after it can be framed.
      this.source.protocolError(this.host, error);
      this.socket.destroy();
    }
  }

  /** Takes one frame; returns a protocol error, or undefined. */
  private handle(frame: RelpFrame, events: Event[], pending: Answer[]): string | undefined {
    const { txnr, command } = frame;
    if (!this.opened) {
      if (command !== 'open') return `the first command must be open, got ${command} (txnr ${txnr})`;
      if (frame.overlong !== undefined) return `open offers longer than max_message_bytes (${frame.overlong} bytes)`;
      const version = parseRelpOffers(frame.data.toString('utf8')).get('relp_version');
      if (version !== undefined && version !== '0') {
        this.answer(txnr, encodeRelpResponse(txnr, 500, `relp_version ${version} not supported`));
        this.closing = true;
        return undefined;
      }
      this.opened = true;
      this.answer(txnr, encodeRelpResponse(txnr, 200, 'OK', SERVER_OFFERS));
      return undefined;
    }
    switch (command) {
      case 'syslog': {
        if (frame.overlong !== undefined) {
          // Dead-lettered with its first KiB: answered, or the sender would resend it forever.
          this.source.deadLetterOverlong(frame.data, frame.overlong, this.host);
          this.answer(txnr, encodeRelpResponse(txnr, 200, 'OK'));
          return undefined;
        }
        events.push(this.source.toEvent(frame.data, this.host));
        const answer: Answer = { txnr, frame: undefined };
        this.answers.push(answer);
        pending.push(answer);
        return undefined;
      }
      case 'close':
        this.answer(txnr, encodeRelpResponse(txnr, 200, 'OK'));
        this.closing = true;
        return undefined;
      case 'open':
        return `open on an open session (txnr ${txnr})`;
      default:
        // RELP: a command the server does not know is answered with an error, the session goes on.
        this.answer(txnr, encodeRelpResponse(txnr, 500, `command ${command} not supported`));
        return undefined;
    }
  }

  private answer(txnr: number, frame: Buffer): void {
    this.answers.push({ txnr, frame });
  }

  private emit(events: Event[], pending: Answer[]): void {
    const bytes = this.unreportedBytes;
    this.unreportedBytes = 0;
    this.accepting++;
    this.socket.pause();
    void this.source
      .emit(events, bytes, (status) => this.settled(status, pending))
      .then(() => {
        if (--this.accepting === 0 && !this.closing && !this.stopping && !this.socket.destroyed) this.socket.resume();
      });
  }

  private settled(status: AckStatus, pending: Answer[]): void {
    if (status !== 'delivered') {
      if (!this.socket.destroyed) {
        // No answer: librelp keeps the frames unacknowledged and resends them on its next session.
        this.source.metrics.failedBatches.inc();
        this.source.ctx.logger.debug(
          { host: this.host, frames: pending.length },
          'relp batch not delivered: closing the connection so the sender resends it',
        );
        this.socket.destroy();
      }
      return;
    }
    for (const answer of pending) answer.frame = encodeRelpResponse(answer.txnr, 200, 'OK');
    this.source.metrics.answered.inc(pending.length);
    this.flush();
  }

  /** Sends the answers that are ready, in frame order, up to the first that still waits for its batch. */
  private flush(): void {
    const answers = this.answers;
    let end = this.head;
    while (end < answers.length && answers[end]!.frame !== undefined) end++;
    if (end === this.head) {
      this.closeWhenAnswered();
      return;
    }
    if (!this.socket.destroyed && this.socket.writable) {
      if (end - this.head === 1) this.socket.write(answers[this.head]!.frame!);
      else {
        const frames: Buffer[] = [];
        for (let i = this.head; i < end; i++) frames.push(answers[i]!.frame!);
        this.socket.write(Buffer.concat(frames));
      }
    }
    if (end === answers.length) {
      this.answers = [];
      this.head = 0;
    } else if (end > 1024) {
      this.answers = answers.slice(end);
      this.head = 0;
    } else {
      this.head = end;
    }
    this.closeWhenAnswered();
  }

  private closeWhenAnswered(): void {
    if (this.finished || !(this.closing || this.stopping) || this.head < this.answers.length) return;
    if (this.accepting > 0 && !this.stopping) return;
    this.finished = true;
    if (this.socket.destroyed) return;
    // librelp expects `serverclose` when the server ends a session by itself (not after the client's `close`).
    if (this.stopping && !this.closing && this.socket.writable) this.socket.write(RELP_SERVERCLOSE);
    this.socket.end();
    // A peer that leaves its side half-open must not keep the process alive after a stop.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}
