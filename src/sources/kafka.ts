import type { Consumer, Message, MessagesStream } from '@platformatic/kafka';
import { z } from 'zod';
import type { AckStatus } from '../core/ack.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { type HeldBatch, HeldMessages } from '../core/held-messages.ts';
import {
  describeKafkaError,
  hearFailedConnections,
  kafkaBootstrapServers,
  kafkaClientOptions,
  kafkaClientShape,
  kafkaLibrary,
} from '../core/net/kafka-client.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { backoffDelay, settledWithin, sleep } from '../core/retry.ts';
import { duration } from '../core/units.ts';
import { decodeMessage } from './kafka/decode.ts';
import { type OffsetRange, PartitionOffsets } from './kafka/offsets.ts';

const options = z.object({
  bootstrap_servers: kafkaBootstrapServers(),
  topics: z.array(z.string().min(1)).min(1).describe('Topics to read; the group shares their partitions.'),
  group_id: z
    .string()
    .min(1)
    .describe(
      'Consumer group. Every Fluxo process with the same `group_id` shares the partitions of `topics`: each ' +
        'partition is read by one of them, and offsets are committed for the group.',
    ),
  start_offset: z
    .enum(['earliest', 'latest'])
    .default('earliest')
    .describe(
      'Where a partition without a committed offset for the group starts: `earliest`, every message it holds; ' +
        '`latest`, only messages produced later. A committed offset always wins.',
    ),
  commit_interval: duration()
    .default(1_000)
    .refine((ms) => ms >= 10, 'commit_interval is at least 10ms')
    .describe(
      'How often the offsets delivered since the last commit are committed (also at stop and at a rebalance). ' +
        'Only the contiguous prefix of offsets every sink settled is committed, per partition.',
    ),
  max_inflight: z
    .number()
    .int()
    .positive()
    .default(1_000)
    .describe(
      'Most messages handed to the pipeline and not yet settled by every sink that the source holds: the ' +
        'backpressure bound. At it, the source stops fetching until batches settle.',
    ),
  batch_size: z.number().int().positive().default(500).describe('Most messages emitted as one batch.'),
  fetch_max_wait: duration()
    .default(500)
    .describe('How long one fetch waits on the brokers for new messages of an idle partition.'),
  session_timeout: duration()
    .default(30_000)
    .describe(
      'How long the coordinator waits for a heartbeat before it takes a member out of the group and gives its ' +
        'partitions to the others: how soon the partitions of a killed process are read again.',
    ),
  heartbeat_interval: duration().default(3_000).describe('Time between heartbeats to the group coordinator.'),
  rebalance_timeout: duration()
    .default(30_000)
    .describe(
      'How long members have to rejoin during a rebalance; also how long the source waits, for a partition taken ' +
        'from it, for its batches in the pipeline to settle so their offsets can be committed. After it, those ' +
        'offsets are given up without a commit: the new owner reads them again (same `_id`). At least ' +
        '`session_timeout`.',
    ),
  decoding: z
    .enum(['json', 'text'])
    .default('json')
    .describe(
      '`json`: the value is a JSON object whose fields become the event (a kafka sink writes these); a value that ' +
        'is not one is dead-lettered with the reason, and its offset committed. `text`: the value (UTF-8) becomes ' +
        '`message`. Either way the event gets `kafka.topic`, `kafka.partition`, `kafka.offset`, `kafka.key` and ' +
        '`kafka.headers` (as text); `timestamp` (the message’s), `host`, `source_type` where missing; `_id` is the ' +
        'value’s `_id`, else the `_id` header, else `<topic>:<partition>:<offset>`: the same on every re-read.',
    ),
  ...kafkaClientShape(),
  request_timeout: duration().default(30_000).describe('How long one request waits for a broker’s answer.'),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection to a broker.'),
});

export type KafkaSourceOptions = z.infer<typeof options>;

const RETRY = { initialBackoffMs: 200, maxBackoffMs: 10_000, maxAttempts: 0 };

type KafkaConsumer = Consumer<Buffer, Buffer, Buffer, Buffer>;
type KafkaStream = MessagesStream<Buffer, Buffer, Buffer, Buffer>;
type KafkaMessage = Message<Buffer, Buffer, Buffer, Buffer>;

const keyOf = (topic: string, partition: number) => `${topic}:${partition}`;

