import { createServer, type Server, type Socket } from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { Event } from '../event.ts';
import type { LocalCounter, LocalGauge } from '../metrics.ts';
import { nodeTls } from './builtins.ts';
import { ConnectionDeadlines, type ExpiryReason, type TimedConnection } from './connection-deadlines.ts';
import { listenServer } from './listen.ts';
import { formatEndpoint, type NetSourceBase, type NetTransport } from './net-source-base.ts';

/** A batch gathered from several connections goes out at this size without waiting for the end of the turn. */
const COALESCE_MAX_EVENTS = 1000;
/**
 * A connection's emit this large goes out on its own: gathering is for the trickle of many agents (measured at
 * full speed, 260-line chunks gathered into one batch cost 10 % more CPU than sent as they came).
 */
const COALESCE_BELOW_EVENTS = 64;
/**
 * Node itself closes connections beyond max_connections + this: room for TLS handshakes in progress (not yet
 * counted by the listener) and evicted sockets still closing, while the listener enforces max_connections.
 */
export const ACCEPT_HEADROOM = 64;

export interface TcpStreamListenerOptions<C extends StreamConnection> {
  keepalive: boolean;
  maxConnections: number;
  /**
   * Most wire bytes of emitted events the pipeline has not taken yet, across every connection: past it, no
   * connection reads until half of them were taken (max_pending_bytes).
   */
  maxPendingBytes: number;
  /** Connection deadlines in ms (idle, incomplete frame, eviction at max_connections); 0 disables the first two. */
  idleTimeoutMs: number;
  readTimeoutMs: number;
  evictIdleAfterMs: number;
  /** The source's rate-limited warning, for read timeouts and evictions. */
  warn: (kind: string, fields: Record<string, unknown>, message: string) => void;
  /** TLS server options: the listener then speaks TLS and its endpoint says `tls`. */
  tls?: TlsOptions;
  /** Source type (`socket`, `syslog`): names the metrics `fluxo_<label>_…` and the server error log. */
  label: string;
  /** Help of `fluxo_<label>_partial_<unit>_dropped_total`. */
  partialHelp: string;
  /** What a frame is called in metric names and logs: `lines`, `messages`. */
  unit: string;
  /** Warning logged when stop() drops unterminated frames. */
  shutdownWarning: string;
  /** Debug log when a reset connection leaves an unterminated frame. */
  resetMessage: string;
  connection: (socket: Socket, listener: TcpStreamListener<C>) => C;
  /** Told of every connection refused because max_connections were open (already counted). */
  onDrop: (remoteAddress: string | undefined, remotePort: number | undefined) => void;
}

/**
 * The TCP side of a listening source, one idea: connection bookkeeping. A connection is paused while its last
 * batch waits for the pipeline, so a full sink stops the sender; what all connections deliver in one turn of the
 * event loop is emitted as one batch; connections over max_connections are closed
 * by Node and counted; at stop, unterminated frames are dropped and counted. Shared by the socket and syslog
 * sources, which differ only in how a connection frames its bytes (StreamConnection).
 */
export class TcpStreamListener<C extends StreamConnection> implements ConnectionOwner, NetTransport {
  readonly connections = new Set<C>();
  readonly server: Server;
  private readonly scheme: 'tcp' | 'tls';
  private readonly openConnections: LocalGauge;
  private readonly rejected: LocalCounter;
  private readonly partialDropped: LocalCounter;
  private readonly deadlines: ConnectionDeadlines<C>;
  /** Events taken from connections in this turn of the event loop, not yet emitted. */
  private pending: { events: Event[]; bytes: number; conns: C[] } = { events: [], bytes: 0, conns: [] };
  private flushScheduled = false;
  /**
   * Wire bytes of the events handed over by connections and not yet taken by the pipeline (gathered ones
   * included). Without a bound across connections each of 300 paused connections holds its last read, parsed:
   * ~80,000 events beside a full buffer. TCP carries the pause to the senders.
   */
  private pendingBytes = 0;
  private readonly pendingBytesGauge: LocalGauge;
  private readonly readPauses: LocalCounter;
  /** True from pendingBytes reaching maxPendingBytes until it falls to half: no connection reads. */
  readsPaused = false;

