import { createServer, type Server, type Socket } from 'node:net';
import { SyslogParser, syslogEvent } from '../../codecs/syslog.ts';
import { loadTlsServerOptions } from '../../codecs/tls.ts';
import type { AckStatus } from '../../core/ack.ts';
import type { Source, SourceContext } from '../../core/component.ts';
import { type Event, EventIdGenerator, ReceiptClock } from '../../core/event.ts';
import type { LocalCounter, LocalGauge } from '../../core/metrics.ts';
import { nodeTls } from '../../core/net/builtins.ts';
import { ConnectionDeadlines } from '../../core/net/connection-deadlines.ts';
import { boundHostPort, listenServer, peerHost } from '../../core/net/listen.ts';
import { ACCEPT_HEADROOM } from '../../core/net/tcp-stream-listener.ts';
import { RateLimitedWarnings } from '../../core/rate-limited-warnings.ts';
import { splitAddress } from '../../core/units.ts';
import type { RelpSourceOptions } from '../relp.ts';
import { RelpConnection } from './connection.ts';

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;

/**
 * The RELP listener: accepts connections (at most max_connections), turns `syslog` frames into events with the
 * syslog codec, and counts and reports what went wrong (rate-limited). Each connection (connection.ts) answers
 * its frames once the pipeline settled their batch.
 */
