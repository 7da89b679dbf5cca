import type { ComponentMetrics, LocalCounter } from '../metrics.ts';

/** Why ConnectionDeadlines closed a connection. */
export type ExpiryReason = 'idle_timeout' | 'read_timeout' | 'evicted';

export interface ConnectionDeadlineOptions {
  /** Close a connection that received nothing for this long (ms) while not waiting for the pipeline; 0: never. */
  idleTimeoutMs: number;
  /** Close a connection whose incomplete frame (line, message) began this long ago (ms); 0: never. */
  readTimeoutMs: number;
  /**
   * At max_connections, a new connection closes the open one that has gone longest without completing a frame,
   * if that is at least this long (ms); otherwise the new connection is refused.
   */
  evictIdleAfterMs: number;
  /** Source type (`socket`, `syslog`, `forward`): names the counters `fluxo_<label>_connections_…_total`. */
  label: string;
  /** Rate-limited warning of the source (RateLimitedWarnings.warn). */
  warn: (kind: string, fields: Record<string, unknown>, message: string) => void;
}

/** What ConnectionDeadlines needs of a connection. Times are ConnectionDeadlines.now values. */
export interface TimedConnection {
  readonly host: string;
  /** When the last byte arrived (or the connection opened, or last waited for the pipeline). */
  lastReadMs: number;
  /** When the last frame was completed (or the connection opened, or last waited for the pipeline). */
  lastFrameMs: number;
  /** When the first byte of the frame still incomplete arrived; -1 when none is. */
  partialSinceMs: number;
  /** Paused for the pipeline or owing acks: not the peer's fault, never idle. */
  readonly waiting: boolean;
  /** Closes the connection at once and forgets it (its owner's bookkeeping runs now, not at 'close'). */
  expire(reason: ExpiryReason): void;
}

/**
 * Deadlines of the connections of one TCP listener, one idea: without them 1,000 peers sending a byte every 5 s
 * hold every slot of max_connections forever (slowloris). An idle timeout closes connections that send nothing;
 * a read timeout closes those whose frame never completes however slowly it trickles; at max_connections a new
 * connection evicts the one longest without a complete frame instead of being refused. One timer per listener
 * sweeps every connection a few times per deadline; per chunk a connection only stores the sweep's clock, so the
 * hot path does no Date.now() and arms no timer.
 */
export class ConnectionDeadlines<C extends TimedConnection> {
  /** The clock connections stamp with, updated by each sweep (and at each admission check). */
  now = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly counters: Record<ExpiryReason, LocalCounter>;

  constructor(
    private readonly connections: Iterable<C>,
    private readonly options: ConnectionDeadlineOptions,
    metrics: ComponentMetrics,
  ) {
    const l = options.label;
    this.counters = {
      idle_timeout: metrics.counter(
        `fluxo_${l}_connections_idle_closed_total`,
        'Connections closed after idle_timeout without receiving anything.',
      ),
      read_timeout: metrics.counter(
        `fluxo_${l}_connections_read_timeout_total`,
        'Connections closed because an incomplete frame was still arriving after read_timeout (slow senders, slowloris).',
      ),
      evicted: metrics.counter(
        `fluxo_${l}_connections_evicted_total`,
        'Connections closed at max_connections to admit a new one: the one longest without a complete frame.',
      ),
    };
  }

  /** Starts the sweep timer (not keeping the process alive); nothing to sweep when no deadline is set. */
  start(): void {
    const { idleTimeoutMs, readTimeoutMs } = this.options;
    const shortest = Math.min(idleTimeoutMs || Infinity, readTimeoutMs || Infinity);
    if (shortest === Infinity || this.timer) return;
    // A deadline is enforced within a quarter of itself late, never early; at most once a second.
    const every = Math.max(10, Math.min(1000, Math.floor(shortest / 4)));
    this.timer = setInterval(() => this.sweep(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A new connection: its clocks start now. */
  opened(conn: C): void {
    const now = this.now;
    conn.lastReadMs = now;
    conn.lastFrameMs = now;
    conn.partialSinceMs = -1;
  }

  /** Bytes arrived; until a frame completes they belong to an incomplete one. */
  received(conn: C): void {
    conn.lastReadMs = this.now;
    if (conn.partialSinceMs < 0) conn.partialSinceMs = this.now;
  }

  /** A frame completed; `partialRemains`: the bytes after it already begin the next one. */
  framed(conn: C, partialRemains = false): void {
    conn.lastFrameMs = this.now;
    conn.partialSinceMs = partialRemains ? this.now : -1;
  }

  /**
   * The listener is at max_connections and a connection arrives: closes the connection longest without a
   * complete frame if that is at least evict_idle_after; false when none is (the new one is then refused).
   */
  evictForNew(): boolean {
    const now = Date.now();
    this.now = now;
    let oldest: C | undefined;
    for (const conn of this.connections) {
      if (conn.waiting) continue;
      if (oldest === undefined || conn.lastFrameMs < oldest.lastFrameMs) oldest = conn;
    }
    if (oldest === undefined || now - oldest.lastFrameMs < this.options.evictIdleAfterMs) return false;
    this.expire(oldest, 'evicted', now - oldest.lastFrameMs);
    return true;
  }

  private sweep(): void {
    const now = Date.now();
    this.now = now;
    const { idleTimeoutMs, readTimeoutMs } = this.options;
    const expired: [C, ExpiryReason, number][] = [];
    for (const conn of this.connections) {
      if (conn.waiting) {
        // Its silence is ours: the clocks restart when the pipeline lets it read again.
        conn.lastReadMs = now;
        conn.lastFrameMs = now;
        if (conn.partialSinceMs >= 0) conn.partialSinceMs = now;
      } else if (idleTimeoutMs > 0 && now - conn.lastReadMs >= idleTimeoutMs) {
        expired.push([conn, 'idle_timeout', now - conn.lastReadMs]);
      } else if (readTimeoutMs > 0 && conn.partialSinceMs >= 0 && now - conn.partialSinceMs >= readTimeoutMs) {
        expired.push([conn, 'read_timeout', now - conn.partialSinceMs]);
      }
    }
    // Closed after the walk: expire() removes the connection from the set being iterated.
    for (const [conn, reason, ms] of expired) this.expire(conn, reason, ms);
  }

  private expire(conn: C, reason: ExpiryReason, ms: number): void {
    this.counters[reason].inc();
    const { label, warn } = this.options;
    if (reason === 'read_timeout') {
      warn(
        'read_timeout',
        { host: conn.host, ms },
        `${label}: connection closed: an incomplete frame outlived read_timeout`,
      );
    } else if (reason === 'evicted') {
      warn(
        'evicted',
        { host: conn.host, idle_ms: ms },
        `${label}: max_connections reached: evicted the longest-idle connection`,
      );
    }
    conn.expire(reason);
  }
}