  constructor(
    readonly source: NetSourceBase,
    private readonly options: TcpStreamListenerOptions<C>,
  ) {
    const { ctx } = source;
    const m = ctx.metrics;
    const label = options.label;
    this.openConnections = m.gauge(`fluxo_${label}_open_connections`, `Open TCP connections of a ${label} source.`);
    this.rejected = m.counter(
      `fluxo_${label}_connections_rejected_total`,
      'TCP connections closed on arrival because max_connections were open.',
    );
    this.partialDropped = m.counter(`fluxo_${label}_partial_${options.unit}_dropped_total`, options.partialHelp);
    this.pendingBytesGauge = m.gauge(
      `fluxo_${label}_pending_bytes`,
      `Wire bytes of ${options.unit} received and not yet taken by the pipeline (bound: max_pending_bytes).`,
    );
    this.readPauses = m.counter(
      `fluxo_${label}_read_pauses_total`,
      'Times every connection stopped reading because max_pending_bytes were waiting for the pipeline.',
    );
    const netOptions = { keepAlive: options.keepalive, keepAliveInitialDelay: 60_000 };
    const onConnection = (socket: Socket) => this.accept(socket);
    if (options.tls) {
      this.scheme = 'tls';
      this.server = nodeTls().createServer({ ...netOptions, ...options.tls }, onConnection);
    } else {
      this.scheme = 'tcp';
      this.server = createServer(netOptions, onConnection);
    }
    this.deadlines = new ConnectionDeadlines<C>(
      this.connections,
      {
        idleTimeoutMs: options.idleTimeoutMs,
        readTimeoutMs: options.readTimeoutMs,
        evictIdleAfterMs: options.evictIdleAfterMs,
        label,
        warn: options.warn,
      },
      m,
    );
    this.server.maxConnections = options.maxConnections + ACCEPT_HEADROOM;
    this.server.on('drop', (data) => this.refuse(data?.remoteAddress, data?.remotePort));
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, `${label} source server error`));
  }

  open(): Promise<void> {
    const { host, port, opts, ctx } = this.source;
    this.deadlines.start();
    return listenServer(this.server, host, port, ctx.id, `${opts.mode} ${opts.address}`);
  }

  endpoint(): string | undefined {
    const info = this.server.address();
    return info && typeof info === 'object' ? formatEndpoint(this.scheme, info) : undefined;
  }

  /** Stops accepting and closes every connection, dropping (and counting) their unterminated frames. */
  async close(): Promise<void> {
    this.deadlines.stop();
    // Complete frames already taken are emitted now, so that stop() waits for them.
    this.flush();
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    let partial = 0;
    for (const conn of this.connections) {
      conn.socket.pause();
      if (conn.discardPartial() > 0) partial++;
      conn.socket.destroy();
    }
    if (partial > 0) {
      this.partialDropped.inc(partial);
      this.source.ctx.logger.warn({ [`partial_${this.options.unit}`]: partial }, this.options.shutdownWarning);
    }
    await closed;
  }

  /** Counts a frame the connection could not complete (e.g. a peer closing inside an octet-counted frame). */
  partialFrameDropped(): void {
    this.partialDropped.inc();
  }

  /**
   * Takes a connection's events with the bytes received since its last emit; the connection is paused until
   * they are accepted by the pipeline. Small emits of every connection that delivered data in this turn of the
   * event loop go out as one batch at its end (or once it holds COALESCE_MAX_EVENTS): 300 agents each sending a line
   * now and then make one batch per turn instead of one per line, and every per-batch cost downstream (routing,
   * acknowledgement, buffer records, writes) is paid once for all of them.
   */
  emit(conn: C, events: Event[]): void {
    if (events.length === 0) return;
    this.deadlines.framed(conn);
    const bytes = conn.unreportedBytes;
    conn.unreportedBytes = 0;
    conn.inFlight++;
    conn.socket.pause();
    this.pendingBytes += bytes;
    this.pendingBytesGauge.set(this.pendingBytes);
    if (!this.readsPaused && this.pendingBytes >= this.options.maxPendingBytes) this.pauseReads();
    if (events.length >= COALESCE_BELOW_EVENTS) {
      // Already a batch worth its per-batch costs: out at once, after what was gathered before it.
      this.flush();
      this.emitBatch(events, bytes, [conn]);
      return;
    }
    const p = this.pending;
    if (p.events.length === 0 && p.conns.length === 0) {
      p.events = events;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushSoon);
      }
    } else {
      for (let i = 0; i < events.length; i++) p.events.push(events[i]!);
    }
    p.bytes += bytes;
    p.conns.push(conn);
    if (p.events.length >= COALESCE_MAX_EVENTS) this.flush();
  }

  private readonly flushSoon = () => {
    this.flushScheduled = false;
    this.flush();
  };

  /** Emits what the connections handed over since the last flush, as one batch. */
  private flush(): void {
    const { events, bytes, conns } = this.pending;
    if (conns.length === 0) return;
    this.pending = { events: [], bytes: 0, conns: [] };
    this.emitBatch(events, bytes, conns);
  }

  private emitBatch(events: Event[], bytes: number, conns: C[]): void {
    this.source.emitTracked(events, bytes, () => {
      this.pendingBytes -= bytes;
      this.pendingBytesGauge.set(this.pendingBytes);
      // Half, not the bound itself: 300 connections paused and resumed on every batch would cost more than reads.
      const resumeAll = this.readsPaused && this.pendingBytes <= this.options.maxPendingBytes / 2;
      if (resumeAll) this.readsPaused = false;
      for (const conn of conns) {
        if (--conn.inFlight === 0 && !this.readsPaused) this.resumeReading(conn);
      }
      if (resumeAll) for (const conn of this.connections) if (conn.inFlight === 0) this.resumeReading(conn);
      this.source.settled();
    });
  }

  /** Stops every connection reading until the pipeline took half of the pending bytes (see emitBatch). */
  private pauseReads(): void {
    this.readsPaused = true;
    this.readPauses.inc();
    for (const conn of this.connections) conn.socket.pause();
  }

  private resumeReading(conn: C): void {
    if (!this.source.stopping && !conn.socket.destroyed) conn.socket.resume();
  }

  received(conn: StreamConnection): void {
    this.deadlines.received(conn as C);
  }

  /** Closes a connection for a deadline; it is forgotten (and its partial frame counted) at once. */
  expire(conn: StreamConnection, reason: ExpiryReason): void {
    conn.socket.destroy();
    this.closed(conn);
    this.source.ctx.logger.debug({ host: conn.host, reason }, 'connection closed');
  }

  closed(conn: StreamConnection): void {
    if (!this.connections.delete(conn as C)) return;
    this.openConnections.dec();
    if (!conn.ended && !this.source.stopping && conn.discardPartial() > 0) {
      this.partialDropped.inc();
      const fields = conn.port === undefined ? { host: conn.host } : { host: conn.host, port: conn.port };
      this.source.ctx.logger.debug(fields, this.options.resetMessage);
    }
  }

  private accept(socket: Socket): void {
    if (this.source.stopping) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.options.maxConnections && !this.deadlines.evictForNew()) {
      socket.destroy();
      this.refuse(socket.remoteAddress, socket.remotePort);
      return;
    }
    const conn = this.options.connection(socket, this);
    if (this.readsPaused) socket.pause();
    this.deadlines.opened(conn);
    this.connections.add(conn);
    this.openConnections.inc();
  }

  private refuse(remoteAddress: string | undefined, remotePort: number | undefined): void {
    this.rejected.inc();
    this.options.onDrop(remoteAddress, remotePort);
  }
}

