import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { SyslogFramer } from '../../codecs/octet-counting.ts';
import { loadTlsServerOptions } from '../../codecs/tls.ts';
import type { SourceContext } from '../../core/component.ts';
import type { Event } from '../../core/event.ts';
import type { SyslogSourceOptions } from '../syslog.ts';
import { formatEndpoint, peerHost, SyslogSourceBase } from './common.ts';

/**
 * Syslog over TCP (and TLS): each connection has its own framer (newline or octet counting, detected on its
 * first byte) and is paused while its last batch waits for the pipeline, so a full sink stops the sender.
 */
export class SyslogTcpSource extends SyslogSourceBase {
  readonly connections = new Set<SyslogConnection>();
  private readonly server: Server;
  private readonly scheme: 'tcp' | 'tls';
  private readonly openConnections;
  private readonly rejected;
  private readonly partialDropped;
  private readonly framingErrors;

  constructor(opts: SyslogSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    const m = ctx.metrics;
    this.openConnections = m.gauge('fluxo_syslog_open_connections', 'Open TCP connections of a syslog source.');
    this.rejected = m.counter(
      'fluxo_syslog_connections_rejected_total',
      'TCP connections closed on arrival because max_connections were open.',
    );
    this.partialDropped = m.counter(
      'fluxo_syslog_partial_messages_dropped_total',
      'Incomplete messages (unterminated octet-counted frames, or lines at shutdown or reset) dropped.',
    );
    this.framingErrors = m.counter(
      'fluxo_syslog_framing_errors_total',
      'Connections closed because an octet-counted stream had a malformed MSG-LEN.',
    );
    const tls = loadTlsServerOptions(opts.tls, `source ${ctx.id}`);
    const netOptions = { keepAlive: opts.keepalive, keepAliveInitialDelay: 60_000 };
    const onConnection = (socket: Socket) => this.accept(socket);
    if (tls) {
      this.scheme = 'tls';
      this.server = createTlsServer({ ...netOptions, ...tls }, onConnection);
      this.server.on('tlsClientError', (error: Error, socket: Socket) => {
        ctx.metrics.error('tls_handshake');
        this.warn('tls', { host: peerHost(socket.remoteAddress), err: error.message }, 'TLS handshake failed');
      });
    } else {
      this.scheme = 'tcp';
      this.server = createServer(netOptions, onConnection);
    }
    this.server.maxConnections = opts.max_connections;
    // Node closes connections over maxConnections itself and tells us with 'drop'.
    this.server.on('drop', (data) => {
      this.rejected.inc();
      this.warn(
        'max_connections',
        { host: peerHost(data?.remoteAddress), max_connections: opts.max_connections },
        'connection refused: max_connections reached',
      );
    });
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, 'syslog source server error'));
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(this.listenError(error));
      this.server.once('error', onError);
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  endpoint(): string | undefined {
    const info = this.server.address();
    return info && typeof info === 'object' ? formatEndpoint(this.scheme, info) : undefined;
  }

  async stop(): Promise<void> {
    if (this.stopping) return this.idle();
    this.stopping = true;
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    let partial = 0;
    for (const conn of this.connections) {
      conn.socket.pause();
      if (conn.framer.discardPartial() > 0) partial++;
      conn.socket.destroy();
    }
    if (partial > 0) {
      this.partialDropped.inc(partial);
      this.ctx.logger.warn({ partial_messages: partial }, 'dropped incomplete syslog messages at shutdown');
    }
    await closed;
    await this.idle();
  }

  private accept(socket: Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const conn = new SyslogConnection(socket, this);
    this.connections.add(conn);
    this.openConnections.inc();
  }

  closed(conn: SyslogConnection): void {
    if (!this.connections.delete(conn)) return;
    this.openConnections.dec();
    if (!conn.ended && !this.stopping && conn.framer.discardPartial() > 0) {
      this.partialDropped.inc();
      this.ctx.logger.debug({ host: conn.host }, 'connection reset: incomplete message dropped');
    }
  }

  ended(conn: SyslogConnection, droppedBytes: number): void {
    if (droppedBytes === 0) return;
    this.partialDropped.inc();
    this.warn(
      'partial',
      { host: conn.host, bytes: droppedBytes },
      'connection closed inside an octet-counted frame: incomplete message dropped',
    );
  }

  framingError(conn: SyslogConnection, reason: string): void {
    this.framingErrors.inc();
    this.warn('framing', { host: conn.host, reason }, 'octet-counting framing error: closing the connection');
  }

  emitMessages(conn: SyslogConnection, messages: readonly string[]): void {
    const events: Event[] = [];
    this.appendEvents(messages, conn.host, events);
    if (events.length === 0) return;
    const bytes = conn.unreportedBytes;
    conn.unreportedBytes = 0;
    conn.inFlight++;
    conn.socket.pause();
    this.emitTracked(events, bytes, conn.onEmitSettled);
  }

  emitSettled(conn: SyslogConnection): void {
    if (--conn.inFlight === 0 && !this.stopping && !conn.socket.destroyed) conn.socket.resume();
    this.settled();
  }

  overlong(conn: SyslogConnection, prefix: string, bytes: number): void {
    this.deadLetterOverlong(prefix, bytes, conn.host);
  }
}

/** One TCP connection: its framer, paused while its last batch waits for the pipeline. */
class SyslogConnection {
  readonly framer: SyslogFramer;
  readonly host: string;
  /** Wire bytes received since the last emit, reported with the next one. */
  unreportedBytes = 0;
  inFlight = 0;
  ended = false;
  readonly onEmitSettled = () => this.source.emitSettled(this);

  constructor(
    readonly socket: Socket,
    private readonly source: SyslogTcpSource,
  ) {
    this.host = peerHost(socket.remoteAddress);
    this.framer = new SyslogFramer({
      maxMessageBytes: source.opts.max_message_bytes,
      onOverlong: (prefix, bytes) => source.overlong(this, prefix, bytes),
      onError: (reason) => source.framingError(this, reason),
      onDetected: (framing) => source.ctx.logger.debug({ host: this.host, framing }, 'syslog framing detected'),
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => source.closed(this));
    socket.on('error', (error) => source.ctx.logger.debug({ err: error.message, host: this.host }, 'connection error'));
  }

  private onData(chunk: Buffer): void {
    this.unreportedBytes += chunk.length;
    const messages = this.framer.push(chunk);
    if (messages.length > 0) this.source.emitMessages(this, messages);
    // The messages before the error were handed over above; nothing after it can be framed.
    if (this.framer.broken) this.socket.destroy();
  }

  /** The peer closed its side: a newline-framed last line is complete even without its newline. */
  private onEnd(): void {
    this.ended = true;
    const { last, droppedBytes } = this.framer.end();
    if (last !== undefined) this.source.emitMessages(this, [last]);
    this.source.ended(this, droppedBytes);
  }
}
