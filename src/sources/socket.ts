import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { z } from 'zod';
import { LineSplitter } from '../codecs/lines.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import { type Event, EventIdGenerator } from '../core/event.ts';
import { address, size, splitAddress } from '../core/units.ts';

/**
 * Datagrams held while the pipeline is blocked. UDP has no way to push back: past this, datagrams are dropped
 * and counted, exactly as the kernel would drop them from a full receive buffer.
 */
const UDP_BACKLOG_BYTES = 8 * 1024 * 1024;

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
  max_connections: z
    .number()
    .int()
    .positive()
    .default(10_000)
    .describe(
      'TCP: most simultaneous connections. Extra connections are closed at once, logged and counted in ' +
        '`fluxo_socket_connections_rejected_total`.',
    ),
  receive_buffer_bytes: size()
    .optional()
    .describe('UDP: kernel receive buffer (SO_RCVBUF) to absorb bursts, e.g. `8MiB`; the system default when absent.'),
  keepalive: z
    .boolean()
    .default(true)
    .describe('TCP: send keep-alive probes on idle connections so vanished peers are noticed and their slot freed.'),
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

/** What TCP and UDP share: event stamping, overlong lines, and waiting for emits in flight. */
abstract class LineSocketSource implements Source {
  protected readonly ids = new EventIdGenerator();
  protected readonly host: string;
  protected readonly port: number;
  protected stopping = false;
  protected inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private stampMs = -1;
  private stampIso = '';
  private readonly tooLong;
  private readonly overlongReason: string;

  constructor(
    readonly opts: SocketSourceOptions,
    readonly ctx: SourceContext,
  ) {
    ({ host: this.host, port: this.port } = splitAddress(opts.address));
    this.tooLong = ctx.metrics.counter(
      'fluxo_socket_lines_too_long_total',
      'Lines longer than max_line_bytes, sent to the dead letter output.',
    );
    this.overlongReason = `line longer than max_line_bytes (${opts.max_line_bytes} bytes)`;
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;
  abstract endpoint(): string | undefined;

  /** Turns lines into events appended to `out`; empty lines carry nothing and are skipped. */
  protected appendEvents(lines: readonly string[], host: string, port: number, out: Event[]): void {
    if (lines.length === 0) return;
    const now = this.stamp();
    const timestamp = this.stampIso;
    const ids = this.ids;
    for (let i = 0; i < lines.length; i++) {
      const message = lines[i]!;
      if (message.length === 0) continue;
      out.push({ message, timestamp, host, port, source_type: 'socket', _id: ids.next(now) });
    }
  }

  protected event(message: string, host: string, port: number): Event {
    const now = this.stamp();
    return { message, timestamp: this.stampIso, host, port, source_type: 'socket', _id: this.ids.next(now) };
  }

  /** Date.now(), with its ISO string in stampIso formatted at most once per millisecond. */
  private stamp(): number {
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stampIso = new Date(now).toISOString();
    }
    return now;
  }

  protected deadLetterOverlong(prefix: string, originalBytes: number, host: string, port: number): void {
    this.tooLong.inc();
    const event = { ...this.event(prefix, host, port), _truncated: true, _original_bytes: originalBytes };
    this.ctx.deadLetter([event], this.overlongReason);
  }

  protected emitTracked(events: Event[], bytes: number, onSettled: () => void): void {
    this.inFlight++;
    this.ctx.emit(events, { bytes }).then(onSettled, (error: unknown) => {
      // Only a stopping pipeline rejects; the lines were never acknowledged, which plain TCP/UDP cannot do anyway.
      this.ctx.logger.debug({ err: String(error) }, 'emit rejected');
      onSettled();
    });
  }

  /** Call from every emit settlement, after any follow-up emit was started. */
  protected settled(): void {
    if (--this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  protected idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
    });
  }

  protected listenError(error: Error): FluxoError {
    return new FluxoError(
      'FLUXO_SOURCE_LISTEN',
      `source ${this.ctx.id}: cannot listen on ${this.opts.mode} ${this.opts.address}: ${error.message}`,
      { cause: error },
    );
  }
}

