import type { RemoteInfo } from 'node:dgram';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { LineSplitter } from '../codecs/lines.ts';
import { defineSource, type SourceContext } from '../core/component.ts';
import type { Event } from '../core/event.ts';
import { NetSourceBase } from '../core/net/net-source-base.ts';
import {
  connectionDeadlineOptions,
  keepaliveOption,
  maxConnectionsOption,
  maxPendingBytesOption,
  receiveBufferBytesOption,
} from '../core/net/options.ts';
import { type ConnectionOwner, StreamConnection, TcpStreamListener } from '../core/net/tcp-stream-listener.ts';
import { UdpBatchListener } from '../core/net/udp-batch-listener.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { address, size } from '../core/units.ts';

const options = z.object({
  mode: z
    .enum(['tcp', 'udp'])
    .default('tcp')
    .describe(
      'Transport. `tcp`: newline-framed lines over any number of connections; a blocked pipeline stops reading, ' +
        'so backpressure reaches the sender. `udp`: each datagram holds one or more lines; best-effort, ' +
        'datagrams are lost when the pipeline cannot keep up.',
    ),
  address: address().describe('Address to listen on, `host:port`; port 0 picks a free port (see the start-up banner).'),
  max_line_bytes: size()
    .default(100 * 1024)
    .describe(
      'Longest accepted line in bytes (`\\n` excluded). A longer line goes to the dead letter output with its first KiB ' +
        'and its size, and is counted in `fluxo_socket_lines_too_long_total`.',
    ),
  max_connections: maxConnectionsOption(
    'socket',
    'TCP only. Plain TCP has no acknowledgements: lines a sender writes before it notices the close are lost ' +
      'unless it checks the connection and resends.',
  ),
  max_pending_bytes: maxPendingBytesOption('socket', 'lines'),
  receive_buffer_bytes: receiveBufferBytesOption(),
  keepalive: keepaliveOption(),
  ...connectionDeadlineOptions(30_000, 'line'),
});

export type SocketSourceOptions = z.infer<typeof options>;

export const socketSource = defineSource({
  kind: 'source',
  type: 'socket',
  description: 'Receives newline-delimited lines over TCP or UDP.',
  options,
  example: [
    'sources:',
    '  app_lines:',
    '    type: socket',
    '    mode: tcp',
    '    address: 127.0.0.1:9000',
    '    max_line_bytes: 64KiB',
  ].join('\n'),
  build: (opts, ctx) => (opts.mode === 'udp' ? new UdpLineSource(opts, ctx) : new TcpLineSource(opts, ctx)),
});

/** What TCP and UDP share: lines become events, overlong lines go to the dead letter output. */
abstract class LineSocketSource extends NetSourceBase<SocketSourceOptions> {
  private readonly tooLong;
  private readonly overlongReason: string;

  constructor(opts: SocketSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    this.tooLong = ctx.metrics.counter(
      'fluxo_socket_lines_too_long_total',
      'Lines longer than max_line_bytes, sent to the dead letter output.',
    );
    this.overlongReason = `line longer than max_line_bytes (${opts.max_line_bytes} bytes)`;
  }

  /** Turns lines into events appended to `out`; empty lines carry nothing and are skipped. */
  protected appendEvents(lines: readonly string[], host: string, port: number, out: Event[]): void {
    if (lines.length === 0) return;
    const now = this.clock.now();
    const timestamp = this.clock.iso;
    const ids = this.ids;
    for (let i = 0; i < lines.length; i++) {
      const message = lines[i]!;
      if (message.length === 0) continue;
      out.push({ message, timestamp, host, port, source_type: 'socket', _id: ids.next(now) });
    }
  }

  protected event(message: string, host: string, port: number): Event {
    const now = this.clock.now();
    return { message, timestamp: this.clock.iso, host, port, source_type: 'socket', _id: this.ids.next(now) };
  }

  deadLetterOverlong(prefix: string, originalBytes: number, host: string, port: number): void {
    this.tooLong.inc();
    const event = { ...this.event(prefix, host, port), _truncated: true, _original_bytes: originalBytes };
    this.ctx.deadLetter([event], this.overlongReason);
  }
}

