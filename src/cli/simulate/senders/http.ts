import { Client } from 'undici';
import type { LineBatch, SenderFactory, SenderOptions, SimulatedServer } from '../sender.ts';
import type { SimulationStats } from '../stats.ts';

/** Lines per request at most (~2.5 MB of access-log NDJSON, well under the source's 10 MiB default). */
const MAX_LINES_PER_REQUEST = 10_000;
/** Waits between retries after a network error, and the longest Retry-After honoured. */
const NETWORK_RETRY_MS = 1000;
const MAX_RETRY_AFTER_MS = 10_000;

/**
 * An HTTP log shipper per web server, as Vector's `http` sink or Fluent Bit's `http` output behave: it buffers
 * lines and POSTs them as NDJSON every flush interval, one request at a time on its own keep-alive
 * connection, with an `Idempotency-Key` so a retried request yields the same event ids. 429 and 503 are
 * retried after `Retry-After`, network errors after a second; any other answer is a permanent failure (the
 * lines are counted as errors and left out, which --verify then reports).
 */
export const httpSender: SenderFactory = (options, stats) => ({
  acknowledgement: 'HTTP 2xx response',
  async connect(index, name) {
    return new HttpServer(options, stats, index, name);
  },
});

interface InFlight {
  body: string;
  lines: number;
  key: string;
  firstSentAt: number;
}

class HttpServer implements SimulatedServer {
  private readonly client: Client;
  private readonly path: string;
  private readonly queue: LineBatch[] = [];
  private queued = 0;
  private inFlight: InFlight | undefined;
  private requests = 0;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private destroyed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: SenderOptions,
    private readonly stats: SimulationStats,
    index: number,
    private readonly name: string,
  ) {
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.client = new Client(`http://${host}:${options.port}`, { pipelining: 1 });
    this.path = '/';
    // Spread the servers' flushes over the interval, as independent agents would be.
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

  private tick(): void {
    this.flush();
    if (!this.closing) this.timer = setTimeout(() => this.tick(), this.options.flushIntervalMs);
  }

  /** Starts the next request if none is in flight. */
  private flush(): void {
    if (this.inFlight !== undefined) return;
    if (this.queue.length === 0) {
      if (this.closing) this.wakeIdle();
      return;
    }
    let body = '';
    let lines = 0;
    while (this.queue.length > 0 && lines + this.queue[0]!.lines.length <= MAX_LINES_PER_REQUEST) {
      const batch = this.queue.shift()!;
      for (const line of batch.lines) body += `{"message":${JSON.stringify(line)},"host":"${this.name}"}\n`;
      lines += batch.lines.length;
      this.stats.sent(batch.lines.length, batch.at);
    }
    if (lines === 0) {
      // One tick's batch larger than a request: split it.
      const batch = this.queue[0]!;
      const head = batch.lines.splice(0, MAX_LINES_PER_REQUEST);
      for (const line of head) body += `{"message":${JSON.stringify(line)},"host":"${this.name}"}\n`;
      lines = head.length;
      this.stats.sent(lines, batch.at);
    }
    this.queued -= lines;
    this.requests++;
    this.inFlight = {
      body,
      lines,
      key: `${this.options.runId}-${this.name}-${this.requests}`,
      firstSentAt: Date.now(),
    };
    this.attempt();
  }

  private attempt(): void {
    if (this.destroyed) return;
    const r = this.inFlight!;
    this.client
      .request({
        method: 'POST',
        path: this.path,
        headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': r.key },
        body: r.body,
      })
      .then(
        async (res) => {
          await res.body.dump();
          if (res.statusCode >= 200 && res.statusCode < 300) {
            this.stats.acknowledged(r.lines, r.firstSentAt);
            return this.next();
          }
          if (res.statusCode === 429 || res.statusCode === 503) {
            this.stats.error(`HTTP ${res.statusCode} (retried)`);
            const seconds = Number(res.headers['retry-after']);
            const wait = Number.isFinite(seconds) ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : NETWORK_RETRY_MS;
            return void setTimeout(() => this.attempt(), wait);
          }
          // Permanent: the target refuses these lines for what they are.
          this.stats.error(`HTTP ${res.statusCode} (lines dropped)`);
          this.next();
        },
        (error: NodeJS.ErrnoException) => {
          if (this.destroyed) return;
          this.stats.error(`http ${error.code ?? error.message} (retried)`);
          setTimeout(() => this.attempt(), NETWORK_RETRY_MS);
        },
      );
  }

  private next(): void {
    this.inFlight = undefined;
    // Catch up at once when a backlog built up (the target was slow), otherwise wait for the next tick.
    if (this.closing || this.queued >= MAX_LINES_PER_REQUEST) this.flush();
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
    await this.client.destroy();
  }

  private wakeIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
