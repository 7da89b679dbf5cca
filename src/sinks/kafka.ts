import type { Producer } from '@platformatic/kafka';
import { z } from 'zod';
import { PathTemplate, templateString } from '../codecs/path-template.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { RetryableError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import {
  describeKafkaError,
  hearFailedConnections,
  kafkaBootstrapServers,
  kafkaClientOptions,
  kafkaClientShape,
  kafkaLibrary,
} from '../core/net/kafka-client.ts';
import { abortable, settledWithin } from '../core/retry.ts';
import { type Encoding, encodingOf, encodingOptions, type SendResult, type SinkRequest } from '../core/sink/index.ts';
import { duration, size } from '../core/units.ts';
import { type KafkaMessage, partitionOf, readProduceError } from './kafka/produce.ts';

const { encoding, text_field } = encodingOptions(['ndjson', 'text'], { codec: 'ndjson', aliases: { json: 'ndjson' } });

/** What a topic name may hold (Kafka's own rule), checked on each rendered name. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

const options = z.object({
  bootstrap_servers: kafkaBootstrapServers(),
  topic: templateString().describe(
    'The topic of each event: a template with event fields (`logs-{{ app }}`) and strftime fields of its ' +
      '`timestamp`. An event whose topic cannot be rendered (a missing field) or is not a valid topic name ' +
      '(`[a-zA-Z0-9._-]`, at most 249) is dead-lettered with the reason.',
  ),
  key_field: z
    .string()
    .min(1)
    .default('_id')
    .describe(
      'The event field used as the message key (a string as it is, another value as JSON); the key picks the ' +
        'partition (murmur2, the Java client default), so one key keeps its order. An event without it has no key ' +
        'and is spread round robin.',
    ),
  encoding: encoding.describe(
    'One event per message: `ndjson` (or `json`), the event as one JSON object; `text`, its `text_field` ' +
      '(`message` by default) as it is when a string, JSON otherwise.',
  ),
  text_field,
  compression: z
    .enum(['none', 'gzip', 'snappy', 'lz4', 'zstd'])
    .default('none')
    .describe(
      'Compression of each record batch (zstd: node:zlib on Node 22.15 or later, the reference library built to WebAssembly before).',
    ),
  ...kafkaClientShape(),
  max_message_bytes: size()
    .default(1_000_000)
    .describe(
      "Largest encoded event sent; a larger one is dead-lettered at once (the broker's `message.max.bytes` is " +
        'about 1 MiB by default). A message the broker still refuses as too large is dead-lettered too.',
    ),
  request_timeout: duration()
    .default(30_000)
    .describe('How long one produce request waits for the brokers (acks from every in-sync replica).'),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection to a broker.'),
  auto_create_topics: z
    .boolean()
    .default(false)
    .describe(
      'Ask the broker to create a missing topic (it must allow it). Off: events for a missing topic are retried.',
    ),
});

export type KafkaSinkOptions = z.infer<typeof options>;

/** Broker errors that say "this message", not "not now": its partition's events are dead-lettered. */
const REJECTING = new Map<number, string>([
  [2, 'CORRUPT_MESSAGE'],
  [10, 'MESSAGE_TOO_LARGE'],
  [17, 'INVALID_TOPIC_EXCEPTION'],
  [18, 'RECORD_LIST_TOO_LARGE'],
  [87, 'INVALID_RECORD'],
]);

/** Errors after which the producer id or its sequences are no longer usable: a new producer is made. */
const PRODUCER_LOST = new Set([45, 47, 59, 90]);

interface Prepared {
  messages: (KafkaMessage | undefined)[];
  rejected: { index: number; reason: string }[];
}

/**
 * Produces each event as one message with an idempotent producer (acks from all in-sync replicas): a request
 * whose answer was lost is sent again with the same producer id and sequence numbers, so the broker writes it
 * once. Sends are serialized: the client numbers a partition's batches from its last confirmed one, so two
 * requests in flight on one partition would be given the same sequence and the broker would take the second
 * for a duplicate of the first. Delivery is settled on the broker's answer only; each partition's answer is
 * read on its own (delivered, dead-lettered for what the events are, or retried).
 */
export class KafkaSink implements Sink {
  readonly encoding: Encoding;
  private producer: Producer<Buffer, Buffer, string, string> | undefined;
  private readonly template: PathTemplate;
  /** One produce request at a time (see the class comment). */
  private sending: Promise<unknown> = Promise.resolve();
  /** Events whose batch the broker refused as too large: sent one per request next time, to find the culprit. */
  private readonly sendAlone = new WeakSet<Event>();
  /** Events an aborted attempt still delivered: their retry only confirms them. */
  private readonly deliveredLate = new WeakSet<Event>();
  /**
   * Partitions whose last request failed without an answer (it may have been written): only that request's
   * events may go there next with the same producer, or the broker could take other events for its duplicate.
   */
  private readonly uncertain = new Map<string, Set<Event>>();
  private roundRobin = 0;