/**
 * Reads `topics` as a member of a consumer group. The next batch is read only once emit() resolved (the
 * pipeline accepted the last one) and while fewer than `max_inflight` messages are unsettled. A partition's
 * offset is committed only up to the contiguous prefix of its batches every sink settled (PartitionOffsets),
 * every `commit_interval`, at a rebalance and at stop. A partition taken away by a rebalance gets
 * `rebalance_timeout` for its batches to settle and be committed; the new owner re-reads what was not.
 * What a killed process had not committed is read again by the group, with the same `_id`.
 */
export class KafkaSource implements Source {
  private readonly abort = new AbortController();
  private readonly warnings: RateLimitedWarnings;
  private readonly what: string;
  private readonly tracks = new Map<string, PartitionOffsets>();
  /** Items: each partition's offset range of a batch; counted in messages. */
  private readonly held: HeldMessages<[PartitionOffsets, OffsetRange]>;
  private consumer: KafkaConsumer | undefined;
  private stream: KafkaStream | undefined;
  private loop: Promise<void> | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  /** A batch failed while running: the stream is reopened at the committed offsets to read it again. */
  private reopen = false;
  private closing: Promise<void> | undefined;
  private readonly committedTotal;
  private readonly malformed;
  private readonly givenUp;

  constructor(
    private readonly opts: KafkaSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    this.what = `source ${ctx.id}`;
    this.held = new HeldMessages(opts.max_inflight);
    if (opts.rebalance_timeout < opts.session_timeout) {
      throw new FluxoError(
        'FLUXO_SOURCE_INVALID_OPTIONS',
        `${this.what}: rebalance_timeout (${opts.rebalance_timeout} ms) is shorter than session_timeout ` +
          `(${opts.session_timeout} ms); the group protocol needs it at least as long`,
      );
    }
    if (opts.heartbeat_interval >= opts.session_timeout) {
      throw new FluxoError(
        'FLUXO_SOURCE_INVALID_OPTIONS',
        `${this.what}: heartbeat_interval (${opts.heartbeat_interval} ms) must be shorter than session_timeout ` +
          `(${opts.session_timeout} ms), or the coordinator drops the member between two heartbeats`,
      );
    }
    this.warnings = new RateLimitedWarnings(ctx.logger);
    this.committedTotal = ctx.metrics.counter(
      'fluxo_kafka_source_messages_committed_total',
      'Messages whose offsets were committed for the group after every sink settled their events.',
    );
    this.malformed = ctx.metrics.counter(
      'fluxo_kafka_source_messages_malformed_total',
      'Messages that could not be decoded: dead-lettered with the reason; their offsets are committed.',
    );
    this.givenUp = ctx.metrics.counter(
      'fluxo_kafka_source_messages_given_up_total',
      'Messages of partitions taken away by a rebalance that did not settle within rebalance_timeout: not ' +
        'committed, the new owner reads them again.',
    );
  }

  endpoint(): string {
    return `kafka ${this.opts.bootstrap_servers.join(',')} topics ${this.opts.topics.join(',')} group ${this.opts.group_id}`;
  }

