import type { RedisClientType } from 'redis';
import type { AckStatus } from '../core/ack.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import { type Event, HOSTNAME } from '../core/event.ts';
import { type HeldBatch, HeldMessages } from '../core/held-messages.ts';
import { closeRedis, connectRedis, describeRedisError } from '../core/net/redis-connection.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { backoffDelay, sleep } from '../core/retry.ts';
import { redactUrl } from '../core/sink/index.ts';
import { decodeEntry, type Entry, entryList, streamEntries } from './redis/decode.ts';
import { type RedisSourceOptions, redisSourceOptions } from './redis/options.ts';

export type { RedisSourceOptions } from './redis/options.ts';

const RETRY = { initialBackoffMs: 100, maxBackoffMs: 5_000, maxAttempts: 0 };

/**
 * Reads a Redis stream through a consumer group. At start (and after a lost connection) it re-reads its own
 * pending entries (`XREADGROUP … 0`), then new ones (`>`), and every `claim_idle`/2 it claims entries other
 * members left unacknowledged for `claim_idle` (`XAUTOCLAIM`). An entry is acknowledged (`XACK`) only when every
 * sink settled its event; one not delivered stays pending for a re-read or a claim. The next read waits until
 * emit() resolved, and never holds more than `max_pending`.
 */
export class RedisSource implements Source {
  private readonly abort = new AbortController();
  private readonly warnings: RateLimitedWarnings;
  private readonly what: string;
  private readonly consumer: string;
  /** Entry ids in the pipeline: a re-read or a claim of one of them is not emitted twice. */
  private readonly held: HeldMessages<string>;
  /** XACKs that failed (a lost connection), sent again by the loop. */
  private unacked: string[] = [];
  private main: RedisClientType | undefined;
  private reader: RedisClientType | undefined;
  private loop: Promise<void> | undefined;
  private refresh: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private nextClaimAt = 0;
  /** While a re-read of own pending entries is in flight: the ids acknowledged meanwhile. */
  private releasedDuringRead: Set<string> | undefined;
  private claimCursor = '0-0';
  private readonly acked;
  private readonly claimed;
  private readonly malformed;
  private readonly vanished;

  constructor(
    private readonly opts: RedisSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    this.what = `source ${ctx.id}`;
    // Resolved here, not as a schema default: the generated docs would show the generating host's name.
    this.consumer = opts.consumer ?? `${HOSTNAME}-${process.pid}`;
    this.warnings = new RateLimitedWarnings(ctx.logger);
    this.held = new HeldMessages(opts.max_pending, (id) => id);
    const url = new URL(opts.endpoint);
    if (opts.tls?.enabled && url.protocol === 'redis:') {
      throw new FluxoError(
        'FLUXO_SOURCE_INVALID_OPTIONS',
        `${this.what}: tls is set but endpoint ${redactUrl(opts.endpoint)} is redis://; use rediss://`,
      );
    }
    this.acked = ctx.metrics.counter(
      'fluxo_redis_source_entries_acked_total',
      'Stream entries acknowledged (XACK) after every sink settled their events.',
    );
    this.claimed = ctx.metrics.counter(
      'fluxo_redis_source_entries_claimed_total',
      'Entries claimed (XAUTOCLAIM) from a member that left them unacknowledged for claim_idle.',
    );
    this.malformed = ctx.metrics.counter(
      'fluxo_redis_source_entries_malformed_total',
      'Entries that could not be decoded: dead-lettered with the reason, then acknowledged.',
    );
    this.vanished = ctx.metrics.counter(
      'fluxo_redis_source_entries_trimmed_total',
      'Pending entries the stream no longer holds (trimmed or deleted before they were delivered): acknowledged.',
    );
  }

  endpoint(): string {
    return `redis ${redactUrl(this.opts.endpoint)} stream ${this.opts.key} group ${this.opts.group} consumer ${this.consumer}`;
  }