  constructor(
    private readonly opts: KafkaSinkOptions,
    private readonly context: ComponentContext,
  ) {
    this.encoding = encodingOf(opts);
    this.template = new PathTemplate(opts.topic);
  }

  async connect(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    const producer = await this.newProducer();
    try {
      // Learns the cluster now, so a broker down at start is a connect failure retried with backoff.
      await producer.metadata({ topics: [] });
    } catch (error) {
      await closeQuietly(producer);
      throw new RetryableError(`kafka ${this.opts.bootstrap_servers.join(',')}: ${describeKafkaError(error)}`, {
        cause: error,
      });
    }
    this.producer = producer;
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    const prepared = request.memo(() => this.prepare(request));
    const run = this.sending.then(() => this.sendNow(request.events, prepared, signal));
    this.sending = run.catch(() => {});
    // An abort answers now; the request itself cannot be called back, so the next one waits for it.
    return abortable(run, signal);
  }

  async stop(): Promise<void> {
    // The runner settled every send before stop(); one still unanswered belongs to an aborted attempt (a
    // stalled broker): give it a moment, never wait on it for long.
    await settledWithin(this.sending, 1_000);
    const producer = this.producer;
    this.producer = undefined;
    if (producer) await closeQuietly(producer);
  }

  private async newProducer(): Promise<Producer<Buffer, Buffer, string, string>> {
    const { Producer, stringSerializers } = await kafkaLibrary();
    const producer = new Producer<Buffer, Buffer, string, string>({
      ...kafkaClientOptions(this.opts, `sink ${this.context.id}`),
      idempotent: true,
      acks: -1,
      // -1/-1 asks for a new producer id (0/0, the client's default, names an existing one to fence).
      producerId: -1n,
      producerEpoch: -1,
      compression: this.opts.compression,
      autocreateTopics: this.opts.auto_create_topics,
      // An idempotent client retries a retriable broker error itself, with the same sequence numbers (1 or less
      // means "forever" to it); past that the runner retries, with its backoff, and still the same sequences, which
      // the client advances on success only.
      retries: 2,
      retryDelay: 100,
      serializers: { ...stringSerializers, key: undefined, value: undefined },
    });
    hearFailedConnections(producer);
    return producer;
  }