function formatEndpoint(mode: string, info: AddressInfo): string {
  return info.family === 'IPv6' ? `${mode} [${info.address}]:${info.port}` : `${mode} ${info.address}:${info.port}`;
}

class TcpLineSource extends LineSocketSource {
  readonly connections = new Set<TcpConnection>();
  private readonly server: Server;
  private readonly openConnections;
  private readonly rejected;
  private readonly partialDropped;
  private lastRejectLog = 0;

  constructor(opts: SocketSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    const m = ctx.metrics;
    this.openConnections = m.gauge('fluxo_socket_open_connections', 'Open TCP connections of a socket source.');
    this.rejected = m.counter(
      'fluxo_socket_connections_rejected_total',
      'TCP connections closed on arrival because max_connections were open.',
    );
    this.partialDropped = m.counter(
      'fluxo_socket_partial_lines_dropped_total',
      'Unterminated lines dropped at shutdown or when a connection was reset.',
    );
    this.server = createServer({ keepAlive: opts.keepalive, keepAliveInitialDelay: 60_000 }, (socket) =>
      this.accept(socket),
    );
    this.server.maxConnections = opts.max_connections;
    // Node closes connections over maxConnections itself and tells us with 'drop'.
    this.server.on('drop', (data) => this.onDrop(data?.remoteAddress, data?.remotePort));
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, 'socket source server error'));
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
    return info && typeof info === 'object' ? formatEndpoint('tcp', info) : undefined;
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
      if (conn.splitter.discardPartial() > 0) partial++;
      conn.socket.destroy();
    }
    if (partial > 0) {
      this.partialDropped.inc(partial);
      this.ctx.logger.warn({ partial_lines: partial }, 'dropped unterminated lines at shutdown');
    }
    await closed;
    await this.idle();
  }

  accept(socket: Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const conn = new TcpConnection(socket, this);
    this.connections.add(conn);
    this.openConnections.inc();
  }

  closed(conn: TcpConnection): void {
    if (!this.connections.delete(conn)) return;
    this.openConnections.dec();
    if (!conn.ended && !this.stopping && conn.splitter.discardPartial() > 0) {
      this.partialDropped.inc();
      this.ctx.logger.debug({ host: conn.host, port: conn.port }, 'connection reset: unterminated line dropped');
    }
  }

  emitLines(conn: TcpConnection, lines: readonly string[]): void {
    const events: Event[] = [];
    this.appendEvents(lines, conn.host, conn.port, events);
    if (events.length === 0) return;
    const bytes = conn.unreportedBytes;
    conn.unreportedBytes = 0;
    conn.inFlight++;
    conn.socket.pause();
    this.emitTracked(events, bytes, conn.onEmitSettled);
  }

  emitSettled(conn: TcpConnection): void {
    if (--conn.inFlight === 0 && !this.stopping && !conn.socket.destroyed) conn.socket.resume();
    this.settled();
  }

  overlong(conn: TcpConnection, prefix: string, bytes: number): void {
    this.deadLetterOverlong(prefix, bytes, conn.host, conn.port);
  }

  private onDrop(host: string | undefined, port: number | undefined): void {
    this.rejected.inc();
    const now = Date.now();
    // One warning per 10 s at most: a reconnect storm must not flood the log.
    if (now - this.lastRejectLog >= 10_000) {
      this.lastRejectLog = now;
      this.ctx.logger.warn(
        { host, port, max_connections: this.opts.max_connections },
        'connection refused: max_connections reached',
      );
    }
  }
}

/** One TCP connection: its own line splitter, paused while its last batch waits for the pipeline. */
class TcpConnection {
  readonly splitter: LineSplitter;
  readonly host: string;
  readonly port: number;
  /** Wire bytes received since the last emit, reported with the next one. */
  unreportedBytes = 0;
  inFlight = 0;
  ended = false;
  readonly onEmitSettled = () => this.source.emitSettled(this);

