import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { z } from 'zod';
import { loadTlsServerOptions, tlsServerOption } from '../codecs/tls.ts';
import type { AckStatus } from '../core/ack.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { type Event, EventIdGenerator, HOSTNAME } from '../core/event.ts';
import { nodeTls } from '../core/net/builtins.ts';
import { ConnectionDeadlines } from '../core/net/connection-deadlines.ts';
import { listenServer } from '../core/net/listen.ts';
import { connectionDeadlineOptions, maxConnectionsOption } from '../core/net/options.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { address, size, splitAddress } from '../core/units.ts';
import { ForwardConnection, type ForwardServer, type ServerAuth } from './forward/connection.ts';
import { EntryConverter } from './forward/events.ts';

const options = z.object({
  address: address()
    .default('127.0.0.1:24224')
    .describe(
      'Address to listen on, `host:port` (TCP, and UDP on the same port for heartbeats); port 0 picks a free port.',
    ),
  max_connections: maxConnectionsOption(
    'forward',
    'Fluent Bit, Fluentd and the Fluxo forward sink see a closed connection and retry the chunk; with ' +
      '`require_ack_response` (the Fluxo sink always) nothing is lost, without it a chunk written before the ' +
      'close is.',
  ),
  max_buffered_bytes: size()
    .default(256 * 1024 * 1024)
    .describe(
      'Most bytes held across all connections for messages not yet complete or not yet decoded. A connection ' +
        'that would pass it is closed without an ack (its sender retries), logged rate-limited and counted in ' +
        '`fluxo_forward_buffer_limit_closes_total`; without it, each of max_connections could hold max_message_bytes.',
    ),
  max_message_bytes: size()
    .default(64 * 1024 * 1024)
    .describe(
      'Largest forward message, and largest CompressedPackedForward payload once decompressed. A larger one closes ' +
        'its connection with a logged reason (the sender retries or drops it; Fluentd chunks are 8 MiB by default).',
    ),
  max_entries_per_message: z
    .number()
    .int()
    .positive()
    .default(500_000)
    .describe(
      'Most entries (events) one message may hold, PackedForward and CompressedPackedForward included, checked ' +
        'while decoding. A message with more closes its connection without an ack (the sender keeps it), logged and ' +
        'counted in `fluxo_forward_messages_over_limit_total`. A Fluentd 8 MiB chunk of 16-byte records is 500,000 ' +
        'entries; 3 wire bytes can be an empty entry, so this bounds the memory one message can take.',
    ),
  auth: z
    .object({
      shared_key: z
        .string()
        .min(1)
        .describe('Shared key: clients must prove they know it (HELO/PING/PONG with SHA-512 digests).'),
      hostname: z.string().min(1).default(HOSTNAME).describe("This server's name in PONG (Fluentd's self_hostname)."),
      users: z
        .array(
          z.object({
            username: z.string().min(1).describe('User name.'),
            password: z.string().describe('Password.'),
          }),
        )
        .optional()
        .describe('When set, clients must also send one of these user names with its password (user_auth).'),
    })
    .optional()
    .describe(
      'Shared-key authentication (Fluentd `<security>`). Absent: any client may send. A client with a wrong key or ' +
        'user is answered PONG false with the reason and disconnected; both are logged and counted.',
    ),
  tls: tlsServerOption(),
  heartbeat_udp: z
    .boolean()
    .default(true)
    .describe(
      'Also listen on UDP on the same port and answer each datagram with one zero byte: the heartbeat of ' +
        "Fluentd's `heartbeat_type udp`. TCP heartbeats (connect and close) need nothing special.",
    ),
  keepalive: z.boolean().default(true).describe('Send TCP keep-alive probes, so vanished peers free their slot.'),
  // 60 s for a message: a Fluentd 8 MiB chunk takes 8 s at 1 MB/s; a connection waiting for acks is never timed out.
  ...connectionDeadlineOptions(60_000, 'message'),
});