  private prepare(request: SinkRequest): Prepared {
    const { events } = request;
    const lines = request.lines();
    const now = Date.now();
    const messages: (KafkaMessage | undefined)[] = [];
    const rejected: { index: number; reason: string }[] = [];
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const topic = this.template.render(event, now);
      if (topic === undefined) {
        rejected.push({
          index: i,
          reason: `topic template "${this.opts.topic}": no field ${this.template.missingField}`,
        });
        messages.push(undefined);
        continue;
      }
      if (!TOPIC_NAME.test(topic)) {
        rejected.push({ index: i, reason: `topic "${topic}" is not a valid Kafka topic name` });
        messages.push(undefined);
        continue;
      }
      const value = lines.bytes.subarray(lines.offsets[i]!, lines.offsets[i + 1]! - 1);
      if (value.length > this.opts.max_message_bytes) {
        rejected.push({ index: i, reason: `message of ${value.length} bytes exceeds max_message_bytes` });
        messages.push(undefined);
        continue;
      }
      const k = event[this.opts.key_field];
      const key =
        k === undefined || k === null ? undefined : Buffer.from(typeof k === 'string' ? k : JSON.stringify(k));
      const headers: Record<string, string> = {};
      if (typeof event._id === 'string') headers._id = event._id;
      const ms = typeof event.timestamp === 'number' ? event.timestamp : Date.parse(String(event.timestamp));
      messages.push({ topic, key, value, headers, timestamp: BigInt(Number.isFinite(ms) ? ms : now), partition: -1 });
    }
    return { messages, rejected };
  }

  private async sendNow(
    events: readonly Event[],
    prepared: Prepared,
    signal: AbortSignal,
  ): Promise<SendResult | undefined> {
    if (signal.aborted) throw signal.reason;
    let producer = this.producer;
    if (producer === undefined) throw new RetryableError('kafka: not connected');
    const rejected = [...prepared.rejected];
    const retry: number[] = [];
    let failure: unknown;

    // Partitions, from each topic's metadata; a topic the cluster cannot describe holds back only its events.
    const indices: number[] = [];
    const counts = new Map<string, number>();
    for (let i = 0; i < events.length; i++) {
      const m = prepared.messages[i];
      if (m === undefined || this.deliveredLate.has(events[i]!)) continue;
      let count = counts.get(m.topic);
      if (count === undefined) {
        try {
          const md = await producer.metadata({ topics: [m.topic] });
          count = md.topics.get(m.topic)?.partitionsCount ?? 0;
        } catch (error) {
          failure ??= error;
          count = 0;
        }
        counts.set(m.topic, count);
      }
      if (count === 0) {
        retry.push(i);
        continue;
      }
      m.partition = m.key === undefined ? this.roundRobin++ % count : partitionOf(m.key, count);
      indices.push(i);
    }

    // The events of a partition left uncertain by another request: a new producer, so no sequence is shared.
    for (const i of indices) {
      const m = prepared.messages[i]!;
      const owners = this.uncertain.get(`${m.topic}:${m.partition}`);
      if (owners !== undefined && !owners.has(events[i]!)) {
        this.context.logger.info({ sink: this.context.id }, 'kafka: a new producer id after an unanswered request');
        producer = await this.replaceProducer();
        break;
      }
    }

    // One request for all, except events to be sent alone after a MESSAGE_TOO_LARGE.
    const together = indices.filter((i) => !this.sendAlone.has(events[i]!));
    const groups = [together, ...indices.filter((i) => this.sendAlone.has(events[i]!)).map((i) => [i])];
    let lost = false;
    for (const group of groups) {
      if (group.length === 0) continue;
      const messages = group.map((i) => prepared.messages[i]!);
      let outcome: ReturnType<typeof readProduceError> | undefined;
      try {
        await producer.send({ messages });
        // Written after the runner gave up on this attempt (an abort): the next attempt must not write it again.
        if (signal.aborted) for (const i of group) this.deliveredLate.add(events[i]!);
      } catch (error) {
        outcome = readProduceError(error);
        failure ??= error;
      }
      const byPartition = new Map<string, number[]>();
      for (const i of group) {
        const m = prepared.messages[i]!;
        const key = `${m.topic}:${m.partition}`;
        if (outcome === undefined) {
          this.uncertain.delete(key);
          continue;
        }
        const list = byPartition.get(key) ?? [];
        list.push(i);
        byPartition.set(key, list);
      }
      for (const [key, list] of byPartition) {
        if (outcome!.delivered.has(key)) {
          this.uncertain.delete(key);
          continue;
        }
        const code = outcome!.codes.get(key);
        if (code !== undefined) this.uncertain.delete(key);
        else this.uncertain.set(key, new Set(list.map((i) => events[i]!)));
        if (code !== undefined && PRODUCER_LOST.has(code)) lost = true;
        if (code === 10 && list.length > 1) {
          for (const i of list) this.sendAlone.add(events[i]!);
          retry.push(...list);
        } else if (code !== undefined && REJECTING.has(code)) {
          for (const i of list) rejected.push({ index: i, reason: `kafka ${key}: ${REJECTING.get(code)}` });
        } else {
          retry.push(...list);
        }
      }
    }
    if (lost) await this.replaceProducer();
    if (rejected.length === 0 && retry.length === 0) return undefined;
    const error =
      failure === undefined
        ? undefined
        : new RetryableError(`kafka: ${describeKafkaError(failure)}`, { cause: failure });
    if (retry.length === events.length && error !== undefined) throw error;
    return { rejected, retry, error };
  }

  /** A new idempotent producer (a new producer id, sequences from 0): duplicates are possible, losses are not. */
  private async replaceProducer(): Promise<Producer<Buffer, Buffer, string, string>> {
    const old = this.producer;
    const producer = await this.newProducer();
    this.producer = producer;
    this.uncertain.clear();
    if (old) await closeQuietly(old);
    return producer;
  }
}

/** Closes without waiting for requests in flight (their answers no longer matter). */
function closeQuietly(producer: Producer<Buffer, Buffer, string, string>): Promise<void> {
  return new Promise((resolve) => producer.close(true, () => resolve()));
}

export const kafkaSink = defineSink({
  kind: 'sink',
  type: 'kafka',
  description:
    'Produces each event as one Kafka message (idempotent producer, acks from all in-sync replicas), topic from a template, key from a field.',
  options,
  example: `sinks:
  speed:
    type: kafka
    inputs: [web_syslog]
    bootstrap_servers: [127.0.0.1:9092]
    topic: "logs-{{ app }}"
    key_field: host
    compression: lz4
    sasl: { mechanism: SCRAM-SHA-512, username: fluxo, password: "\${KAFKA_PASSWORD}" }
    tls: { ca_file: /etc/fluxo/kafka-ca.pem }`,
  defaultBatchTimeoutMs: 10,
  describeEndpoint: (o) => `topic ${o.topic} at ${o.bootstrap_servers.join(',')}`,
  build: (o, ctx) => new KafkaSink(o, ctx),
});
