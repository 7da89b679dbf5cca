import type { JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { PathTemplate } from '../codecs/path-template.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { FluxoError, RetryableError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { lazyImport } from '../core/lazy-import.ts';
import { settledWithin } from '../core/retry.ts';
import { type Encoding, encodingOf, type SendResult, type SinkRequest } from '../core/sink/index.ts';
import { connectError, natsConnectionOptions } from './nats/connection.ts';
import { type NatsSinkOptions, natsSinkOptions, safeSubject } from './nats/options.ts';
import { JetStreamPublisher, type PublishListener } from './nats/publisher.ts';

/** The NATS client loads when a nats sink connects, not when Fluxo starts (see lazyImport). */
const natsClient = lazyImport(() => import('@nats-io/transport-node'));
const jetStreamClient = lazyImport(() => import('@nats-io/jetstream'));

export type { NatsSinkOptions } from './nats/options.ts';

/** A JetStream error code that says the message itself is bad: retrying cannot store it. */
const PERMANENT_JS_CODES = new Set([
  10054, // message size exceeds maximum allowed
]);

/** What one request publishes, computed once and reused by its retries. */
interface Prepared {
  /** undefined where the event lacks a field of the subject template: it is dead-lettered. */
  subjects: (string | undefined)[];
  headers: MsgHdrs[];
  missingField: string | undefined;
}

/**
 * Publishes each event as one JetStream message (its line as encoded by the kit, without the newline), with
 * `Nats-Msg-Id` = `_id` so that the stream's duplicate window drops a retried publish that had been stored.
 * Many publishes are in flight at once (max_inflight) and a write settles only once every PubAck came back;
 * what failed is answered per message: a message the stream refuses for what it is (too large) is
 * dead-lettered, the rest is retried by the runner with the same ids.
 */
export class NatsSink implements Sink {
  readonly encoding: Encoding;
  private readonly template: PathTemplate;
  private readonly headerFields: [string, string[]][];
  private readonly what: string;
  private nc: NatsConnection | undefined;
  private publisher: JetStreamPublisher | undefined;
  /** The client library's header factory, once connect() loaded it. */
  private natsHeaders: (() => MsgHdrs) | undefined;
  private jsm: JetStreamManager | undefined;
  private readonly duplicates;
  private readonly published;

  constructor(
    private readonly options: NatsSinkOptions,
    private readonly context: ComponentContext,
  ) {
    this.encoding = encodingOf(options);
    this.what = `sink ${context.id}`;
    this.template = new PathTemplate(options.subject);
    this.headerFields = Object.entries(options.headers).map(([name, field]) => [name, field.split('.')]);
    if (options.create_stream && !options.create_stream.subjects && this.dynamicSubject) {
      throw new FluxoError(
        'FLUXO_SINK_INVALID_OPTIONS',
        `${this.what}: subject "${options.subject}" is a template: create_stream needs subjects, e.g. [logs.>]`,
      );
    }
    this.duplicates = context.metrics.counter(
      'fluxo_nats_sink_duplicates_total',
      'Publishes the stream answered as duplicates (its duplicate window already held the Nats-Msg-Id): retries of stored messages.',
    );
    this.published = context.metrics.counter(
      'fluxo_nats_sink_messages_acked_total',
      'Messages the JetStream stream acknowledged (PubAck).',
    );
  }

  private get dynamicSubject(): boolean {
    return this.template.hasEventFields || this.template.hasTimeFields;
  }

  async connect(signal: AbortSignal): Promise<void> {
    if (this.nc && !this.nc.isClosed()) return;
    const options = natsConnectionOptions(this.options, this.context.id, this.what);
    const [{ connect, createInbox, headers }, { jetstreamManager }] = await Promise.all([
      natsClient(),
      jetStreamClient(),
    ]);
    this.natsHeaders = headers;
    let nc: NatsConnection;
    try {
      nc = await connect(options);
    } catch (error) {
      throw connectError(error, this.options.servers, this.what);
    }
    if (signal.aborted) {
      await nc.close();
      throw signal.reason;
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: this.options.connect_timeout });
      await this.ensureStream(jsm);
      this.jsm = jsm;
      this.publisher = new JetStreamPublisher(nc, createInbox(), this.options.ack_timeout, this.options.max_inflight);
      this.nc = nc;
    } catch (error) {
      await nc.close().catch(() => {});
      throw error;
    }
    nc.closed().then((error) => {
      if (error) this.context.logger.warn({ sink: this.context.id, err: error.message }, 'nats connection closed');
    });
  }

  async healthcheck(): Promise<void> {
    if (!this.jsm) throw new RetryableError(`${this.what}: not connected to NATS`);
    await this.jsm.getAccountInfo();
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    const publisher = this.publisher;
    if (!publisher) throw new RetryableError(`${this.what}: not connected to NATS`);
    const { subjects, headers, missingField } = request.memo(() => this.prepare(request.events));
    const lines = request.lines();
    const { bytes, offsets } = lines;
    const n = request.events.length;
    const rejected: { index: number; reason: string }[] = [];
    const retry: number[] = [];
    let failure: unknown;
    // One listener for the whole batch: a publish costs no promise or closure of its own.
    let outstanding = 0;
    let queued = false;
    let allAnswered: (() => void) | undefined;
    const answered = new Promise<void>((resolve) => {
      allAnswered = resolve;
    });
    const done = () => {
      if (--outstanding === 0 && queued) allAnswered!();
    };
    const listener: PublishListener = {
      acked: (_index, ack) => {
        this.published.inc();
        if (ack.duplicate) this.duplicates.inc();
        done();
      },
      failed: (index, error) => {
        const to = subjects[index]!;
        const reason = permanentReason(error);
        if (reason !== undefined) rejected.push({ index, reason: `nats ${to}: ${reason}` });
        else {
          retry.push(index);
          failure ??= this.publishError(error, to);
        }
        done();
      },
    };
    let aborted: (() => void) | undefined;
    const abort = new Promise<never>((_, reject) => {
      aborted = () => reject(signal.reason ?? new Error('aborted'));
      signal.addEventListener('abort', aborted, { once: true });
    });
    // Unhandled otherwise when no publish is awaited against it.
    abort.catch(() => {});
    try {
      for (let i = 0; i < n; i++) {
        const to = subjects[i];
        if (to === undefined) {
          rejected.push({
            index: i,
            reason: `nats sink: the event lacks subject field {{ ${missingField} }} (missing, null, empty or not a scalar)`,
          });
          continue;
        }
        // Waits only when max_inflight publishes are out: the rest of a batch is queued in the same turn, so
        // the client writes it to the socket at once.
        while (publisher.full) await Promise.race([publisher.room(), abort]);
        outstanding++;
        publisher.publish(to, bytes.subarray(offsets[i]!, offsets[i + 1]! - 1), headers[i]!, listener, i);
      }
      queued = true;
      if (outstanding > 0) await Promise.race([answered, abort]);
    } finally {
      signal.removeEventListener('abort', aborted!);
    }
    if (rejected.length === 0 && retry.length === 0) return undefined;
    retry.sort((a, b) => a - b);
    return { rejected, retry, error: failure };
  }

  async stop(): Promise<void> {
    const nc = this.nc;
    this.nc = undefined;
    this.publisher?.close();
    this.publisher = undefined;
    this.jsm = undefined;
    if (!nc || nc.isClosed()) return;
    // close() flushes first; a server that stopped answering must not hold the shutdown.
    await settledWithin(nc.close(), 1_000);
  }

  private prepare(events: readonly Event[]): Prepared {
    const now = Date.now();
    const subjects: (string | undefined)[] = new Array(events.length);
    let missingField: string | undefined;
    const headers: MsgHdrs[] = new Array(events.length);
    const fields = this.headerFields;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const rendered = this.template.render(event, now);
      subjects[i] = rendered === undefined ? undefined : safeSubject(rendered);
      if (rendered === undefined) missingField ??= this.template.missingField;
      const h = this.natsHeaders!();
      // The stream's duplicate window drops a retried publish by this id.
      if (typeof event._id === 'string' && event._id !== '') h.set('Nats-Msg-Id', event._id);
      for (const [name, path] of fields) {
        const value = fieldAt(event, path);
        if (value !== undefined) h.set(name, value);
      }
      headers[i] = h;
    }
    return { subjects, headers, missingField };
  }

  /** Creates the stream when create_stream says so, else checks one captures a fixed subject. */
  private async ensureStream(jsm: JetStreamManager): Promise<void> {
    const create = this.options.create_stream;
    if (create) {
      try {
        await jsm.streams.info(create.name);
        return;
      } catch (error) {
        if ((error as { code?: number }).code !== 10059) throw error;
      }
      await jsm.streams.add({
        name: create.name,
        subjects: create.subjects ?? [this.options.subject],
        storage: create.storage as never,
        duplicate_window: create.duplicate_window * 1_000_000,
        max_age: create.max_age * 1_000_000,
        max_bytes: create.max_bytes ?? -1,
        max_msg_size: create.max_msg_size ?? -1,
        num_replicas: create.replicas,
      });
      this.context.logger.info({ sink: this.context.id, stream: create.name }, 'nats stream created');
      return;
    }
    if (this.dynamicSubject) return;
    try {
      await jsm.streams.find(this.options.subject);
    } catch (error) {
      throw new FluxoError(
        'FLUXO_NATS_STREAM_MISSING',
        `${this.what}: no JetStream stream captures subject "${this.options.subject}": add one ` +
          `(nats stream add --subjects "${this.options.subject}") or set create_stream in the sink`,
        { cause: error },
      );
    }
  }

  private publishError(error: unknown, to: string): Error {
    const e = error as Error;
    if (e.name === 'JetStreamNotEnabled' || /no responders/i.test(e.message)) {
      return new FluxoError(
        'FLUXO_NATS_STREAM_MISSING',
        `${this.what}: no JetStream stream captures subject "${to}" (or JetStream is not enabled); retrying`,
        { cause: error },
      );
    }
    if (e.name === 'TimeoutError') {
      return new RetryableError(`${this.what}: no PubAck for "${to}" within ${this.options.ack_timeout} ms`, {
        cause: error,
      });
    }
    return new RetryableError(`${this.what}: publish to "${to}" failed: ${e.message}`, { cause: error });
  }
}