  async start(): Promise<void> {
    // Connecting happens in the loop: brokers missing at start are retried, not fatal.
    this.loop ??= this.run().catch((error: unknown) => {
      if (!this.abort.signal.aborted) this.ctx.logger.error({ err: String(error) }, 'kafka source stopped');
    });
    this.commitTimer = setInterval(() => void this.commit(), this.opts.commit_interval);
    this.commitTimer.unref();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.held.wake();
    void this.stream?.close().catch(() => {});
    await this.loop;
    // Settles still to come need the group membership for their commits; it ends when the last one came.
    await this.held.closeWhenReleased(() => this.close());
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const consumer = await this.connect();
        const stream = await consumer.consume({
          topics: this.opts.topics,
          mode: 'committed',
          fallbackMode: this.opts.start_offset,
          autocommit: false,
          maxWaitTime: this.opts.fetch_max_wait,
          highWaterMark: this.opts.batch_size,
        });
        // The stream fetches only while it has a 'readable' listener (readableFlowing !== null): one stays for
        // its whole life, so the gaps between two reads never stop its fetch loop for good.
        stream.on('readable', () => {});
        this.stream = stream;
        attempt = 0;
        await this.consume(stream);
      } catch (error) {
        if (signal.aborted) return;
        const e = error as Error & { code?: string };
        this.warnings.warn(
          e.code ?? e.name ?? 'error',
          { source: this.ctx.id, code: e.code, err: describeKafkaError(e) },
          'kafka source: cannot read; retrying',
        );
        await sleep(backoffDelay(RETRY, attempt++), signal).catch(() => {});
      } finally {
        const stream = this.stream;
        this.stream = undefined;
        if (stream !== undefined) await stream.close().catch(() => {});
      }
    }
  }

  /** One group member for the source's life: the client reconnects and rejoins by itself. */
  private async connect(): Promise<KafkaConsumer> {
    if (this.consumer !== undefined) return this.consumer;
    const { Consumer } = await kafkaLibrary();
    const o = this.opts;
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...kafkaClientOptions(o, this.what),
      groupId: o.group_id,
      sessionTimeout: o.session_timeout,
      rebalanceTimeout: o.rebalance_timeout,
      heartbeatInterval: o.heartbeat_interval,
      retries: 3,
      retryDelay: 200,
    });
    hearFailedConnections(consumer);
    // The client emits 'error' on the consumer when rejoining its group fails past its retries (the cluster
    // gone during a rebalance); unheard, that ends the process. Logged with the reason instead.
    consumer.on('error', (error: Error) => {
      if (this.abort.signal.aborted) return;
      this.warnings.warn(
        'consumer-error',
        { source: this.ctx.id, err: describeKafkaError(error) },
        'kafka source: the consumer failed (e.g. rejoining its group); the client keeps trying',
      );
    });
    // Before rejoining, what is already delivered is committed while the generation is still valid.
    consumer.on('consumer:group:rebalance', () => void this.commit());
    consumer.on('consumer:group:join', () => this.onAssigned(consumer));
    this.consumer = consumer;
    return consumer;
  }

  private async consume(stream: KafkaStream): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted && !this.reopen) {
      await this.held.waitForRoom(signal);
      if (signal.aborted) return;
      const room = Math.min(this.opts.batch_size, this.held.room());
      const batch = await readBatch(stream, room, signal);
      if (batch === undefined) {
        if (signal.aborted) return;
        throw new Error('the message stream ended');
      }
      await this.emit(batch);
    }
    if (this.reopen) {
      this.reopen = false;
      await this.commit();
    }
  }

  private async emit(msgs: KafkaMessage[]): Promise<void> {
    const assigned = this.assigned();
    const events: Event[] = [];
    const spans = new Map<string, { from: bigint; to: bigint; topic: string; partition: number }>();
    let bytes = 0;
    let taken = 0;
    for (const m of msgs) {
      const key = keyOf(m.topic, m.partition);
      // Fetched before a rebalance took the partition away: its new owner reads it.
      if (!assigned.has(key)) continue;
      const span = spans.get(key);
      if (span === undefined)
        spans.set(key, { from: m.offset, to: m.offset + 1n, topic: m.topic, partition: m.partition });
      else span.to = m.offset + 1n;
      taken++;
      const decoded = decodeMessage(m, this.opts.decoding);
      if (decoded.error !== undefined) {
        this.malformed.inc();
        this.ctx.deadLetter([decoded.event], `kafka source: ${decoded.error}`);
        continue;
      }
      events.push(decoded.event);
      bytes += m.value?.length ?? 0;
    }
    if (taken === 0) return;
    const ranges: [PartitionOffsets, OffsetRange][] = [];
    for (const [key, span] of spans) {
      let track = this.tracks.get(key);
      if (track === undefined) {
        track = new PartitionOffsets(span.topic, span.partition, span.from);
        this.tracks.set(key, track);
      }
      ranges.push([track, track.add(span.from, span.to)]);
    }
    const held = this.held.hold(ranges, taken);
    // Only dead letters: nothing waits in the pipeline, the offsets are done.
    if (events.length === 0) return this.settle(held, 'delivered');
    await this.held.emit(this.ctx, events, bytes, held, (batch, status) => this.settle(batch, status));
  }

  private settle(held: HeldBatch<[PartitionOffsets, OffsetRange]>, status: AckStatus): void {
    if (!this.held.settle(held)) return;
    for (const [track, range] of held.items) track.settle(range, status === 'delivered');
    if (status !== 'delivered' && !this.abort.signal.aborted) this.reopen = true;
    this.held.release(held);
  }

  /** The partitions the group gave this member in its current generation. */
  private assigned(): Set<string> {
    const out = new Set<string>();
    for (const a of this.consumer?.assignments ?? []) for (const p of a.partitions) out.add(keyOf(a.topic, p));
    return out;
  }

  /** After a rebalance: partitions no longer ours get their last commit (bounded), then are forgotten. */
  private onAssigned(consumer: KafkaConsumer): void {
    const assigned = this.assigned();
    this.ctx.logger.info(
      { source: this.ctx.id, generation: consumer.generationId, partitions: [...assigned] },
      'kafka source: partitions assigned',
    );
    for (const [key, track] of this.tracks) {
      if (assigned.has(key)) continue;
      this.tracks.delete(key);
      void this.revoke(track);
    }
  }

  private async revoke(track: PartitionOffsets): Promise<void> {
    const deadline = Date.now() + this.opts.rebalance_timeout;
    while (track.pending > 0 && Date.now() < deadline && !this.abort.signal.aborted) {
      await this.held.nextRelease(100);
    }
    if (track.pending > 0) {
      this.givenUp.inc(track.pending);
      this.ctx.logger.warn(
        { source: this.ctx.id, partition: keyOf(track.topic, track.partition), pending: track.pending },
        'kafka source: a partition taken away by a rebalance still had batches in the pipeline; their offsets ' +
          'are not committed and its new owner reads them again',
      );
    }
    await this.commit([track]);
  }

  /** Commits every partition whose commit point moved; one commit at a time, a failure is retried next time. */
  private commit(tracks: Iterable<PartitionOffsets> = this.tracks.values()): Promise<void> {
    const list = [...tracks];
    const run = this.committing.then(async () => {
      const consumer = this.consumer;
      if (consumer === undefined) return;
      const due = list.filter((t) => t.next > t.committed);
      if (due.length === 0) return;
      const points = due.map((t) => t.next);
      try {
        await consumer.commit({
          offsets: due.map((t, i) => ({ topic: t.topic, partition: t.partition, offset: points[i]!, leaderEpoch: -1 })),
        });
      } catch (error) {
        this.warnings.warn(
          'commit',
          { source: this.ctx.id, err: describeKafkaError(error) },
          'kafka source: offset commit failed; retrying at the next one',
        );
        return;
      }
      for (let i = 0; i < due.length; i++) {
        const t = due[i]!;
        if (points[i]! > t.committed) {
          this.committedTotal.inc(Number(points[i]! - t.committed));
          t.committed = points[i]!;
        }
      }
    });
    this.committing = run.catch(() => {});
    return run;
  }

  /** The last commit, then leaves the group; bounded, so an unreachable cluster cannot hold the shutdown. */
  private close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.commitTimer);
      const consumer = this.consumer;
      if (consumer === undefined) return;
      await settledWithin(
        this.commit()
          .catch(() => {})
          .then(() => consumer.close(true)),
        5_000,
      );
    })();
    return this.closing;
  }
}

