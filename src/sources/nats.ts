import type { Consumer, ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { tlsClientOption } from '../codecs/tls.ts';
import type { AckStatus } from '../core/ack.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { lazyImport } from '../core/lazy-import.ts';
import { connectError, natsAuthOption, natsConnectionOptions } from '../core/net/nats-connection.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { backoffDelay, sleep } from '../core/retry.ts';
import { duration } from '../core/units.ts';
import { decodeMessage } from './nats/decode.ts';

const options = z.object({
  servers: z
    .array(z.string().min(1))
    .min(1)
    .default(['nats://127.0.0.1:4222'])
    .describe(
      'NATS servers, `host:port` or `nats://host:port` (`tls://` for TLS); the client picks one and fails over.',
    ),
  stream: z.string().min(1).describe('The JetStream stream to read. A missing stream is reported and retried.'),
  durable: z
    .string()
    .min(1)
    .regex(/^[^\s.*>]+$/, 'a durable name holds no whitespace, ".", "*" or ">"')
    .describe(
      'Name of the durable pull consumer. Every Fluxo process with the same `stream` and `durable` shares the ' +
        'work: each message goes to one of them, and to another one if the first does not acknowledge it.',
    ),
  filter_subject: z
    .string()
    .min(1)
    .optional()
    .describe('Only messages on this subject (wildcards allowed) when the consumer is created; absent: all.'),
  create_consumer: z
    .boolean()
    .default(true)
    .describe(
      'Create the durable consumer when it does not exist (explicit acks, with `ack_wait`, `max_ack_pending`, ' +
        '`filter_subject`, `deliver_policy`). false: it must exist, or the source reports it and retries.',
    ),
  deliver_policy: z
    .enum(['all', 'new'])
    .default('all')
    .describe(
      'Where a consumer created by the source starts: `all`, every message the stream holds; `new`, only ' +
        'messages stored after its creation. An existing consumer keeps its position.',
    ),
  ack_wait: duration()
    .default(30_000)
    .describe(
      'How long the server waits for the acknowledgement of a delivered message before it delivers it again ' +
        '(to any process on the durable): how soon the messages a killed process held are redelivered.',
    ),
  max_ack_pending: z
    .number()
    .int()
    .positive()
    .default(1_000)
    .describe(
      'Most messages delivered and not yet acknowledged, set on a consumer the source creates (shared by every ' +
        'process on it); the source also never holds more than this itself: the backpressure bound.',
    ),
  nak_delay: duration()
    .default(1_000)
    .describe(
      'When a batch was not delivered (the pipeline stopped or dropped it), its messages are negatively ' +
        'acknowledged with this delay: the server redelivers them after it.',
    ),
  in_progress: z
    .boolean()
    .default(true)
    .describe(
      'While a message waits in the pipeline (a sink retrying an outage), tell the server every `ack_wait`/2 that ' +
        'it is still being worked on, so it is not redelivered meanwhile. A killed process stops doing it: its ' +
        'messages come back after `ack_wait`.',
    ),
  batch_size: z.number().int().positive().default(100).describe('Most messages asked for in one pull request.'),
  fetch_wait: duration()
    .default(5_000)
    .refine((ms) => ms >= 1_000, 'fetch_wait is at least 1s')
    .describe('How long one pull request waits for messages on an idle stream before the next one (at least 1s).'),
  decoding: z
    .enum(['json', 'text'])
    .default('json')
    .describe(
      '`json`: the payload is a JSON object whose fields become the event (a nats sink writes these); a payload ' +
        'that is not one is dead-lettered with the reason and terminated. `text`: the payload (UTF-8) becomes ' +
        '`message`. Either way the event gets `nats.stream`, `nats.subject`, `nats.seq` (stream sequence), ' +
        '`nats.delivered` (1 the first time) and `nats.headers`; `timestamp` (when the stream stored it), `host`, ' +
        '`source_type` where missing; `_id` is the payload’s `_id`, else `Nats-Msg-Id`, else `<stream>:<seq>`.',
    ),
  auth: natsAuthOption(),
  tls: tlsClientOption(),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection and its handshake.'),
  reconnect_wait: duration()
    .default(1_000)
    .describe('Time between reconnect attempts (plus jitter) after a connection is lost; the client retries forever.'),
  name: z
    .string()
    .min(1)
    .optional()
    .describe('Connection name shown by the server (`nats server report`); default: the source id.'),
});

export type NatsSourceOptions = z.infer<typeof options>;

/** The NATS client loads when a nats source starts, not when Fluxo starts (see lazyImport). */
const natsClient = lazyImport(() => import('@nats-io/transport-node'));
const jetStreamClient = lazyImport(() => import('@nats-io/jetstream'));

const RETRY = { initialBackoffMs: 200, maxBackoffMs: 10_000, maxAttempts: 0 };
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

interface Held {
  msgs: JsMsg[];
  since: number;
}

/**
 * Reads a durable JetStream pull consumer. A pull asks for at most `batch_size` messages and never for more
 * than `max_ack_pending` minus what the source holds; the next pull waits until emit() resolved (the pipeline
 * accepted the batch). A message is acknowledged only when every sink settled its event, negatively
 * acknowledged (with `nak_delay`) when the batch failed, and kept alive with in-progress acks while it waits.
 * What a killed process held is redelivered by the server after `ack_wait`, with the same `_id`.
 */
export class NatsSource implements Source {
  private readonly abort = new AbortController();
  private readonly warnings: RateLimitedWarnings;
  private readonly what: string;
  private readonly held = new Set<Held>();
  private heldMessages = 0;
  private roomWaiters: (() => void)[] = [];
  private nc: NatsConnection | undefined;
  private fetching: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** When the last pull request expires on the server. */
  private pullEndsAt = 0;
  private closeFallback: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly acked;
  private readonly nacked;
  private readonly malformed;

  constructor(
    private readonly opts: NatsSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    this.what = `source ${ctx.id}`;
    this.warnings = new RateLimitedWarnings(ctx.logger);
    this.acked = ctx.metrics.counter(
      'fluxo_nats_source_messages_acked_total',
      'Messages acknowledged to JetStream after every sink settled their events.',
    );
    this.nacked = ctx.metrics.counter(
      'fluxo_nats_source_messages_nacked_total',
      'Messages negatively acknowledged (their batch was not delivered): the server redelivers them.',
    );
    this.malformed = ctx.metrics.counter(
      'fluxo_nats_source_messages_malformed_total',
      'Messages that could not be decoded: dead-lettered with the reason, then terminated.',
    );
  }

  endpoint(): string {
    return `nats ${this.opts.servers.join(', ')} stream ${this.opts.stream} durable ${this.opts.durable}`;
  }

  async start(): Promise<void> {
    // Connecting happens in the loop: a server or stream missing at start is retried, not fatal.
    this.loop ??= this.run().catch((error: unknown) => {
      if (!this.abort.signal.aborted) this.ctx.logger.error({ err: String(error) }, 'nats source stopped');
    });
    if (this.opts.in_progress) {
      const every = Math.max(100, Math.floor(this.opts.ack_wait / 2));
      this.heartbeat = setInterval(() => this.keepAlive(every), every);
      this.heartbeat.unref();
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    void this.fetching?.close().catch(() => {});
    this.wakeRoomWaiters();
    await this.loop;
    // Settles still to come need the connection for their acks; it closes when the last one came.
    if (this.heldMessages === 0) await this.close();
    else {
      this.closeFallback = setTimeout(() => void this.close(), 30_000);
      this.closeFallback.unref();
    }
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const nc = await this.connection();
        const consumer = await this.consumer(nc);
        attempt = 0;
        await this.consume(consumer);
      } catch (error) {
        if (signal.aborted) return;
        const e = error as Error & { code?: string };
        this.warnings.warn(
          e.code ?? e.name ?? 'error',
          { source: this.ctx.id, code: e.code, err: e.message },
          'nats source: cannot read; retrying',
        );
        await sleep(backoffDelay(RETRY, attempt++), signal).catch(() => {});
      }
    }
  }

  /** One connection for the source's life: the client reconnects by itself, and acks need it until the end. */
  private async connection(): Promise<NatsConnection> {
    if (this.nc !== undefined && !this.nc.isClosed()) return this.nc;
    const { connect } = await natsClient();
    let nc: NatsConnection;
    try {
      nc = await connect(natsConnectionOptions(this.opts, this.ctx.id, this.what));
    } catch (error) {
      throw connectError(error, this.opts.servers, this.what);
    }
    this.nc = nc;
    nc.closed().then((error) => {
      if (error) this.ctx.logger.warn({ source: this.ctx.id, err: error.message }, 'nats connection closed');
    });
    return nc;
  }

  /** The durable consumer, created when missing (create_consumer); a missing stream is an error naming it. */
  private async consumer(nc: NatsConnection): Promise<Consumer> {
    const o = this.opts;
    const { jetstream, jetstreamManager } = await jetStreamClient();
    const jsm = await jetstreamManager(nc, { timeout: o.connect_timeout });
    try {
      await jsm.streams.info(o.stream);
    } catch (error) {
      if ((error as { code?: number }).code !== STREAM_NOT_FOUND) throw error;
      throw new FluxoError(
        'FLUXO_NATS_STREAM_MISSING',
        `${this.what}: JetStream stream "${o.stream}" does not exist on ${o.servers.join(', ')}: create it ` +
          `(nats stream add ${o.stream}, or a nats sink with create_stream); retrying`,
        { cause: error },
      );
    }
    await this.ensureConsumer(jsm);
    return jetstream(nc, { timeout: o.connect_timeout }).consumers.get(o.stream, o.durable);
  }

  private async ensureConsumer(jsm: JetStreamManager): Promise<void> {
    const o = this.opts;
    try {
      const info = await jsm.consumers.info(o.stream, o.durable);
      const c = info.config;
      if (c.ack_policy !== 'explicit') {
        throw new FluxoError(
          'FLUXO_SOURCE_INVALID_OPTIONS',
          `${this.what}: consumer "${o.durable}" on stream "${o.stream}" has ack_policy ${c.ack_policy}: the source ` +
            'acknowledges each message and needs ack_policy explicit',
        );
      }
      if (c.max_ack_pending !== o.max_ack_pending || c.ack_wait !== o.ack_wait * 1_000_000) {
        this.ctx.logger.info(
          { source: this.ctx.id, max_ack_pending: c.max_ack_pending, ack_wait_ms: (c.ack_wait ?? 0) / 1_000_000 },
          'nats source: the existing consumer keeps its own ack_wait and max_ack_pending',
        );
      }
      return;
    } catch (error) {
      if ((error as { code?: number }).code !== CONSUMER_NOT_FOUND) throw error;
      if (!o.create_consumer) {
        throw new FluxoError(
          'FLUXO_SOURCE_INVALID_OPTIONS',
          `${this.what}: durable consumer "${o.durable}" does not exist on stream "${o.stream}" and ` +
            'create_consumer is false: create it (nats consumer add) or set create_consumer; retrying',
          { cause: error },
        );
      }
    }
    try {
      await jsm.consumers.add(o.stream, {
        durable_name: o.durable,
        ack_policy: 'explicit',
        ack_wait: o.ack_wait * 1_000_000,
        max_ack_pending: o.max_ack_pending,
        deliver_policy: o.deliver_policy,
        ...(o.filter_subject === undefined ? {} : { filter_subject: o.filter_subject }),
      });
      this.ctx.logger.info({ source: this.ctx.id, stream: o.stream, durable: o.durable }, 'nats consumer created');
    } catch (error) {
      // Another process on the same durable may have created it a moment before: that one is as good.
      await jsm.consumers.info(o.stream, o.durable).catch(() => {
        throw error;
      });
    }
  }

  private async consume(consumer: Consumer): Promise<void> {
    const signal = this.abort.signal;
    const max = this.opts.max_ack_pending;
    while (!signal.aborted) {
      await this.waitForRoom();
      if (signal.aborted) return;
      const room = Math.min(this.opts.batch_size, max - this.heldMessages);
      const messages = await consumer.fetch({ max_messages: room, expires: this.opts.fetch_wait });
      this.pullEndsAt = Date.now() + this.opts.fetch_wait;
      this.fetching = messages;
      let batch: JsMsg[] = [];
      try {
        for await (const m of messages) {
          batch.push(m);
          // Emit what has arrived as soon as nothing more is queued: a pull request that is not full yet
          // must not hold the messages it already brought until it expires.
          if (messages.getPending() === 0 || batch.length >= room) {
            const out = batch;
            batch = [];
            await this.emit(out);
          }
          if (signal.aborted) break;
        }
        if (batch.length > 0 && !signal.aborted) {
          const out = batch;
          batch = [];
          await this.emit(out);
        }
      } finally {
        this.fetching = undefined;
        // Only when stopping or on an error: back to the server for another process, right away.
        for (const m of batch) m.nak(this.nakDelay());
      }
    }
  }

  private async emit(msgs: JsMsg[]): Promise<void> {
    const events: Event[] = [];
    const taken: JsMsg[] = [];
    let bytes = 0;
    for (const m of msgs) {
      const decoded = decodeMessage(m, this.opts.decoding);
      if (decoded.error !== undefined) {
        const reason = `nats source: ${decoded.error}`;
        this.malformed.inc();
        this.ctx.deadLetter([decoded.event], reason);
        // No reason on the wire: nats-server before 2.10 does not take `+TERM <reason>` (the message stays
        // pending); the dead letter has it.
        m.term();
        continue;
      }
      events.push(decoded.event);
      taken.push(m);
      bytes += m.data.length;
    }
    if (events.length === 0) return;
    const held: Held = { msgs: taken, since: Date.now() };
    this.held.add(held);
    this.heldMessages += taken.length;
    try {
      await this.ctx.emit(events, { bytes, onSettled: (status) => this.settle(held, status) });
    } catch (error) {
      // Only a stopping pipeline rejects: the batch was not taken.
      this.ctx.logger.debug({ err: String(error) }, 'nats source: emit rejected');
      this.settle(held, 'failed');
    }
  }

  private settle(held: Held, status: AckStatus): void {
    if (!this.held.delete(held)) return;
    if (status === 'delivered') {
      for (const m of held.msgs) m.ack();
      this.acked.inc(held.msgs.length);
    } else {
      const delay = this.nakDelay();
      for (const m of held.msgs) m.nak(delay);
      this.nacked.inc(held.msgs.length);
    }
    this.heldMessages -= held.msgs.length;
    this.wakeRoomWaiters();
    if (this.abort.signal.aborted && this.heldMessages === 0) void this.close();
  }

  /**
   * A stopping source's last pull request stays open on the server until it expires, and the server would hand
   * a message redelivered before then to that dead request (where it waits `ack_wait`): the delay outlasts it.
   */
  private nakDelay(): number {
    if (!this.abort.signal.aborted) return this.opts.nak_delay;
    return Math.max(this.opts.nak_delay, this.pullEndsAt - Date.now() + 200);
  }

  private keepAlive(every: number): void {
    const due = Date.now() - every;
    for (const held of this.held) if (held.since <= due) for (const m of held.msgs) m.working();
  }

  private waitForRoom(): Promise<void> {
    if (this.heldMessages < this.opts.max_ack_pending || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private wakeRoomWaiters(): void {
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }

  /** Flushes the acks still buffered and closes; bounded, so a dead server cannot hold the shutdown. */
  private close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.heartbeat);
      clearTimeout(this.closeFallback);
      const nc = this.nc;
      if (nc === undefined || nc.isClosed()) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        // close() alone may drop the acks still in the outbound buffer: flush them first.
        nc
          .flush()
          .catch(() => {})
          .then(() => nc.close())
          .catch(() => {}),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 2_000);
        }),
      ]);
      clearTimeout(timer);
    })();
    return this.closing;
  }
}

export const natsSource = defineSource({
  kind: 'source',
  type: 'nats',
  description:
    'Reads a NATS JetStream stream through a durable pull consumer shared by every process on it; acks each message after every sink settled it.',
  options,
  example: `sources:
  from_agents:
    type: nats
    servers: ["nats://nats1.internal:4222"]
    stream: LOGS
    durable: aggregators
    ack_wait: 30s
    max_ack_pending: 5000`,
  build: (o, ctx) => new NatsSource(o, ctx),
});