/** The reason a publish failed for what the message is, or undefined when it is worth retrying. */
function permanentReason(error: unknown): string | undefined {
  const e = error as Error & { code?: unknown };
  if (e.name === 'JetStreamApiError' && typeof e.code === 'number' && PERMANENT_JS_CODES.has(e.code)) {
    return `${e.message} (JetStream error ${e.code})`;
  }
  if (/max_payload/i.test(e.message ?? '')) return `${e.message} (the server's max_payload)`;
  return undefined;
}

function fieldAt(event: Event, path: string[]): string | undefined {
  let value: unknown = event;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

export const natsSink = defineSink({
  kind: 'sink',
  type: 'nats',
  description:
    'Publishes each event to a NATS JetStream stream; settles on the PubAck; `Nats-Msg-Id` = `_id` drops retried duplicates.',
  options: natsSinkOptions,
  example: `sinks:
  speed:
    type: nats
    inputs: [web_syslog]
    servers: ["nats://nats1.internal:4222"]
    subject: "logs.{{ host }}"
    headers: { X-Source-Type: source_type }
    auth: { strategy: user, user: fluxo, password: "\${NATS_PASSWORD}" }
    create_stream: { name: LOGS, subjects: ["logs.>"], duplicate_window: 2m }`,
  defaultBatchTimeoutMs: 10,
  describeEndpoint: (o) => `${o.servers.join(', ')} subject ${o.subject}`,
  build: (options, context) => new NatsSink(options, context),
});
