import type { Consumer, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { FluxoError } from '../../core/errors.ts';
import { lazyImport } from '../../core/lazy-import.ts';

// The nats source's durable pull consumer: found, checked, or created. Apart from the reading loop because it
// is the one place that talks to the JetStream management API.

const jetStreamClient = lazyImport(() => import('@nats-io/jetstream'));

const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

export interface DurableConsumerOptions {
  servers: string[];
  stream: string;
  durable: string;
  filter_subject?: string | undefined;
  create_consumer: boolean;
  deliver_policy: 'all' | 'new';
  ack_wait: number;
  max_ack_pending: number;
  connect_timeout: number;
}

/** Where the consumer setup reports what it did (the source's logger with its id bound). */
export interface ConsumerLog {
  info(fields: Record<string, unknown>, message: string): void;
}

/** The durable consumer, created when missing (create_consumer); a missing stream is an error naming it. */
export async function durableConsumer(
  nc: NatsConnection,
  o: DurableConsumerOptions,
  what: string,
  log: ConsumerLog,
): Promise<Consumer> {
  const { jetstream, jetstreamManager } = await jetStreamClient();
  const jsm = await jetstreamManager(nc, { timeout: o.connect_timeout });
  try {
    await jsm.streams.info(o.stream);
  } catch (error) {
    if ((error as { code?: number }).code !== STREAM_NOT_FOUND) throw error;
    throw new FluxoError(
      'FLUXO_NATS_STREAM_MISSING',
      `${what}: JetStream stream "${o.stream}" does not exist on ${o.servers.join(', ')}: create it ` +
        `(nats stream add ${o.stream}, or a nats sink with create_stream); retrying`,
      { cause: error },
    );
  }
  await ensureConsumer(jsm, o, what, log);
  return jetstream(nc, { timeout: o.connect_timeout }).consumers.get(o.stream, o.durable);
}

async function ensureConsumer(
  jsm: JetStreamManager,
  o: DurableConsumerOptions,
  what: string,
  log: ConsumerLog,
): Promise<void> {
  try {
    const info = await jsm.consumers.info(o.stream, o.durable);
    const c = info.config;
    if (c.ack_policy !== 'explicit') {
      throw new FluxoError(
        'FLUXO_SOURCE_INVALID_OPTIONS',
        `${what}: consumer "${o.durable}" on stream "${o.stream}" has ack_policy ${c.ack_policy}: the source ` +
          'acknowledges each message and needs ack_policy explicit',
      );
    }
    if (c.max_ack_pending !== o.max_ack_pending || c.ack_wait !== o.ack_wait * 1_000_000) {
      log.info(
        { max_ack_pending: c.max_ack_pending, ack_wait_ms: (c.ack_wait ?? 0) / 1_000_000 },
        'nats source: the existing consumer keeps its own ack_wait and max_ack_pending',
      );
    }
    return;
  } catch (error) {
    if ((error as { code?: number }).code !== CONSUMER_NOT_FOUND) throw error;
    if (!o.create_consumer) {
      throw new FluxoError(
        'FLUXO_SOURCE_INVALID_OPTIONS',
        `${what}: durable consumer "${o.durable}" does not exist on stream "${o.stream}" and ` +
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
    log.info({ stream: o.stream, durable: o.durable }, 'nats consumer created');
  } catch (error) {
    // Another process on the same durable may have created it a moment before: that one is as good.
    await jsm.consumers.info(o.stream, o.durable).catch(() => {
      throw error;
    });
  }
}