/** Up to `max` messages the stream already holds, waiting for the first; undefined when the stream ended. */
async function readBatch(stream: KafkaStream, max: number, signal: AbortSignal): Promise<KafkaMessage[] | undefined> {
  for (;;) {
    const out: KafkaMessage[] = [];
    while (out.length < max) {
      const m = stream.read() as KafkaMessage | null;
      if (m === null) break;
      out.push(m);
    }
    if (out.length > 0) return out;
    if (stream.destroyed || stream.readableEnded || signal.aborted) return undefined;
    let failure: Error | undefined;
    await new Promise<void>((resolve) => {
      const done = () => {
        stream.off('readable', done).off('close', done).off('end', done).off('error', onError);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const onError = (error: Error) => {
        failure = error;
        done();
      };
      stream.on('readable', done).on('close', done).on('end', done).on('error', onError);
      signal.addEventListener('abort', done, { once: true });
    });
    if (failure !== undefined) throw failure;
  }
}

export const kafkaSource = defineSource({
  kind: 'source',
  type: 'kafka',
  description:
    'Reads Kafka topics as a member of a consumer group; commits each partition’s offsets up to what every sink settled. ' +
    'Reads batches compressed with gzip, snappy, lz4 or zstd on every Node.',
  options,
  example: `sources:
  from_speed_layer:
    type: kafka
    bootstrap_servers: [kafka1.internal:9092, kafka2.internal:9092]
    topics: [logs]
    group_id: aggregators
    start_offset: earliest
    max_inflight: 5000
    sasl: { mechanism: SCRAM-SHA-512, username: fluxo, password: "\${KAFKA_PASSWORD}" }
    tls: { ca_file: /etc/fluxo/kafka-ca.pem }`,
  build: (o, ctx) => new KafkaSource(o, ctx),
});