export type ForwardSourceOptions = z.infer<typeof options>;

export const forwardSource = defineSource({
  kind: 'source',
  type: 'forward',
  description:
    'Receives the Fluentd Forward Protocol v1 (Fluent Bit, Fluentd, Fluxo forward sink, Fluentd loggers), acknowledging chunks once delivered.',
  options,
  example: [
    "# Each entry [time, record] becomes one event: the record's keys at the top level; `message` is the record's",
    '# `message`, else its `log`; `tag` (the message tag), `timestamp` (the entry time, ISO-8601 ms) and',
    '# `source_type: forward` are set by the source; `host` and `_id` come from the record when it has them (an upstream',
    '# Fluxo), else the peer address and `<chunk>:<index>` (a UUIDv7 when the sender asked for no ack).',
    'sources:',
    '  agents:',
    '    type: forward',
    '    address: 0.0.0.0:24224',
    '    auth: { shared_key: "${FORWARD_SHARED_KEY}" }',
    '    tls: { crt_file: /etc/fluxo/server.crt, key_file: /etc/fluxo/server.key }',
  ].join('\n'),
  build: (opts, ctx) => new ForwardSource(opts, ctx),
});

/**
 * The Forward Protocol server. Every entry becomes an event (see forward/events.ts for the mapping); a message
 * with a `chunk` option is acknowledged (`{ack: chunk}`) only when the pipeline settled its events as delivered,
 * so a sender that waits for acks (Fluentd `require_ack_response`, Fluent Bit `Require_ack_response`) loses
 * nothing when Fluxo stops or dies before delivery: it resends.
 */
export class ForwardSource implements Source, ForwardServer {
  readonly maxMessageBytes: number;
  readonly maxEntriesPerMessage: number;
  readonly auth: ServerAuth | undefined;
  readonly converter: EntryConverter;
  readonly deadlines: ConnectionDeadlines<ForwardConnection>;
  stopping = false;
  private heldBytes = 0;
  private readonly server: Server;
  private udp: UdpSocket | undefined;
  private readonly host: string;
  private readonly port: number;
  private readonly connections = new Set<ForwardConnection>();
  private inFlight = 0;
  private turns = 0;
  private readonly turnWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private readonly warnings: RateLimitedWarnings;
  private readonly metrics;

