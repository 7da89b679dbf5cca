import type { Socket } from 'node:net';
import { SyslogFramer } from '../../codecs/octet-counting.ts';
import { loadTlsServerOptions } from '../../codecs/tls.ts';
import type { SourceContext } from '../../core/component.ts';
import type { Event } from '../../core/event.ts';
import { type ConnectionOwner, StreamConnection, TcpStreamListener } from '../../core/net/tcp-stream-listener.ts';
import type { SyslogSourceOptions } from '../syslog.ts';
import { peerHost, SyslogSourceBase } from './common.ts';

/**
 * Syslog over TCP (and TLS): each connection has its own framer (newline or octet counting, detected on its
 * first byte) and is paused while its last batch waits for the pipeline, so a full sink stops the sender.
 */
export class SyslogTcpSource extends SyslogSourceBase {
  protected readonly transport: TcpStreamListener<SyslogConnection>;
  private readonly framingErrors;

  constructor(opts: SyslogSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    const tls = loadTlsServerOptions(opts.tls, `source ${ctx.id}`);
    this.transport = new TcpStreamListener<SyslogConnection>(this, {
      keepalive: opts.keepalive,
      maxConnections: opts.max_connections,
      maxPendingBytes: opts.max_pending_bytes,
      idleTimeoutMs: opts.idle_timeout,
      readTimeoutMs: opts.read_timeout,
      evictIdleAfterMs: opts.evict_idle_after,
      warn: (kind, fields, message) => this.warn(kind, fields, message),
      tls,
      label: 'syslog',
      unit: 'messages',
      partialHelp: 'Incomplete messages (unterminated octet-counted frames, or lines at shutdown or reset) dropped.',
      shutdownWarning: 'dropped incomplete syslog messages at shutdown',
      resetMessage: 'connection reset: incomplete message dropped',
      connection: (socket, listener) => new SyslogConnection(socket, listener, this),
      onDrop: (remoteAddress) =>
        this.warn(
          'max_connections',
          { host: peerHost(remoteAddress), max_connections: opts.max_connections },
          'connection refused: max_connections reached',
        ),
    });
    this.framingErrors = ctx.metrics.counter(
      'fluxo_syslog_framing_errors_total',
      'Connections closed because an octet-counted stream had a malformed MSG-LEN.',
    );
    if (tls) {
      this.transport.server.on('tlsClientError', (error: Error, socket: Socket) => {
        ctx.metrics.error('tls_handshake');
        this.warn('tls', { host: peerHost(socket.remoteAddress), err: error.message }, 'TLS handshake failed');
      });
    }
  }

  ended(conn: SyslogConnection, droppedBytes: number): void {
    if (droppedBytes === 0) return;
    this.transport.partialFrameDropped();
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
    this.transport.emit(conn, events);
  }
}

/** One TCP connection: its framer, paused while its last batch waits for the pipeline. */
class SyslogConnection extends StreamConnection {
  private readonly framer: SyslogFramer;

  constructor(
    socket: Socket,
    listener: ConnectionOwner,
    private readonly source: SyslogTcpSource,
  ) {
    super(socket, listener, peerHost(socket.remoteAddress));
    this.framer = new SyslogFramer({
      maxMessageBytes: source.opts.max_message_bytes,
      onOverlong: (prefix, bytes) => source.deadLetterOverlong(prefix, bytes, this.host),
      onError: (reason) => source.framingError(this, reason),
      onDetected: (framing) => source.ctx.logger.debug({ host: this.host, framing }, 'syslog framing detected'),
    });
  }

  discardPartial(): number {
    return this.framer.discardPartial();
  }

  protected onData(chunk: Buffer): void {
    const messages = this.framer.push(chunk);
    if (messages.length > 0) this.source.emitMessages(this, messages);
    // The messages before the error were handed over above; nothing after it can be framed.
    if (this.framer.broken) this.socket.destroy();
  }

  /** The peer closed its side: a newline-framed last line is complete even without its newline. */
  protected onEnd(): void {
    const { last, droppedBytes } = this.framer.end();
    if (last !== undefined) this.source.emitMessages(this, [last]);
    this.source.ended(this, droppedBytes);
  }
}