export class RelpSource implements Source {
  stopping = false;
  readonly warnings: RateLimitedWarnings;
  readonly metrics: {
    open: LocalGauge;
    rejected: LocalCounter;
    protocolErrors: LocalCounter;
    parseFailures: LocalCounter;
    tooLong: LocalCounter;
    answered: LocalCounter;
    failedBatches: LocalCounter;
    partial: LocalCounter;
  };
  /** Idle and read timeouts of the connections, and eviction of the longest-idle one at max_connections. */
  readonly deadlines: ConnectionDeadlines<RelpConnection>;
  private readonly server: Server;
  private readonly scheme: 'tcp' | 'tls';
  private readonly connections = new Set<RelpConnection>();
  private readonly parser = new SyslogParser();
  private readonly ids = new EventIdGenerator();
  private readonly overlongReason: string;
  private readonly clock = new ReceiptClock();
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly opts: RelpSourceOptions,
    readonly ctx: SourceContext,
  ) {
    this.warnings = new RateLimitedWarnings(ctx.logger);
    const m = ctx.metrics;
    this.metrics = {
      open: m.gauge('fluxo_relp_open_connections', 'Open RELP connections.'),
      rejected: m.counter(
        'fluxo_relp_connections_rejected_total',
        'RELP connections closed on arrival because max_connections were open.',
      ),
      protocolErrors: m.counter(
        'fluxo_relp_protocol_errors_total',
        'RELP connections closed because of a malformed frame or a command out of order.',
      ),
      parseFailures: m.counter(
        'fluxo_relp_parse_failures_total',
        'RELP syslog messages that were not RFC 5424 or RFC 3164: kept whole in `message`, without syslog fields.',
      ),
      tooLong: m.counter(
        'fluxo_relp_messages_too_long_total',
        'RELP messages longer than max_message_bytes, sent to the dead letter output.',
      ),
      answered: m.counter('fluxo_relp_acknowledged_messages_total', 'RELP syslog frames answered 200 OK.'),
      failedBatches: m.counter(
        'fluxo_relp_unacknowledged_batches_total',
        'Batches not delivered (the pipeline stopped first): their frames were not answered and the connection was ' +
          'closed so the sender resends them.',
      ),
      partial: m.counter(
        'fluxo_relp_partial_frames_dropped_total',
        'Unfinished frames dropped when their connection closed (the sender resends what was not answered).',
      ),
    };
    this.deadlines = new ConnectionDeadlines<RelpConnection>(
      this.connections,
      {
        idleTimeoutMs: opts.idle_timeout,
        readTimeoutMs: opts.read_timeout,
        evictIdleAfterMs: opts.evict_idle_after,
        label: 'relp',
        warn: (kind, fields, message) => this.warn(kind, fields, message),
      },
      m,
    );
    this.overlongReason = `RELP message longer than max_message_bytes (${opts.max_message_bytes} bytes)`;
    const tls = loadTlsServerOptions(opts.tls, `source ${ctx.id}`);
    // Half-open: a client that sends `close` or ends its side still gets the answers of what it sent.
    const netOptions = { allowHalfOpen: true, keepAlive: opts.keepalive, keepAliveInitialDelay: 60_000 };
    const onConnection = (socket: Socket) => this.accept(socket);
    if (tls) {
      this.scheme = 'tls';
      this.server = nodeTls().createServer({ ...netOptions, ...tls }, onConnection);
      this.server.on('tlsClientError', (error: Error, socket: Socket) => {
        ctx.metrics.error('tls_handshake');
        this.warn('tls', { host: peerHost(socket.remoteAddress), err: error.message }, 'TLS handshake failed');
      });
    } else {
      this.scheme = 'tcp';
      this.server = createServer(netOptions, onConnection);
    }
    // The source enforces max_connections (evicting idle connections); Node only caps handshakes and closing sockets.
    this.server.maxConnections = opts.max_connections + ACCEPT_HEADROOM;
    this.server.on('drop', (data) => this.refuse(data?.remoteAddress));
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, 'relp source server error'));
  }

  start(): Promise<void> {
    const { host, port } = splitAddress(this.opts.address);
    this.deadlines.start();
    return listenServer(this.server, host, port, this.ctx.id, this.opts.address);
  }

  endpoint(): string | undefined {
    const at = boundHostPort(this.server);
    return at === undefined ? undefined : `${this.scheme} ${at}`;
  }

  /**
   * Stops accepting and reading. Connections answer what the pipeline settles, then send `serverclose` and close;
   * resolves once every batch already read was accepted (the answers follow as sinks deliver).
   */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.deadlines.stop();
      // Not server.close(callback): it would wait for connections, which wait for acknowledgements that settle
      // only after the sources stopped.
      if (this.server.listening) this.server.close();
      let partial = 0;
      for (const conn of this.connections) if (conn.stop()) partial++;
      if (partial > 0) {
        this.metrics.partial.inc(partial);
        this.ctx.logger.warn({ partial_frames: partial }, 'dropped unfinished RELP frames at shutdown');
      }
    }
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Hands a batch to the pipeline; resolves once accepted (never rejects). `onSettled` runs exactly once. */
  emit(events: Event[], bytes: number, onSettled: (status: AckStatus) => void): Promise<void> {
    this.inFlight++;
    return this.ctx.emit(events, { bytes, onSettled }).then(
      () => this.emitDone(),
      (error: unknown) => {
        // Only a stopping pipeline rejects; the batch was not taken, so it is not acknowledged.
        this.ctx.logger.debug({ err: String(error) }, 'relp: emit rejected');
        onSettled('failed');
        this.emitDone();
      },
    );
  }

  private emitDone(): void {
    if (--this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** The event of one `syslog` frame's DATA, parsed as the syslog source does. */
  toEvent(data: Buffer, host: string): Event {
    let end = data.length;
    // omrelp sends the message without a trailer; templates that add one must not leave it in `message`.
    while (end > 0 && (data[end - 1] === LF || data[end - 1] === CR || data[end - 1] === NUL)) end--;
    const line = data.toString('utf8', 0, end);
    const now = this.clock.now();
    const m = line.length === 0 ? undefined : this.parser.parse(line, now);
    if (m === undefined) {
      this.metrics.parseFailures.inc();
      this.warn(
        'parse',
        { host, reason: line.length === 0 ? 'empty message' : this.parser.error, sample: line.slice(0, 200) },
        'not a syslog message: kept raw',
      );
      return { message: line, timestamp: this.clock.iso, host, source_type: 'relp', _id: this.ids.next(now) };
    }
    return syslogEvent(m, this.clock.iso, host, 'relp', this.ids.next(now));
  }

  deadLetterOverlong(prefix: Buffer, originalBytes: number, host: string): void {
    this.metrics.tooLong.inc();
    const now = this.clock.now();
    this.ctx.deadLetter(
      [
        {
          message: prefix.toString('utf8'),
          timestamp: this.clock.iso,
          host,
          source_type: 'relp',
          _id: this.ids.next(now),
          _truncated: true,
          _original_bytes: originalBytes,
        },
      ],
      this.overlongReason,
    );
    this.warn(
      'overlong',
      { host, bytes: originalBytes, max_message_bytes: this.opts.max_message_bytes },
      'RELP message too long: sent to the dead letter output',
    );
  }

  protocolError(host: string, reason: string): void {
    this.metrics.protocolErrors.inc();
    this.warn('protocol', { host, reason }, 'RELP protocol error: closing the connection');
  }

  /** A warning of kind `kind` at most once per 10 s, with how many were suppressed since the last one. */
  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    this.warnings.warn(kind, fields, message);
  }

  closed(conn: RelpConnection): void {
    if (this.connections.delete(conn)) this.metrics.open.dec();
  }

  private accept(socket: Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.opts.max_connections && !this.deadlines.evictForNew()) {
      socket.destroy();
      this.refuse(socket.remoteAddress);
      return;
    }
    const conn = new RelpConnection(socket, this, peerHost(socket.remoteAddress));
    this.deadlines.opened(conn);
    this.connections.add(conn);
    this.metrics.open.inc();
  }

  private refuse(remoteAddress: string | undefined): void {
    this.metrics.rejected.inc();
    this.warn(
      'max_connections',
      { host: peerHost(remoteAddress), max_connections: this.opts.max_connections },
      'connection refused: max_connections reached',
    );
  }
}