class TcpLineSource extends LineSocketSource {
  protected readonly transport: TcpStreamListener<TcpConnection>;
  private readonly warnings: RateLimitedWarnings;

  constructor(opts: SocketSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    this.warnings = new RateLimitedWarnings(ctx.logger);
    this.transport = new TcpStreamListener<TcpConnection>(this, {
      keepalive: opts.keepalive,
      maxConnections: opts.max_connections,
      maxPendingBytes: opts.max_pending_bytes,
      idleTimeoutMs: opts.idle_timeout,
      readTimeoutMs: opts.read_timeout,
      evictIdleAfterMs: opts.evict_idle_after,
      warn: (kind, fields, message) => this.warnings.warn(kind, fields, message),
      label: 'socket',
      unit: 'lines',
      partialHelp: 'Unterminated lines dropped at shutdown or when a connection was reset.',
      shutdownWarning: 'dropped unterminated lines at shutdown',
      resetMessage: 'connection reset: unterminated line dropped',
      connection: (socket, listener) => new TcpConnection(socket, listener, this),
      onDrop: (host, port) => this.onDrop(host, port),
    });
  }

  emitLines(conn: TcpConnection, lines: readonly string[]): void {
    const events: Event[] = [];
    this.appendEvents(lines, conn.host, conn.port, events);
    this.transport.emit(conn, events);
  }

  private onDrop(host: string | undefined, port: number | undefined): void {
    // Rate-limited: a reconnect storm must not flood the log.
    this.warnings.warn(
      'max_connections',
      { host, port, max_connections: this.opts.max_connections },
      'connection refused: max_connections reached',
    );
  }
}

/** One TCP connection: its own line splitter, paused while its last batch waits for the pipeline. */
class TcpConnection extends StreamConnection {
  private readonly splitter: LineSplitter;
  declare readonly port: number;

  constructor(
    socket: Socket,
    listener: ConnectionOwner,
    private readonly source: TcpLineSource,
  ) {
    super(socket, listener, socket.remoteAddress ?? '', socket.remotePort ?? 0);
    this.splitter = new LineSplitter({
      maxLineBytes: source.opts.max_line_bytes,
      onOverlong: (prefix, bytes) => source.deadLetterOverlong(prefix, bytes, this.host, this.port),
    });
  }

  discardPartial(): number {
    return this.splitter.discardPartial();
  }

  protected onData(chunk: Buffer): void {
    const lines = this.splitter.push(chunk);
    if (lines.length > 0) this.source.emitLines(this, lines);
  }

  /** The peer closed its side: its last line is complete even without a newline. */
  protected onEnd(): void {
    const last = this.splitter.flush();
    if (last !== undefined) this.source.emitLines(this, [last]);
  }
}

class UdpLineSource extends LineSocketSource {
  protected readonly transport: UdpBatchListener;
  private readonly splitter: LineSplitter;
  private peerHost = '';
  private peerPort = 0;

  constructor(opts: SocketSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    // One splitter for all datagrams: each datagram is framed on its own and flushed, so no state carries over.
    this.splitter = new LineSplitter({
      maxLineBytes: opts.max_line_bytes,
      onOverlong: (prefix, bytes) => this.deadLetterOverlong(prefix, bytes, this.peerHost, this.peerPort),
    });
    this.transport = new UdpBatchListener(this, {
      receiveBufferBytes: opts.receive_buffer_bytes,
      metricPrefix: 'fluxo_socket',
      decode: (msg, rinfo, out) => this.decode(msg, rinfo, out),
    });
  }

  private decode(msg: Buffer, rinfo: RemoteInfo, out: Event[]): boolean {
    this.peerHost = rinfo.address;
    this.peerPort = rinfo.port;
    this.appendEvents(this.splitter.push(msg), rinfo.address, rinfo.port, out);
    // A datagram ends its last line, newline or not (syslog over UDP usually sends none).
    const last = this.splitter.flush();
    if (last !== undefined && last.length > 0) out.push(this.event(last, rinfo.address, rinfo.port));
    return true;
  }
}
