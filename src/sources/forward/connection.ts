import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import {
  type ClientFrame,
  decodeClientFrame,
  decodePackedEntries,
  digestsEqual,
  encodeAck,
  encodeHelo,
  encodePong,
  ForwardProtocolError,
  MsgpackScanner,
  passwordDigest,
  sharedKeyDigest,
} from '../../codecs/forward.ts';
import type { AckStatus } from '../../core/ack.ts';
import type { Event } from '../../core/event.ts';
import type { ConnectionDeadlines, ExpiryReason, TimedConnection } from '../../core/net/connection-deadlines.ts';
import { describeInvalidEntry, type EntryConverter } from './events.ts';

const gunzipAsync = promisify(gunzip);

/**
 * A message's events go to the pipeline in batches of at most this many (the memory buffer's default `max_events`),
 * so a 500,000-entry message does not arrive at a buffer or sink as one batch.
 */
export const EMIT_BATCH_EVENTS = 10_000;

/** A client that connected to a server with a shared key must send PING this soon after HELO. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ServerAuth {
  sharedKey: string;
  /** This server's name in PONG. */
  hostname: string;
  /** username → password; undefined: no user authentication. */
  users: Map<string, string> | undefined;
}

/** What a connection needs from its source. */
export interface ForwardServer {
  readonly maxMessageBytes: number;
  /** Most entries one message may hold; a message with more is a protocol error (no ack: the sender keeps it). */
  readonly maxEntriesPerMessage: number;
  readonly auth: ServerAuth | undefined;
  readonly converter: EntryConverter;
  readonly stopping: boolean;
  readonly deadlines: ConnectionDeadlines<ForwardConnection>;
  /**
   * Reserves `bytes` more for this connection's unfinished or undecoded frames against the source's
   * max_buffered_bytes; false (nothing reserved) when that would pass it.
   */
  hold(bytes: number): boolean;
  /** Gives back bytes reserved with hold(). */
  unhold(bytes: number): void;
  /**
   * Waits for a turn to decode and emit (undefined: go ahead). Every turn taken is given back with `release()`
   * once the batch was accepted, so at most a few decoded batches wait for room in the pipeline whatever the
   * number of connections; the others keep their messages as received bytes.
   */
  admit(): Promise<void> | undefined;
  release(): void;
  /** Hands events to the pipeline; resolves once accepted (backpressure). Never rejects. */
  emit(events: Event[], bytes: number, onSettled: ((status: AckStatus) => void) | undefined): Promise<void>;
  deadLetter(events: Event[], reason: string): void;
  closed(conn: ForwardConnection): void;
  /** The connection is closed for `reason` (malformed, truncated, oversize, authentication). */
  protocolError(conn: ForwardConnection, reason: string, kind: 'protocol' | 'auth', limit?: string): void;
  acksSent(n: number): void;
  sizeMismatch(conn: ForwardConnection, declared: number, found: number): void;
}

/**
 * One client connection: frames the MessagePack stream, runs the shared-key handshake, decodes messages, and
 * answers each `chunk` with an ack once the pipeline settled its events as delivered. While a batch is being
 * decoded or waits for the pipeline, the socket is paused, so a slow pipeline slows the sender down.
 */
export class ForwardConnection implements TimedConnection {
  readonly host: string;
  readonly port: number;
  lastReadMs = 0;
  lastFrameMs = 0;
  partialSinceMs = -1;
  /** Capacity of `pending`, reserved with server.hold(). */
  private pendingHeld = 0;
  /** Reserved bytes of buffers now owned by queued frames; given back once those frames are handled. */
  private queuedHeld = 0;
  /** Bytes of an incomplete frame, in `pending[0, pendingLength)`; its capacity grows by doubling. */
  private pending: Buffer | undefined;
  private pendingLength = 0;
  private queue: Buffer[] = [];
  private readonly scanner: MsgpackScanner;
  private busy = false;
  /** No more input is read (an error, a rejected handshake, or the source stopping). */
  private dead = false;
  /** The client closed its side: answer what is pending, then close ours. */
  private ended = false;
  private unreportedBytes = 0;
  private pendingAcks = 0;
  private handshake: { nonce: Buffer; authSalt: Buffer | undefined; timer: NodeJS.Timeout } | undefined;