  constructor(
    private readonly opts: ForwardSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    ({ host: this.host, port: this.port } = splitAddress(opts.address));
    this.warnings = new RateLimitedWarnings(ctx.logger);
    this.maxMessageBytes = opts.max_message_bytes;
    this.maxEntriesPerMessage = opts.max_entries_per_message;
    this.converter = new EntryConverter(new EventIdGenerator());
    this.auth = opts.auth && {
      sharedKey: opts.auth.shared_key,
      hostname: opts.auth.hostname,
      users: opts.auth.users && new Map(opts.auth.users.map((u) => [u.username, u.password])),
    };
    const m = ctx.metrics;
    this.metrics = {
      open: m.gauge('fluxo_forward_open_connections', 'Open connections of a forward source.'),
      rejected: m.counter(
        'fluxo_forward_connections_rejected_total',
        'Connections closed on arrival because max_connections were open.',
      ),
      protocolErrors: m.counter(
        'fluxo_forward_protocol_errors_total',
        'Connections closed for a malformed, truncated or oversized message.',
      ),
      overLimit: m.counter(
        'fluxo_forward_messages_over_limit_total',
        'Messages refused (connection closed, no ack) for exceeding max_message_bytes (on the wire or decompressed) or max_entries_per_message.',
      ),
      authFailures: m.counter(
        'fluxo_forward_auth_failures_total',
        'Connections rejected by the shared-key or user authentication.',
      ),
      acks: m.counter('fluxo_forward_acks_sent_total', 'Chunks acknowledged to senders after delivery.'),
      sizeMismatch: m.counter(
        'fluxo_forward_size_mismatch_total',
        'Messages whose `size` option differs from the number of entries they hold.',
      ),
      heartbeats: m.counter('fluxo_forward_udp_heartbeats_total', 'UDP heartbeats answered.'),
      bufferLimit: m.counter(
        'fluxo_forward_buffer_limit_closes_total',
        'Connections closed because their unfinished message would have passed max_buffered_bytes across connections.',
      ),
      held: m.gauge(
        'fluxo_forward_buffered_bytes',
        'Bytes held for unfinished or undecoded messages, all connections.',
      ),
    };
    this.deadlines = new ConnectionDeadlines<ForwardConnection>(
      this.connections,
      {
        idleTimeoutMs: opts.idle_timeout,
        readTimeoutMs: opts.read_timeout,
        evictIdleAfterMs: opts.evict_idle_after,
        label: 'forward',
        warn: (kind, fields, message) => this.warnings.warn(kind, fields, message),
      },
      m,
    );
    const onConnection = (socket: Socket) => this.accept(socket);
    const tls = loadTlsServerOptions(opts.tls, `source ${ctx.id}`);
    const serverOptions = { allowHalfOpen: true, keepAlive: opts.keepalive, keepAliveInitialDelay: 60_000 };
    this.server = tls
      ? nodeTls().createServer({ ...tls, ...serverOptions }, onConnection)
      : createTcpServer(serverOptions, onConnection);
    // The source enforces max_connections (evicting idle connections); Node only caps handshakes and closing sockets.
    this.server.maxConnections = opts.max_connections + ACCEPT_HEADROOM;
    this.server.on('drop', (data) => this.onDrop(data?.remoteAddress, data?.remotePort));
    this.server.on('tlsClientError', (error: Error, socket: Socket) =>
      ctx.logger.warn({ err: error.message, host: socket.remoteAddress }, 'forward: TLS handshake failed'),
    );
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, 'forward source server error'));
  }

  async start(): Promise<void> {
    await listenServer(this.server, this.host, this.port, this.ctx.id, `tcp ${this.opts.address}`);
    this.deadlines.start();
    if (this.opts.heartbeat_udp) await this.startUdp((this.server.address() as AddressInfo).port);
  }

  /** UDP heartbeats are a convenience: failing to bind them is logged, not fatal. */
  private startUdp(port: number): Promise<void> {
    const udp = createSocket({ type: this.host.includes(':') ? 'udp6' : 'udp4' });
    udp.on('message', (_msg, rinfo) => {
      if (this.stopping) return;
      this.metrics.heartbeats.inc();
      udp.send(HEARTBEAT_REPLY, rinfo.port, rinfo.address);
    });
    return new Promise((resolve) => {
      udp.once('error', (error) => {
        this.ctx.logger.warn(
          { err: error.message, address: `${this.host}:${port}` },
          'forward: cannot listen for UDP heartbeats; TCP works',
        );
        resolve();
      });
      udp.bind({ address: this.host, port }, () => {
        udp.removeAllListeners('error');
        udp.on('error', (error) => this.ctx.logger.warn({ err: error.message }, 'forward: UDP heartbeat socket error'));
        this.udp = udp;
        resolve();
      });
    });
  }

  endpoint(): string | undefined {
    const info = this.server.address();
    if (!info || typeof info !== 'object') return undefined;
    const hostPort = info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
    return `${this.opts.tls?.enabled ? 'tls' : 'tcp'} ${hostPort}${this.udp ? ' (udp heartbeat)' : ''}`;
  }

  /**
   * Stops accepting and reading. Connections stay open until the acks of what they already handed over are sent
   * (or the pipeline fails those batches), so a graceful stop causes no resends.
   */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.deadlines.stop();
      // The listening socket closes at once; close()'s callback would wait for every connection, and connections
      // wait for the acks of their batches, which settle only after the sources stopped.
      if (this.server.listening) this.server.close();
      for (const conn of this.connections) conn.stop();
      if (this.udp) {
        const udp = this.udp;
        await new Promise<void>((resolve) => udp.close(() => resolve()));
      }
    }
    await this.idle();
  }

  private accept(socket: Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.opts.max_connections && !this.deadlines.evictForNew()) {
      socket.destroy();
      this.onDrop(socket.remoteAddress, socket.remotePort);
      return;
    }
    const conn = new ForwardConnection(socket, this);
    this.deadlines.opened(conn);
    this.connections.add(conn);
    this.metrics.open.inc();
  }

  hold(bytes: number): boolean {
    if (this.heldBytes + bytes > this.opts.max_buffered_bytes) return false;
    this.heldBytes += bytes;
    this.metrics.held.set(this.heldBytes);
    return true;
  }

  unhold(bytes: number): void {
    if (bytes === 0) return;
    this.heldBytes -= bytes;
    this.metrics.held.set(this.heldBytes);
  }

  closed(conn: ForwardConnection): void {
    if (this.connections.delete(conn)) this.metrics.open.dec();
  }

  emit(events: Event[], bytes: number, onSettled: ((status: AckStatus) => void) | undefined): Promise<void> {
    this.inFlight++;
    return this.ctx.emit(events, { bytes, onSettled }).then(
      () => this.settled(),
      (error: unknown) => {
        // Only a stopping pipeline rejects; the batch was not taken, so it is not acknowledged.
        this.ctx.logger.debug({ err: String(error) }, 'forward: emit rejected');
        onSettled?.('failed');
        this.settled();
      },
    );
  }

  admit(): Promise<void> | undefined {
    if (this.turns < DECODE_TURNS) {
      this.turns++;
      return undefined;
    }
    return new Promise((resolve) => this.turnWaiters.push(resolve));
  }

  release(): void {
    // The turn passes straight to the next waiter, in arrival order.
    const next = this.turnWaiters.shift();
    if (next) next();
    else this.turns--;
  }

  deadLetter(events: Event[], reason: string): void {
    this.ctx.deadLetter(events, reason);
  }

  protocolError(conn: ForwardConnection, reason: string, kind: 'protocol' | 'auth', limit?: string): void {
    (kind === 'auth' ? this.metrics.authFailures : this.metrics.protocolErrors).inc();
    if (limit === 'max_buffered_bytes') this.metrics.bufferLimit.inc();
    else if (limit !== undefined) this.metrics.overLimit.inc();
    const fields = { host: conn.host, port: conn.port, reason };
    if (limit === undefined) {
      this.ctx.logger.warn(fields, `forward: connection closed: ${reason}`);
      return;
    }
    // Rate-limited per limit: a hostile sender reconnecting in a loop must not flood the log.
    this.warnings.warn(limit, { ...fields, limit }, `forward: connection closed: ${reason}`);
  }

  acksSent(n: number): void {
    this.metrics.acks.inc(n);
  }

  sizeMismatch(conn: ForwardConnection, declared: number, found: number): void {
    this.metrics.sizeMismatch.inc();
    this.ctx.logger.debug({ host: conn.host, declared, found }, 'forward: option size differs from the entries');
  }

  private settled(): void {
    if (--this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private onDrop(host: string | undefined, port: number | undefined): void {
    this.metrics.rejected.inc();
    this.warnings.warn(
      'max_connections',
      { host, port, max_connections: this.opts.max_connections },
      'forward: connection refused: max_connections reached',
    );
  }
}

const HEARTBEAT_REPLY = Buffer.from([0]);

/** Node closes connections beyond max_connections + this (TLS handshakes in progress, evicted sockets closing). */
const ACCEPT_HEADROOM = 64;

/**
 * Connections decoding or waiting for the pipeline to accept their batch at once. A full pipeline so holds at most
 * this many decoded batches (a decoded event takes several times its wire size), not one per connection.
 */
const DECODE_TURNS = 4;
