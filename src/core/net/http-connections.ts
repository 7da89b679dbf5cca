import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ComponentMetrics, LocalCounter } from '../metrics.ts';
import { duration } from '../units.ts';

/**
 * The connection deadlines of the HTTP listeners (http, otlp), the node:http counterpart of
 * connection-deadlines.ts: without them 1,100 clients sending a header byte every 5 s hold every slot of
 * max_connections for as long as they like (slowloris). node:http enforces the header, request and keep-alive
 * timeouts itself (its parser reads the socket directly, so a byte-level clock of our own would see nothing);
 * this module sets them, counts what they close, and replaces node's refusal at max_connections by an eviction
 * of the connection longest without a request in progress.
 */
export function httpConnectionOptions() {
  return {
    header_timeout: duration()
      .default(10_000)
      .describe(
        'Close a connection whose request headers are not complete this long after they began (slowloris), ' +
          'with `408`; counted in `fluxo_<type>_connections_read_timeout_total`.',
      ),
    request_timeout: duration()
      .default(120_000)
      .describe(
        'Close a connection whose request (headers and body) is not received this long after it began, with ' +
          '`408`; nothing of it is taken. Counted in `fluxo_<type>_connections_read_timeout_total`.',
      ),
    idle_timeout: duration()
      .default(300_000)
      .describe(
        'Close a keep-alive connection that sent no new request for this long (default 5 min, as the TCP ' +
          'sources); `0` never. Clients reconnect for their next request.',
      ),
    evict_idle_after: duration()
      .default(10_000)
      .describe(
        'When max_connections are open, a new connection closes the one that has gone longest without a ' +
          'request in progress (idle keep-alive, or headers still trickling), if that is at least this long ' +
          '(`fluxo_<type>_connections_evicted_total`); otherwise the new connection is refused.',
      ),
  };
}

export interface HttpConnectionLimits {
  max_connections: number;
  header_timeout: number;
  request_timeout: number;
  idle_timeout: number;
  evict_idle_after: number;
}

/** The options of createServer that the limits set: they exist only at creation. */
export function httpServerOptions(limits: HttpConnectionLimits) {
  const checkEvery = Math.max(
    50,
    Math.min(1_000, Math.floor(Math.min(limits.header_timeout, limits.request_timeout) / 4)),
  );
  return {
    // node:http needs requestTimeout ≥ headersTimeout; 0 turns requestTimeout off.
    headersTimeout: limits.header_timeout,
    requestTimeout: limits.request_timeout === 0 ? 0 : Math.max(limits.request_timeout, limits.header_timeout),
    connectionsCheckingInterval: checkEvery,
    keepAliveTimeout: limits.idle_timeout,
  };
}

interface Tracked {
  /** The TCP socket (under TLS, the one beneath the TLSSocket that requests arrive on). */
  readonly socket: Socket;
  /** When the connection opened or its last request finished; a request in progress: -1. */
  idleSinceMs: number;
  active: number;
}

/**
 * Counts a listener's connections, evicts or refuses beyond max_connections, and counts what the timeouts close.
 * Takes the place of `server.maxConnections`, which would refuse a newcomer even when every slot is held by an
 * idle or trickling client.
 */
export class HttpConnectionGuard {
  // Keyed by the peer's address and port: under TLS the requests arrive on a TLSSocket, not on the TCP socket
  // 'connection' gave, and both have the same peer. Counting TCP sockets bounds TLS handshakes too.
  private readonly sockets = new Map<string, Tracked>();
  private readonly rejected: LocalCounter;
  private readonly evicted: LocalCounter;
  private readonly timedOut: LocalCounter;

  constructor(
    server: Server,
    private readonly limits: HttpConnectionLimits,
    label: string,
    metrics: ComponentMetrics,
    private readonly warn: (kind: string, fields: Record<string, unknown>, message: string) => void,
  ) {
    this.rejected = metrics.counter(
      `fluxo_${label}_connections_rejected_total`,
      'Connections closed on arrival because max_connections were open and none could be evicted.',
    );
    this.evicted = metrics.counter(
      `fluxo_${label}_connections_evicted_total`,
      'Connections closed at max_connections to admit a new one: the one longest without a request in progress.',
    );
    this.timedOut = metrics.counter(
      `fluxo_${label}_connections_read_timeout_total`,
      'Connections closed with 408 because their headers or request outlived header_timeout or request_timeout.',
    );
    server.on('connection', (socket: Socket) => this.opened(socket));
    const started = (req: IncomingMessage, res: ServerResponse) => this.started(req, res);
    server.prependListener('request', started);
    server.prependListener('checkContinue', started);
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.clientError(error, socket));
  }

  private opened(socket: Socket): void {
    if (this.sockets.size >= this.limits.max_connections && !this.evictOne()) {
      this.rejected.inc();
      this.warn('max_connections', { host: socket.remoteAddress }, 'connection refused: max_connections reached');
      socket.destroy();
      return;
    }
    const key = peerKey(socket);
    this.sockets.set(key, { socket, idleSinceMs: Date.now(), active: 0 });
    socket.once('close', () => this.sockets.delete(key));
  }

  private started(req: IncomingMessage, res: ServerResponse): void {
    const tracked = this.sockets.get(peerKey(req.socket));
    if (tracked === undefined) return;
    tracked.active++;
    tracked.idleSinceMs = -1;
    res.once('close', () => {
      if (--tracked.active === 0) tracked.idleSinceMs = Date.now();
    });
  }

  private evictOne(): boolean {
    const now = Date.now();
    let oldest: [string, Tracked] | undefined;
    for (const entry of this.sockets) {
      const since = entry[1].idleSinceMs;
      if (since >= 0 && (oldest === undefined || since < oldest[1].idleSinceMs)) oldest = entry;
    }
    if (oldest === undefined || now - oldest[1].idleSinceMs < this.limits.evict_idle_after) return false;
    const [key, { socket, idleSinceMs: since }] = oldest;
    this.evicted.inc();
    this.warn(
      'evicted',
      { host: socket.remoteAddress, idle_ms: now - since },
      'max_connections reached: evicted the connection longest without a request',
    );
    this.sockets.delete(key);
    socket.destroy();
    return true;
  }

  /** node:http's default answers, with the timeouts counted (a listener replaces the default handling). */
  private clientError(error: NodeJS.ErrnoException, socket: Socket): void {
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.timedOut.inc();
      this.warn('read_timeout', { host: socket.remoteAddress }, 'connection closed: request not received in time');
      endWith(socket, '408 Request Timeout');
      return;
    }
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
          ? '413 Payload Too Large'
          : '400 Bad Request';
    endWith(socket, status);
  }
}

function endWith(socket: Socket, status: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  // A peer that never reads must not keep the socket: it goes within a second either way.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
