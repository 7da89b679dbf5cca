import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { Client, Dispatcher } from 'undici';
import { lazyImport } from '../../../core/lazy-import.ts';
import type { LineBatch, SenderOptions, SimulatedServer } from '../sender.ts';
import type { SimulationStats } from '../stats.ts';

/** Waits between retries after a network error, and the longest Retry-After honoured. */
const NETWORK_RETRY_MS = 1000;
const MAX_RETRY_AFTER_MS = 10_000;

/**
 * The client side of `--tls`: the CA to trust and whether to verify at all. Node checks the certificate against
 * the host given, a name or an address; SNI, which Node only sends when told, takes names only (RFC 6066).
 */
export function tlsClientOptions(options: SenderOptions): ConnectionOptions {
  const tls = options.tls!;
  return {
    host: options.host,
    port: options.port,
    servername: isIP(options.host) === 0 ? options.host : undefined,
    ca: tls.ca,
    rejectUnauthorized: !tls.insecure,
  };
}

/** What a batching sender has in flight: one request or chunk, sent and possibly resent until it is settled. */
export interface InFlightBatch {
  lines: number;
  firstSentAt: number;
}

/**
 * What the batching shippers (HTTP, OTLP, forward) have in common, as agents like Vector, Fluent Bit or an
 * OpenTelemetry SDK behave: buffer the lines, ship them every flush interval (the servers' phases spread over
 * the interval, as independent agents would be), one request at a time, catching up at once when a backlog
 * built up; at close, ship what is queued and wait for it until the deadline. Subclasses say how a request is
 * built (take) and sent (attempt), and call done() once it is settled.
 */
export abstract class BatchingSender<R extends InFlightBatch> implements SimulatedServer {
  protected readonly queue: LineBatch[] = [];
  protected queued = 0;
  protected inFlight: R | undefined;
  protected closing = false;
  protected destroyed = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    protected readonly options: SenderOptions,
    protected readonly stats: SimulationStats,
    index: number,
    /** Lines per request at most; a backlog of this many is shipped without waiting for the next tick. */
    protected readonly maxLines: number,
  ) {
    const phase = Math.floor((index / options.servers) * options.flushIntervalMs);
    this.timer = setTimeout(() => this.tick(), phase);
  }

  get backlog(): number {
    return this.queued;
  }

  send(batch: LineBatch): void {
    if (batch.lines.length === 0) return;
    this.queue.push(batch);
    this.queued += batch.lines.length;
  }

  /** Builds the next request from the head of the (non-empty) queue, taking its lines off `queued`. */
  protected abstract take(): R;
  /** Sends (or resends) `inFlight`. */
  protected abstract attempt(): void;
  /** Releases the connection once the run is over. */
  protected abstract release(): Promise<void> | void;

  private tick(): void {
    this.flush();
    if (!this.closing) this.timer = setTimeout(() => this.tick(), this.options.flushIntervalMs);
  }

  /** Starts the next request if none is in flight. */
  protected flush(): void {
    if (this.inFlight !== undefined) return;
    if (this.queue.length === 0) {
      if (this.closing) this.wakeIdle();
      return;
    }
    this.inFlight = this.take();
    this.attempt();
  }

  /** The request in flight is settled (acknowledged or given up). */
  protected done(): void {
    this.inFlight = undefined;
    // Catch up at once when a backlog built up (the target was slow), otherwise wait for the next tick.
    if (this.closing || this.queued >= this.maxLines) this.flush();
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    this.flush();
    if (this.inFlight !== undefined || this.queue.length > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
      ]);
    }
    this.destroyed = true;
    await this.release();
  }

  private wakeIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** An HTTP request in flight: its body and headers are the same on every attempt. */
export interface HttpBatch extends InFlightBatch {
  body: string | Buffer;
  headers: Record<string, string>;
}

/** How a protocol over HTTP names itself in error counts and what it posts to. */
export interface HttpProtocol {
  /** Prefix of network errors: `http ECONNREFUSED (retried)`. */
  name: string;
  path: string;
  /** What a refused request loses: `HTTP 400 (lines dropped)`. */
  unit: string;
}

/**
 * `fluxo run` imports this file (main.ts registers the simulate command), and undici costs ~10 MiB of RSS: it is
 * loaded when a simulation first posts.
 */
const loadUndici = lazyImport(() => import('undici'));

/**
 * A batching sender over HTTP on its own keep-alive connection: 429 and 503 are retried after `Retry-After`,
 * network errors after a second; any other answer that acknowledged() does not accept is a permanent failure
 * (counted as an error and left out, which --verify then reports).
 */
export abstract class HttpBatchingSender<R extends HttpBatch> extends BatchingSender<R> {
  /** Made at the first attempt: see loadUndici. */
  private client: Client | undefined;
  private readonly origin: string;
  private readonly clientOptions: {
    pipelining: number;
    connect?: { ca?: string | Buffer; rejectUnauthorized: boolean };
  };

  constructor(
    options: SenderOptions,
    stats: SimulationStats,
    index: number,
    maxLines: number,
    private readonly protocol: HttpProtocol,
  ) {
    super(options, stats, index, maxLines);
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const tls = options.tls;
    this.origin = `${tls ? 'https' : 'http'}://${host}:${options.port}`;
    this.clientOptions = { pipelining: 1 };
    if (tls) this.clientOptions.connect = { ca: tls.ca, rejectUnauthorized: !tls.insecure };
  }

  /**
   * The request for `text`, gzipped once here with `--gzip` (as agents compress a batch before the first
   * attempt), so that a retry resends the same bytes.
   */
  protected request(text: string, lines: number, headers: Record<string, string>): HttpBatch {
    const firstSentAt = Date.now();
    if (!this.options.gzip) return { body: text, lines, headers, firstSentAt };
    return { body: gzipSync(text), lines, headers: { ...headers, 'content-encoding': 'gzip' }, firstSentAt };
  }

  /** Reads the answer's body; when it acknowledges the request, counts that and returns true. */
  protected abstract acknowledged(r: R, res: Dispatcher.ResponseData): Promise<boolean>;

  protected attempt(): void {
    if (this.destroyed) return;
    if (this.client === undefined) {
      loadUndici().then(({ Client }) => {
        if (this.destroyed) return;
        this.client ??= new Client(this.origin, this.clientOptions);
        this.attempt();
      });
      return;
    }
    const r = this.inFlight!;
    this.client.request({ method: 'POST', path: this.protocol.path, headers: r.headers, body: r.body }).then(
      async (res) => {
        if (await this.acknowledged(r, res)) return this.done();
        if (res.statusCode === 429 || res.statusCode === 503) {
          this.stats.error(`HTTP ${res.statusCode} (retried)`);
          const seconds = Number(res.headers['retry-after']);
          const wait = Number.isFinite(seconds) ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : NETWORK_RETRY_MS;
          return void setTimeout(() => this.attempt(), wait);
        }
        // Permanent: the target refuses these lines for what they are.
        this.stats.error(`HTTP ${res.statusCode} (${this.protocol.unit} dropped)`);
        this.done();
      },
      (error: NodeJS.ErrnoException) => {
        if (this.destroyed) return;
        this.stats.error(`${this.protocol.name} ${error.code ?? error.message} (retried)`);
        setTimeout(() => this.attempt(), NETWORK_RETRY_MS);
      },
    );
  }

  protected release(): Promise<void> {
    return this.client?.destroy() ?? Promise.resolve();
  }
}
