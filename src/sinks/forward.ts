import { createHash } from 'node:crypto';
import { z } from 'zod';
import { EventTime, encodePackedForward, packEntries } from '../codecs/forward.ts';
import { loadTlsClientOptions, tlsClientOption } from '../codecs/tls.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { RetryableError } from '../core/errors.ts';
import { type Event, HOSTNAME } from '../core/event.ts';
import {
  compress,
  compressionOption,
  type SendResult,
  type SinkRequest,
  UNENCODABLE_REASON,
} from '../core/sink/index.ts';
import { address, duration, splitAddress } from '../core/units.ts';
import type { ClientAuth } from './forward/connection.ts';
import { type ForwardServer, ServerPool } from './forward/servers.ts';

const options = z.object({
  servers: z
    .array(
      z.object({
        address: address().describe('The server, `host:port` (a Fluxo `forward` source, Fluentd or Fluent Bit).'),
        weight: z
          .number()
          .int()
          .nonnegative()
          .default(1)
          .describe('Share of the writes this server gets among the healthy ones of its kind; 0 never picks it.'),
        standby: z.boolean().default(false).describe('Used only while every non-standby server is down.'),
      }),
    )
    .min(1)
    .describe(
      'Where to send. Writes go round robin (by weight) to the healthy servers; a server that fails a write or a ' +
        'heartbeat is skipped until a heartbeat succeeds again, and the write goes to the next one at once.',
    ),
  tag: z
    .string()
    .min(1)
    .default('fluxo')
    .describe('Tag of events without a string `tag` field (events from a forward source keep theirs).'),
  compression: compressionOption(['none', 'gzip'], {
    default: 'none',
    describe: '`gzip` sends CompressedPackedForward messages (less bandwidth, more CPU); `none` PackedForward.',
  }),
  ack_timeout: duration()
    .default(30_000)
    .describe(
      'How long to wait for the server to acknowledge a chunk. Past it the write is retried on another server ' +
        '(the first may have it too: a duplicate with the same `_id`). Never counted as delivered without the ack.',
    ),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection (and its TLS and PONG).'),
  heartbeat_type: z
    .enum(['tcp', 'udp', 'none'])
    .default('tcp')
    .describe(
      "Health check of each server, as Fluentd's out_forward: `tcp` connects (with TLS when set) and closes; `udp` " +
        'sends a datagram the server answers (down after 3 intervals without answer); `none`: a failed server is ' +
        'retried after `recover_wait`.',
    ),
  heartbeat_interval: duration().default(1_000).describe('Time between heartbeats.'),
  recover_wait: duration()
    .default(10_000)
    .describe('With `heartbeat_type: none`: how long a server that failed is skipped.'),
  auth: z
    .object({
      shared_key: z.string().min(1).describe('The shared key the servers know (Fluentd `<security> shared_key`).'),
      hostname: z.string().min(1).default(HOSTNAME).describe("This client's name in PING (Fluentd's self_hostname)."),
      username: z.string().default('').describe('User name, when the servers require user authentication.'),
      password: z.string().default('').describe('Password of `username`.'),
    })
    .optional()
    .describe('Shared-key authentication (HELO/PING/PONG); absent: none.'),
  tls: tlsClientOption(),
});

export type ForwardSinkOptions = z.infer<typeof options>;

export const forwardSink = defineSink({
  kind: 'sink',
  type: 'forward',
  description:
    'Sends events with the Fluentd Forward Protocol (to a Fluxo aggregator, Fluentd or Fluent Bit); settles only on ack.',
  options,
  example: [
    'sinks:',
    '  aggregators:',
    '    type: forward',
    '    inputs: [app_files]',
    '    servers:',
    '      - { address: "agg1.internal:24224" }',
    '      - { address: "agg2.internal:24224" }',
    '      - { address: "agg3.internal:24224", standby: true }',
    '    compression: gzip',
    '    auth: { shared_key: "${FORWARD_SHARED_KEY}" }',
    '    tls: { ca_file: /etc/fluxo/ca.crt }',
    '    buffer: { type: disk, max_size: 1GiB }',
  ].join('\n'),
  defaultBatchTimeoutMs: 50,
  describeEndpoint: (opts) =>
    opts.servers.map((s) => `forward://${s.address}${s.standby ? ' (standby)' : ''}`).join(', '),
  build: (opts, ctx) => new ForwardSink(opts, ctx),
});

/** A request's chunks, and the events (by index) MessagePack cannot write. */
interface Prepared {
  chunks: PreparedChunk[];
  unencodable: number[];
}

/** One PackedForward message of a write: a tag's events, with the chunk id its ack must carry. */
interface PreparedChunk {
  chunk: string;
  frame: Buffer;
  events: number;
  acked: boolean;
}

/**
 * PackedForward with a `chunk` option per tag, settled only when every chunk's ack arrived. A write that fails
 * (connect error, closed connection, ack timeout, rejected handshake) marks the server down and goes to the next
 * healthy one at once; when none is left it throws RetryableError and the SinkRunner retries with backoff. The
 * chunks are prepared once per request (the kit's memo): a retry resends the same frames, and chunks acked
 * before the failure are not resent. A chunk id is a hash of its frame, so the same events always make the
 * same chunk, whichever request carries them.
 */