  constructor(
    readonly socket: Socket,
    private readonly server: ForwardServer,
  ) {
    this.host = socket.remoteAddress ?? '';
    this.port = socket.remotePort ?? 0;
    this.scanner = new MsgpackScanner(server.maxMessageBytes, 'array');
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => {
      if (this.handshake) clearTimeout(this.handshake.timer);
      this.releaseHeld();
      server.closed(this);
    });
    socket.on('error', () => {
      // ECONNRESET and the like: 'close' follows; unacknowledged chunks are resent by the client.
    });
    if (server.auth) this.startHandshake(server.auth);
  }

  /** Paused for the pipeline, owing acks or holding frames not yet handled: its silence is not the peer's. */
  get waiting(): boolean {
    return this.busy || this.pendingAcks > 0 || this.queue.length > 0;
  }

  /** Closed for a deadline (ConnectionDeadlines counted and logged it): an incomplete frame is dropped. */
  expire(_reason: ExpiryReason): void {
    this.dead = true;
    this.queue = [];
    this.releaseHeld();
    this.socket.destroy();
    this.server.closed(this);
  }

  /** The source stops: read nothing more, close once the acks of what was accepted are sent. */
  stop(): void {
    this.dead = true;
    this.socket.pause();
    this.queue = [];
    this.closeWhenIdle();
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    this.unreportedBytes += chunk.length;
    const deadlines = this.server.deadlines;
    deadlines.received(this);
    const queued = this.queue.length;
    try {
      this.scan(chunk);
      if (this.queue.length > queued) deadlines.framed(this, this.scanner.inFrame);
    } catch (error) {
      if (error instanceof ForwardProtocolError) this.fail(error.message, 'protocol', error.limit);
      else this.fail(String(error));
      return;
    }
    if (!this.busy && this.queue.length > 0) this.handleQueue();
  }

  /** Moves the complete frames of pending + chunk to the queue, keeps the incomplete rest. */
  private scan(chunk: Buffer): void {
    let data = chunk;
    let end = chunk.length;
    if (this.pending !== undefined) {
      this.append(chunk);
      data = this.pending;
      end = this.pendingLength;
    }
    let start = 0;
    for (;;) {
      const frameEnd = this.scanner.scan(data, start, end);
      if (frameEnd < 0) break;
      this.queue.push(data.subarray(start, frameEnd));
      start = frameEnd;
    }
    if (data === this.pending) {
      if (start === 0) return; // nothing completed: the frame keeps growing in place
      // The queued frames are views of this buffer: it is theirs now, the rest moves to a new one.
      this.pending = undefined;
      this.pendingLength = 0;
      this.queuedHeld += this.pendingHeld;
      this.pendingHeld = 0;
    }
    if (start < end) this.append(data.subarray(start, end));
  }

  private append(bytes: Buffer): void {
    const need = this.pendingLength + bytes.length;
    if (this.pending === undefined || need > this.pending.length) {
      let capacity = Math.max(need, 2 * (this.pending?.length ?? 0), 16 * 1024);
      // Doubling is for speed; near max_buffered_bytes the exact need is tried before refusing.
      if (!this.server.hold(capacity - this.pendingHeld)) {
        capacity = need;
        if (!this.server.hold(capacity - this.pendingHeld))
          throw new ForwardProtocolError(
            `the source holds max_buffered_bytes of unfinished messages across its connections: refusing ${capacity} more`,
            'max_buffered_bytes',
          );
      }
      this.pendingHeld = capacity;
      const grown = Buffer.allocUnsafe(capacity);
      if (this.pending !== undefined) this.pending.copy(grown, 0, 0, this.pendingLength);
      this.pending = grown;
    }
    bytes.copy(this.pending, this.pendingLength);
    this.pendingLength = need;
  }

  private handleQueue(): void {
    const frames = this.queue;
    this.queue = [];
    const held = this.queuedHeld;
    this.queuedHeld = 0;
    this.busy = true;
    this.socket.pause();
    this.handleFrames(frames).then(
      () => {
        this.server.unhold(held);
        this.idle();
      },
      (error: unknown) => {
        this.server.unhold(held);
        this.busy = false;
        this.fail(`internal error: ${String(error)}`);
      },
    );
  }

  private idle(): void {
    this.busy = false;
    if (this.dead) {
      this.closeWhenIdle();
      return;
    }
    if (this.queue.length > 0) this.handleQueue();
    else if (this.ended) this.closeWhenIdle();
    else this.socket.resume();
  }

  private async handleFrames(frames: Buffer[]): Promise<void> {
    const turn = this.server.admit();
    if (turn) await turn;
    try {
      await this.decodeAndEmit(frames);
    } finally {
      this.server.release();
    }
  }

  private async decodeAndEmit(frames: Buffer[]): Promise<void> {
    const messages: Exclude<ClientFrame, { kind: 'ping' }>[] = [];
    let error: unknown;
    for (const frame of frames) {
      if (this.handshake) {
        if (!this.onPing(frame)) return;
        continue;
      }
      try {
        const message = decodeClientFrame(frame, this.server.maxEntriesPerMessage);
        if (message.kind === 'ping') throw new ForwardProtocolError('unexpected PING: this server has no shared key');
        messages.push(message);
      } catch (e) {
        error = e;
        break;
      }
    }
    const events: Event[] = [];
    const invalid: { entry: unknown; reason: string }[] = [];
    const acks: string[] = [];
    const converter = this.server.converter;
    for (const message of messages) {
      let entries: unknown;
      try {
        if (message.kind === 'packed') {
          const raw = message.gzip ? await this.gunzip(message.packed) : message.packed;
          entries = decodePackedEntries(raw, this.server.maxEntriesPerMessage);
        } else {
          entries = message.entries;
        }
        if (!Array.isArray(entries))
          throw new ForwardProtocolError('malformed Forward message: entries are not an array');
      } catch (e) {
        error = e;
        break;
      }
      const chunk = message.option?.chunk;
      converter.append(message.tag, entries, this.host, chunk?.trim(), events, invalid);
      const size = message.option?.size;
      if (size !== undefined && size !== entries.length) this.server.sizeMismatch(this, size, entries.length);
      if (chunk !== undefined) acks.push(chunk);
    }
    if (invalid.length > 0) this.deadLetterInvalid(invalid);
    // The messages before a bad one are delivered and acknowledged; the bad one is not, so its sender keeps it.
    await this.emit(events, acks);
    if (error !== undefined)
      this.fail(errorText(error), 'protocol', error instanceof ForwardProtocolError ? error.limit : undefined);
  }

  private async gunzip(packed: Uint8Array): Promise<Buffer> {
    try {
      return await gunzipAsync(packed, { maxOutputLength: this.server.maxMessageBytes });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ForwardProtocolError(
          `CompressedPackedForward entries larger than max_message_bytes (${this.server.maxMessageBytes} bytes) once decompressed`,
          'max_message_bytes (decompressed)',
        );
      }
      throw new ForwardProtocolError(`CompressedPackedForward entries are not valid gzip: ${(error as Error).message}`);
    }
  }

  /**
   * Hands the events over in batches of at most EMIT_BATCH_EVENTS, each awaited (backpressure), so one big message
   * is not one huge batch for the buffers and sinks; its acks are sent once every batch settled as delivered.
   */
  private async emit(events: Event[], acks: string[]): Promise<void> {
    if (events.length === 0) {
      // Every entry was dead-lettered (or the messages were empty): nothing waits for the pipeline.
      this.sendAcks(acks);
      return;
    }
    let bytes = this.unreportedBytes;
    this.unreportedBytes = 0;
    let onSettled: ((status: AckStatus) => void) | undefined;
    if (acks.length > 0) {
      this.pendingAcks++;
      let unsettled = Math.ceil(events.length / EMIT_BATCH_EVENTS);
      let delivered = true;
      onSettled = (status) => {
        if (status !== 'delivered') delivered = false;
        if (--unsettled === 0) this.settled(delivered ? 'delivered' : status, acks);
      };
    }
    if (events.length <= EMIT_BATCH_EVENTS) {
      await this.server.emit(events, bytes, onSettled);
      return;
    }
    for (let i = 0; i < events.length; i += EMIT_BATCH_EVENTS) {
      await this.server.emit(events.slice(i, i + EMIT_BATCH_EVENTS), bytes, onSettled);
      bytes = 0;
    }
  }

  private settled(status: AckStatus, acks: string[]): void {
    this.pendingAcks--;
    if (status === 'delivered') {
      this.sendAcks(acks);
    } else if (!this.socket.destroyed) {
      // Not delivered (the pipeline is stopping): no ack; closing makes the client resend without waiting for its timeout.
      this.socket.destroy();
      return;
    }
    this.closeWhenIdle();
  }

  private sendAcks(acks: string[]): void {
    if (acks.length === 0 || this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(acks.length === 1 ? encodeAck(acks[0]!) : Buffer.concat(acks.map(encodeAck)));
    this.server.acksSent(acks.length);
  }

  private deadLetterInvalid(invalid: { entry: unknown; reason: string }[]): void {
    const timestamp = new Date().toISOString();
    const byReason = new Map<string, Event[]>();
    for (const { entry, reason } of invalid) {
      let list = byReason.get(reason);
      if (!list) {
        list = [];
        byReason.set(reason, list);
      }
      list.push({ message: describeInvalidEntry(entry), timestamp, host: this.host, source_type: 'forward' });
    }
    for (const [reason, list] of byReason) this.server.deadLetter(list, reason);
  }

  private onEnd(): void {
    this.ended = true;
    if (this.scanner.inFrame && !this.dead) {
      this.fail(`truncated message: the connection ended inside a message (${this.pendingLength} bytes received)`);
      return;
    }
    if (!this.busy) this.closeWhenIdle();
  }

  /** Closes our side once no batch is being handled and no ack is owed. */
  private closeWhenIdle(): void {
    if (this.busy || this.pendingAcks > 0 || this.socket.destroyed) return;
    if (this.dead || this.ended) this.socket.end();
  }

  private fail(reason: string, kind: 'protocol' | 'auth' = 'protocol', limit?: string): void {
    if (this.socket.destroyed) return;
    this.dead = true;
    this.queue = [];
    this.releaseHeld();
    this.server.protocolError(this, reason, kind, limit);
    this.socket.destroy();
  }

  /** Gives back what this connection reserved for frames it will never handle. */
  private releaseHeld(): void {
    this.pending = undefined;
    this.pendingLength = 0;
    this.server.unhold(this.pendingHeld + this.queuedHeld);
    this.pendingHeld = 0;
    this.queuedHeld = 0;
  }

  // --- shared-key handshake --------------------------------------------------------------------------------------

  private startHandshake(auth: ServerAuth): void {
    const nonce = randomBytes(16);
    const authSalt = auth.users ? randomBytes(16) : undefined;
    const timer = setTimeout(
      () => this.fail(`no PING within ${HANDSHAKE_TIMEOUT_MS / 1000} s of HELO`, 'auth'),
      HANDSHAKE_TIMEOUT_MS,
    );
    timer.unref();
    this.handshake = { nonce, authSalt, timer };
    this.socket.write(encodeHelo(nonce, authSalt));
  }

  /** Checks PING and answers PONG; false when the connection is rejected (then closed). */
  private onPing(frame: Buffer): boolean {
    const auth = this.server.auth!;
    const hs = this.handshake!;
    let message: ClientFrame;
    try {
      message = decodeClientFrame(frame);
    } catch (e) {
      this.fail(errorText(e));
      return false;
    }
    if (message.kind !== 'ping') {
      return this.reject('authentication required: expected PING after HELO (is shared_key set on the client?)');
    }
    const ping = message.ping;
    if (!digestsEqual(sharedKeyDigest(ping.salt, ping.hostname, hs.nonce, auth.sharedKey), ping.digest)) {
      return this.reject('shared key mismatch');
    }
    if (auth.users) {
      const password = auth.users.get(ping.username);
      if (
        password === undefined ||
        !digestsEqual(passwordDigest(hs.authSalt!, ping.username, password), ping.passwordDigest)
      ) {
        return this.reject('username/password mismatch');
      }
    }
    clearTimeout(hs.timer);
    this.handshake = undefined;
    this.socket.write(
      encodePong(true, '', auth.hostname, sharedKeyDigest(ping.salt, auth.hostname, hs.nonce, auth.sharedKey)),
    );
    return true;
  }

  private reject(reason: string): false {
    const auth = this.server.auth!;
    clearTimeout(this.handshake!.timer);
    this.dead = true;
    this.queue = [];
    this.server.protocolError(this, `authentication failed: ${reason}`, 'auth');
    // PONG tells the client why; then the connection closes.
    this.socket.end(encodePong(false, reason, auth.hostname, ''));
    return false;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