/** What a connection reports to: its TcpStreamListener, whatever the connection type. */
export interface ConnectionOwner {
  readonly source: NetSourceBase;
  /** No connection reads (pending bytes over their bound): deadlines treat every connection as waiting. */
  readonly readsPaused: boolean;
  received(conn: StreamConnection): void;
  expire(conn: StreamConnection, reason: ExpiryReason): void;
  closed(conn: StreamConnection): void;
}

/**
 * One TCP connection of a TcpStreamListener: counts the bytes it received for the next emit and tells the
 * listener when it closes; subclasses frame the bytes (lines, octet-counted syslog).
 */
export abstract class StreamConnection implements TimedConnection {
  lastReadMs = 0;
  lastFrameMs = 0;
  partialSinceMs = -1;
  /** Wire bytes received since the last emit, reported with the next one. */
  unreportedBytes = 0;
  inFlight = 0;
  /** The peer closed its side (as opposed to a reset). */
  ended = false;

  constructor(
    readonly socket: Socket,
    protected readonly listener: ConnectionOwner,
    readonly host: string,
    /** The peer's port, when the source reports it. */
    readonly port?: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.unreportedBytes += chunk.length;
      // Before framing: the frames this chunk completes are emitted (and stamped) inside onData.
      listener.received(this);
      this.onData(chunk);
    });
    socket.on('end', () => {
      this.ended = true;
      this.onEnd();
    });
    socket.on('close', () => listener.closed(this));
    socket.on('error', (error) =>
      listener.source.ctx.logger.debug({ err: error.message, host: this.host }, 'connection error'),
    );
  }

  get waiting(): boolean {
    return this.inFlight > 0 || this.listener.readsPaused;
  }

  expire(reason: ExpiryReason): void {
    this.listener.expire(this, reason);
  }

  /** Drops an unterminated frame; returns its size in bytes (0 when there was none). */
  abstract discardPartial(): number;
  protected abstract onData(chunk: Buffer): void;
  /** The peer closed its side: the framer may hold a last complete frame. */
  protected abstract onEnd(): void;
}