  constructor(
    readonly socket: Socket,
    private readonly source: TcpLineSource,
  ) {
    this.host = socket.remoteAddress ?? '';
    this.port = socket.remotePort ?? 0;
    this.splitter = new LineSplitter({
      maxLineBytes: source.opts.max_line_bytes,
      onOverlong: (prefix, bytes) => source.overlong(this, prefix, bytes),
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => source.closed(this));
    socket.on('error', (error) => source.ctx.logger.debug({ err: error.message, host: this.host }, 'connection error'));
  }

  private onData(chunk: Buffer): void {
    this.unreportedBytes += chunk.length;
    const lines = this.splitter.push(chunk);
    if (lines.length > 0) this.source.emitLines(this, lines);
  }

  /** The peer closed its side: its last line is complete even without a newline. */
  private onEnd(): void {
    this.ended = true;
    const last = this.splitter.flush();
    if (last !== undefined) this.source.emitLines(this, [last]);
  }
}

class UdpLineSource extends LineSocketSource {
  private readonly socket: UdpSocket;
  private readonly splitter: LineSplitter;
  private batch: Event[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private peerHost = '';
  private peerPort = 0;
  private readonly whileBlocked;
  private readonly dropped;
  private readonly flushBound = () => this.flush();
  /** One batch in flight at a time; what arrives meanwhile waits in `batch`. */
  private emitting = false;
  private readonly onEmitSettled = () => {
    this.emitting = false;
    this.flush();
    this.settled();
  };

  constructor(opts: SocketSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    this.whileBlocked = ctx.metrics.counter(
      'fluxo_socket_udp_datagrams_while_blocked_total',
      'UDP datagrams that arrived while the previous batch waited for the pipeline (held, up to 8 MiB).',
    );
    this.dropped = ctx.metrics.counter(
      'fluxo_socket_udp_datagrams_dropped_total',
      'UDP datagrams dropped because the pipeline was blocked and 8 MiB were already held.',
    );
    // One splitter for all datagrams: each datagram is framed on its own and flushed, so no state carries over.
    this.splitter = new LineSplitter({
      maxLineBytes: opts.max_line_bytes,
      onOverlong: (prefix, bytes) => this.deadLetterOverlong(prefix, bytes, this.peerHost, this.peerPort),
    });
    this.socket = createSocket({
      type: this.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: opts.receive_buffer_bytes,
    });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(this.listenError(error));
      this.socket.once('error', onError);
      this.socket.bind({ address: this.host, port: this.port }, () => {
        this.socket.off('error', onError);
        this.socket.on('error', (error) => this.ctx.logger.error({ err: error.message }, 'udp socket error'));
        resolve();
      });
    });
  }

  endpoint(): string | undefined {
    try {
      return formatEndpoint('udp', this.socket.address());
    } catch {
      return undefined; // not bound
    }
  }

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      await new Promise<void>((resolve) => {
        try {
          this.socket.close(() => resolve());
        } catch {
          resolve(); // never bound or already closed
        }
      });
      this.flush();
    }
    await this.idle();
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.stopping) return;
    if (this.emitting) {
      this.whileBlocked.inc();
      if (this.batchBytes + msg.length > UDP_BACKLOG_BYTES) {
        this.dropped.inc();
        return;
      }
    }
    this.peerHost = rinfo.address;
    this.peerPort = rinfo.port;
    this.appendEvents(this.splitter.push(msg), rinfo.address, rinfo.port, this.batch);
    // A datagram ends its last line, newline or not (syslog over UDP usually sends none).
    const last = this.splitter.flush();
    if (last !== undefined && last.length > 0) this.batch.push(this.event(last, rinfo.address, rinfo.port));
    this.batchBytes += msg.length;
    if (!this.flushScheduled && !this.emitting) {
      this.flushScheduled = true;
      // Everything that arrives in this event-loop turn goes out as one batch.
      setImmediate(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.emitting || this.batch.length === 0) return;
    const events = this.batch;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.emitting = true;
    this.emitTracked(events, bytes, this.onEmitSettled);
  }
}