export class ForwardSink implements Sink {
  private readonly pool: ServerPool;
  private readonly acked;

  constructor(
    private readonly opts: ForwardSinkOptions,
    context: ComponentContext,
  ) {
    const tls = loadTlsClientOptions(opts.tls, `sink ${context.id}`);
    const auth: ClientAuth | undefined = opts.auth && {
      sharedKey: opts.auth.shared_key,
      hostname: opts.auth.hostname,
      username: opts.auth.username,
      password: opts.auth.password,
    };
    this.pool = new ServerPool(
      opts.servers.map((s) => ({
        settings: { ...splitAddress(s.address), tls, auth, connectTimeoutMs: opts.connect_timeout },
        weight: s.weight,
        standby: s.standby,
      })),
      {
        heartbeat: opts.heartbeat_type,
        heartbeatIntervalMs: opts.heartbeat_interval,
        recoverWaitMs: opts.recover_wait,
      },
      context.logger,
    );
    this.acked = context.metrics.counter(
      'fluxo_forward_sink_chunks_acked_total',
      'Chunks a forward server acknowledged.',
    );
  }

  async start(): Promise<void> {
    this.pool.start();
  }

  /** Ready when a heartbeat-style connection to one server succeeds. */
  async healthcheck(signal: AbortSignal): Promise<void> {
    const server = this.pool.pick(new Set());
    if (!server) throw new RetryableError('no forward server is up');
    await server.connect(signal);
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    const { chunks, unencodable } = await request.memo(() => this.prepare(request.events));
    const tried = new Set<ForwardServer>();
    let lastError: Error | undefined;
    for (;;) {
      const todo = chunks.filter((c) => !c.acked);
      if (todo.length === 0) break;
      const server = this.pool.pick(tried);
      if (!server) {
        throw new RetryableError(
          lastError
            ? `no forward server took the write: ${lastError.message}`
            : 'no forward server is up (every server failed its last heartbeat or write)',
          { cause: lastError },
        );
      }
      tried.add(server);
      try {
        const conn = await server.connect(signal);
        await conn.send(
          todo.map((c) => c.frame),
          todo.map((c) => c.chunk),
          (i) => {
            todo[i]!.acked = true;
            this.acked.inc();
          },
          this.opts.ack_timeout,
          signal,
        );
      } catch (error) {
        if (signal.aborted) throw error;
        lastError = error as Error;
        server.markDown(lastError.message);
      }
    }
    if (unencodable.length === 0) return undefined;
    return { rejected: unencodable.map((index) => ({ index, reason: UNENCODABLE_REASON })) };
  }

  async stop(): Promise<void> {
    this.pool.stop();
  }

  /** Groups events by tag into PackedForward messages (gzipped when asked), each with its content's chunk id. */
  private async prepare(events: readonly Event[]): Promise<Prepared> {
    const byTag = new Map<string, { entries: unknown[]; indices: number[] }>();
    const defaultTag = this.opts.tag;
    let lastTimestamp: unknown;
    let lastTime = new EventTime(0, 0);
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const tag = typeof event.tag === 'string' && event.tag !== '' ? event.tag : defaultTag;
      let group = byTag.get(tag);
      if (!group) {
        group = { entries: [], indices: [] };
        byTag.set(tag, group);
      }
      const ts = event.timestamp;
      if (ts !== lastTimestamp) {
        lastTimestamp = ts;
        lastTime = EventTime.fromMs(timestampMs(ts));
      }
      const record: Record<string, unknown> = {};
      for (const key in event) if (key !== 'timestamp' && key !== 'tag') record[key] = event[key];
      group.entries.push([lastTime, record]);
      group.indices.push(i);
    }
    const gzipped = this.opts.compression === 'gzip';
    const chunks: PreparedChunk[] = [];
    const unencodable: number[] = [];
    for (const [tag, group] of byTag) {
      let { entries } = group;
      let raw: Buffer;
      try {
        raw = packEntries(entries);
      } catch {
        // Rare (a cycle a transform made): find the entries MessagePack cannot write, send the others.
        const good: unknown[] = [];
        for (let k = 0; k < entries.length; k++) {
          try {
            packEntries([entries[k]]);
            good.push(entries[k]);
          } catch {
            unencodable.push(group.indices[k]!);
          }
        }
        entries = good;
        if (entries.length === 0) continue;
        raw = packEntries(entries);
      }
      const packed = await compress(raw, this.opts.compression);
      const chunk = createHash('sha256')
        .update(tag)
        .update('\0')
        .update(packed)
        .digest()
        .subarray(0, 16)
        .toString('base64');
      chunks.push({
        chunk,
        frame: encodePackedForward(tag, packed, entries.length, chunk, gzipped),
        events: entries.length,
        acked: false,
      });
    }
    return { chunks, unencodable };
  }
}

/** Epoch ms of an event's `timestamp` (ISO string or epoch ms); now when absent or unreadable. */
function timestampMs(ts: unknown): number {
  if (typeof ts === 'number' && Number.isFinite(ts)) return ts;
  if (typeof ts === 'string') {
    const ms = Date.parse(ts);
    if (!Number.isNaN(ms)) return ms;
  }
  return Date.now();
}
