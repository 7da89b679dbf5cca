import { Client } from 'undici';
import type { LineBatch, SenderFactory, SenderOptions, SimulatedServer } from '../sender.ts';
import type { SimulationStats } from '../stats.ts';

/** Log records per export request at most (the OpenTelemetry SDK's default batch is 512; agents send more). */
const MAX_LINES_PER_REQUEST = 5_000;
const NETWORK_RETRY_MS = 1000;
const MAX_RETRY_AFTER_MS = 10_000;

/**
 * An OpenTelemetry logs exporter per web server (OTLP/HTTP JSON to `/v1/logs`), as an SDK's batch processor or an
 * OpenTelemetry Collector agent behaves: every flush interval it exports what the server logged, one request at
 * a time; 429/503 are retried after `Retry-After`, network errors after a second. Records rejected in a partial
 * success and other refusals count as errors (and --verify reports the lines missing).
 */
export const otlpSender: SenderFactory = (options, stats) => ({
  acknowledgement: 'OTLP 200 response',
  async connect(index, name) {
    return new OtlpServer(options, stats, index, name);
  },
});

interface InFlight {
  body: string;
  lines: number;
  firstSentAt: number;
}

class OtlpServer implements SimulatedServer {
  private readonly client: Client;
  private readonly queue: LineBatch[] = [];
  private queued = 0;
  private inFlight: InFlight | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private destroyed = false;
  private idleWaiters: (() => void)[] = [];
  private readonly resource: string;

  constructor(
    private readonly options: SenderOptions,
    private readonly stats: SimulationStats,
    index: number,
    name: string,
  ) {
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.client = new Client(`http://${host}:${options.port}`, { pipelining: 1 });
    this.resource = JSON.stringify({
      attributes: [
        { key: 'service.name', value: { stringValue: 'web' } },
        { key: 'host.name', value: { stringValue: name } },
      ],
    });
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

  private flush(): void {
    if (this.inFlight !== undefined) return;
    if (this.queue.length === 0) {
      if (this.closing) this.wakeIdle();
      return;
    }
    const records: string[] = [];
    while (this.queue.length > 0 && records.length < MAX_LINES_PER_REQUEST) {
      const batch = this.queue[0]!;
      const room = MAX_LINES_PER_REQUEST - records.length;
      const lines = batch.lines.length <= room ? batch.lines : batch.lines.slice(0, room);
      const time = `${BigInt(Math.round(batch.at)) * 1_000_000n}`;
      for (const line of lines) {
        records.push(
          `{"timeUnixNano":"${time}","severityNumber":9,"severityText":"INFO","body":{"stringValue":${JSON.stringify(line)}}}`,
        );
      }
      if (lines === batch.lines) this.queue.shift();
      else batch.lines.splice(0, lines.length);
      this.stats.sent(lines.length, batch.at);
    }
    this.queued -= records.length;
    const body = `{"resourceLogs":[{"resource":${this.resource},"scopeLogs":[{"scope":{"name":"fluxo-simulate"},"logRecords":[${records.join(',')}]}]}]}`;
    this.inFlight = { body, lines: records.length, firstSentAt: Date.now() };
    this.attempt();
  }

  private attempt(): void {
    if (this.destroyed) return;
    const r = this.inFlight!;
    this.client
      .request({ method: 'POST', path: '/v1/logs', headers: { 'content-type': 'application/json' }, body: r.body })
      .then(
        async (res) => {
          const text = await res.body.text();
          if (res.statusCode === 200) {
            const rejected = rejectedOf(text);
            if (rejected > 0) this.stats.error(`OTLP partial success: ${rejected} records rejected`);
            this.stats.acknowledged(r.lines - rejected, r.firstSentAt);
            return this.next();
          }
          if (res.statusCode === 429 || res.statusCode === 503) {
            this.stats.error(`HTTP ${res.statusCode} (retried)`);
            const seconds = Number(res.headers['retry-after']);
            const wait = Number.isFinite(seconds) ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : NETWORK_RETRY_MS;
            return void setTimeout(() => this.attempt(), wait);
          }
          this.stats.error(`HTTP ${res.statusCode} (records dropped)`);
          this.next();
        },
        (error: NodeJS.ErrnoException) => {
          if (this.destroyed) return;
          this.stats.error(`otlp ${error.code ?? error.message} (retried)`);
          setTimeout(() => this.attempt(), NETWORK_RETRY_MS);
        },
      );
  }

  private next(): void {
    this.inFlight = undefined;
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

function rejectedOf(body: string): number {
  try {
    const n = Number(
      (JSON.parse(body) as { partialSuccess?: { rejectedLogRecords?: unknown } }).partialSuccess?.rejectedLogRecords ??
        0,
    );
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}