  async start(): Promise<void> {
    this.loop ??= this.run().catch((error: unknown) => {
      if (!this.abort.signal.aborted) this.ctx.logger.error({ err: String(error) }, 'redis source stopped');
    });
    const every = Math.max(50, Math.floor(this.opts.claim_idle / 3));
    this.refresh = setInterval(() => void this.keepHeld(), every);
    this.refresh.unref();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    // A blocked XREADGROUP ends only with its connection. Entries it was being handed stay pending, for the
    // next start's re-read or another member's claim.
    this.reader?.destroy();
    this.held.wake();
    await this.loop;
    await this.held.closeWhenReleased(() => this.close());
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        await this.connect();
        await this.ensureGroup();
        attempt = 0;
        await this.read();
      } catch (error) {
        if (signal.aborted) return;
        const e = error as Error & { code?: string };
        this.warnings.warn(
          e.code ?? e.name ?? 'error',
          { source: this.ctx.id, code: e.code, err: describeRedisError(error) },
          'redis source: cannot read; retrying',
        );
        await sleep(backoffDelay(RETRY, attempt++), signal).catch(() => {});
      }
    }
  }

  private async connect(): Promise<void> {
    const onError = (error: Error) =>
      this.ctx.logger.debug({ source: this.ctx.id, err: error.message }, 'redis connection error');
    this.main ??= await connectRedis(this.opts, this.what, onError);
    // The reader blocks in XREADGROUP: acks and claims go over the other connection meanwhile.
    this.reader ??= await connectRedis(this.opts, this.what, onError);
  }

  private async ensureGroup(): Promise<void> {
    const o = this.opts;
    try {
      await this.main!.sendCommand(['XGROUP', 'CREATE', o.key, o.group, o.start_id, 'MKSTREAM']);
      this.ctx.logger.info({ source: this.ctx.id, key: o.key, group: o.group }, 'redis consumer group created');
    } catch (error) {
      if (!/^BUSYGROUP/.test((error as Error).message)) throw error;
    }
  }

  private async read(): Promise<void> {
    const o = this.opts;
    const signal = this.abort.signal;
    // Own pending entries first: what this consumer read before a restart or a lost connection.
    let history: string | undefined = '0';
    while (!signal.aborted) {
      await this.held.waitForRoom(signal);
      if (signal.aborted) return;
      await this.retryAcks();
      if (Date.now() >= this.nextClaimAt) await this.claim();
      const room = Math.min(o.count, this.held.room());
      if (room <= 0) continue;
      const args = ['XREADGROUP', 'GROUP', o.group, this.consumer, 'COUNT', String(room)];
      if (history === undefined) args.push('BLOCK', String(o.block));
      args.push('STREAMS', o.key, history ?? '>');
      const released = history === undefined ? undefined : new Set<string>();
      this.releasedDuringRead = released;
      let entries: Entry[];
      try {
        entries = streamEntries(await this.reader!.sendCommand(args));
      } finally {
        this.releasedDuringRead = undefined;
      }
      if (history !== undefined) {
        if (entries.length === 0) history = undefined;
        else history = entries[entries.length - 1]![0];
        // Re-read over the reader connection while their XACK went over the other one: not pending any more.
        if (released !== undefined && released.size > 0) entries = entries.filter(([id]) => !released.has(id));
      }
      await this.emit(entries);
    }
  }

  /** One XAUTOCLAIM step per turn of the loop until the cursor wraps, then a pause of claim_idle/2. */
  private async claim(): Promise<void> {
    const o = this.opts;
    const room = Math.min(o.count, this.held.room());
    if (room <= 0) return;
    const reply = (await this.main!.sendCommand([
      'XAUTOCLAIM',
      o.key,
      o.group,
      this.consumer,
      String(o.claim_idle),
      this.claimCursor,
      'COUNT',
      String(room),
    ])) as [string, unknown, unknown?];
    const next = String(reply[0]);
    this.claimCursor = next;
    if (next === '0-0') this.nextClaimAt = Date.now() + Math.max(50, Math.floor(o.claim_idle / 2));
    const entries = entryList(reply[1]);
    const fresh = entries.filter(([id]) => !this.held.has(id));
    if (fresh.length > 0) {
      this.claimed.inc(fresh.length);
      this.ctx.logger.info({ source: this.ctx.id, entries: fresh.length }, 'redis source claimed idle entries');
    }
    await this.emit(fresh);
  }

  private async emit(entries: Entry[]): Promise<void> {
    if (entries.length === 0) return;
    const o = this.opts;
    const events: Event[] = [];
    const ids: string[] = [];
    const done: string[] = [];
    let bytes = 0;
    for (const [id, fields] of entries) {
      if (this.held.has(id)) continue;
      if (fields === null) {
        // The stream lost it (trimmed, XDEL) while it was pending: nothing is left to deliver.
        this.vanished.inc();
        done.push(id);
        continue;
      }
      const decoded = decodeEntry(o.key, id, fields, o.decoding, o.message_field);
      if (decoded.error !== undefined) {
        this.malformed.inc();
        this.ctx.deadLetter([decoded.event], `redis source: ${decoded.error}`);
        done.push(id);
        continue;
      }
      events.push(decoded.event);
      ids.push(id);
      for (const f of fields) bytes += f.length;
    }
    if (done.length > 0) void this.ack(done);
    if (events.length === 0) return;
    const held = this.held.hold(ids);
    await this.held.emit(this.ctx, events, bytes, held, (batch, status) => this.settle(batch, status));
  }

  private settle(held: HeldBatch<string>, status: AckStatus): void {
    if (!this.held.settle(held)) return;
    const release = () => {
      if (this.releasedDuringRead !== undefined) for (const id of held.items) this.releasedDuringRead.add(id);
      this.held.release(held);
    };
    // Held until the XACK is answered: a re-read over the other connection meanwhile would still see them
    // pending. A failed batch stays pending: re-read at the next start, or claimed after claim_idle.
    if (status === 'delivered') void this.ack([...held.items]).then(release);
    else release();
  }

  /** Resolves once answered; a failed XACK is kept and sent again by the loop. */
  private ack(ids: string[]): Promise<void> {
    const client = this.main;
    if (client === undefined) {
      this.unacked.push(...ids);
      return Promise.resolve();
    }
    return client.sendCommand(['XACK', this.opts.key, this.opts.group, ...ids]).then(
      () => this.acked.inc(ids.length),
      (error: unknown) => {
        this.unacked.push(...ids);
        this.warnings.warn(
          'xack',
          { source: this.ctx.id, err: describeRedisError(error) },
          'redis source: XACK failed; sent again',
        );
      },
    );
  }

  private async retryAcks(): Promise<void> {
    if (this.unacked.length === 0) return;
    const ids = this.unacked;
    this.unacked = [];
    try {
      await this.main!.sendCommand(['XACK', this.opts.key, this.opts.group, ...ids]);
      this.acked.inc(ids.length);
    } catch (error) {
      this.unacked.push(...ids);
      throw error;
    }
  }

  /**
   * Resets the idle time of the entries in the pipeline (`XCLAIM … 0 … JUSTID` to this consumer), so that a
   * sink retrying for longer than claim_idle does not make another member claim and deliver them again.
   */
  private async keepHeld(): Promise<void> {
    const client = this.main;
    if (client === undefined || this.held.count === 0) return;
    const ids = this.held.heldKeys();
    const o = this.opts;
    try {
      for (let i = 0; i < ids.length; i += 500) {
        await client.sendCommand(['XCLAIM', o.key, o.group, this.consumer, '0', ...ids.slice(i, i + 500), 'JUSTID']);
      }
    } catch (error) {
      this.ctx.logger.debug({ source: this.ctx.id, err: describeRedisError(error) }, 'redis source: XCLAIM failed');
    }
  }

  private close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.refresh);
      this.reader?.destroy();
      const main = this.main;
      if (main === undefined) return;
      if (this.unacked.length > 0) {
        await main.sendCommand(['XACK', this.opts.key, this.opts.group, ...this.unacked]).catch(() => {});
      }
      await closeRedis(main);
    })();
    return this.closing;
  }
}

export const redisSource = defineSource({
  kind: 'source',
  type: 'redis',
  description:
    'Reads a Redis stream through a consumer group shared by every process in it; XACKs each entry after every sink settled it, claims what dead members left.',
  options: redisSourceOptions,
  example: `sources:
  from_agents:
    type: redis
    endpoint: redis://redis1.internal:6379
    password: "\${REDIS_PASSWORD}"
    key: logs
    group: aggregators
    consumer: "\${HOSTNAME}"
    claim_idle: 60s`,
  build: (o, ctx) => new RedisSource(o, ctx),
});
