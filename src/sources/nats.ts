import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import type { AckStatus } from '../core/ack.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import type { Event } from '../core/event.ts';
import { type HeldBatch, HeldMessages } from '../core/held-messages.ts';
import { lazyImport } from '../core/lazy-import.ts';
import { connectError, natsConnectionOptions, natsConnectionShape } from '../core/net/nats-connection.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { backoffDelay, settledWithin, sleep } from '../core/retry.ts';
import { duration } from '../core/units.ts';
import { type ConsumerLog, durableConsumer } from './nats/consumer.ts';
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
  ...natsConnectionShape('source'),
});

export type NatsSourceOptions = z.infer<typeof options>;

/** The NATS client loads when a nats source starts, not when Fluxo starts (see lazyImport). */
const natsClient = lazyImport(() => import('@nats-io/transport-node'));

const RETRY = { initialBackoffMs: 200, maxBackoffMs: 10_000, maxAttempts: 0 };

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
  private readonly held: HeldMessages<JsMsg>;
  private readonly consumerLog: ConsumerLog;
  private nc: NatsConnection | undefined;
  private fetching: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** When the last pull request expires on the server. */
  private pullEndsAt = 0;
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
    this.held = new HeldMessages(opts.max_ack_pending);
    this.consumerLog = { info: (fields, message) => ctx.logger.info({ source: ctx.id, ...fields }, message) };
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
    this.held.wake();
    await this.loop;
    // Settles still to come need the connection for their acks; it closes when the last one came.
    await this.held.closeWhenReleased(() => this.close());
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const nc = await this.connection();
        const consumer = await durableConsumer(nc, this.opts, this.what, this.consumerLog);
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

  private async consume(consumer: Consumer): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      await this.held.waitForRoom(signal);
      if (signal.aborted) return;
      const room = Math.min(this.opts.batch_size, this.held.room());
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
    const held = this.held.hold(taken);
    await this.held.emit(this.ctx, events, bytes, held, (batch, status) => this.settle(batch, status));
  }

  private settle(held: HeldBatch<JsMsg>, status: AckStatus): void {
    if (!this.held.settle(held)) return;
    if (status === 'delivered') {
      for (const m of held.items) m.ack();
      this.acked.inc(held.items.length);
    } else {
      const delay = this.nakDelay();
      for (const m of held.items) m.nak(delay);
      this.nacked.inc(held.items.length);
    }
    this.held.release(held);
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
    for (const held of this.held.batches()) if (held.since <= due) for (const m of held.items) m.working();
  }

  /** Flushes the acks still buffered and closes; bounded, so a dead server cannot hold the shutdown. */
  private close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.heartbeat);
      const nc = this.nc;
      if (nc === undefined || nc.isClosed()) return;
      // close() alone may drop the acks still in the outbound buffer: flush them first.
      await settledWithin(
        nc
          .flush()
          .catch(() => {})
          .then(() => nc.close()),
        2_000,
      );
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
