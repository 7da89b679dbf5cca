import { createHash } from 'node:crypto';
import type { RedisClientType } from 'redis';
import { z } from 'zod';
import { PathTemplate, templateString } from '../codecs/path-template.ts';
import { tlsClientOption } from '../codecs/tls.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { FluxoError, RetryableError } from '../core/errors.ts';
import { closeRedis, connectRedis, describeRedisError, redisModule } from '../core/net/redis-connection.ts';
import { abortable } from '../core/retry.ts';
import {
  type Encoding,
  encodingOf,
  encodingOptions,
  redactUrl,
  type SendResult,
  type SinkRequest,
} from '../core/sink/index.ts';
import { duration, urlString } from '../core/units.ts';

const options = z
  .object({
    endpoint: urlString(['redis', 'rediss']).describe(
      'The server, `redis://host:port` (or `rediss://host:port` for TLS). A user and password in the URL work, ' +
        'but `username`/`password` keep them out of logs.',
    ),
    username: z.string().min(1).optional().describe('ACL user name (Redis 6+); absent: the `default` user.'),
    password: z.string().optional().describe('Password (AUTH); use `${REDIS_PASSWORD}` to keep it out of the file.'),
    database: z.number().int().nonnegative().default(0).describe('Database number (SELECT).'),
    tls: tlsClientOption(),
    data_type: z
      .enum(['stream', 'list', 'channel'])
      .default('stream')
      .describe(
        '`stream`: one XADD per event, entries `{ message: <encoded event>, _id }` (at least once; exactly once ' +
          'within `dedupe.ttl` with dedupe on). `list`: LPUSH/RPUSH of the encoded event. `channel`: PUBLISH of the ' +
          'encoded event, best-effort and at most once: only subscribers connected at that moment receive it.',
      ),
    key: templateString().describe(
      'The stream, list or channel: a template with event fields (`logs:{{ app }}`) and strftime fields of the ' +
        'event `timestamp` (`logs:%Y-%m-%d`). An event without a field the template names is dead-lettered. `/` in ' +
        'a field value becomes `_`.',
    ),
    method: z
      .enum(['rpush', 'lpush'])
      .default('rpush')
      .describe('With `data_type: list`: `rpush` appends (a reader LPOPs in arrival order), `lpush` prepends.'),
    message_field: z
      .string()
      .min(1)
      .default('message')
      .describe(
        'With `data_type: stream`: the entry field that holds the encoded event (the `_id` field is beside it).',
      ),
    max_len: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('With `data_type: stream`: trim each stream to about this many entries (`XADD MAXLEN ~`).'),
    max_age: duration()
      .optional()
      .describe(
        'With `data_type: stream`: trim entries older than this (`XADD MINID ~ <now - max_age>`; entry ids are ' +
          'milliseconds of arrival).',
      ),
    exact_trim: z
      .boolean()
      .default(false)
      .describe('Trim exactly (`=`) instead of approximately (`~`, whole macro nodes, much cheaper).'),
    dedupe: z
      .object({
        enabled: z.boolean().optional().describe('Default true for `stream` and `list`; not available for `channel`.'),
        ttl: duration().default(86_400_000).describe('How long an `_id` marker is kept (`SET NX PX`): the window.'),
        prefix: z.string().default('fluxo:dedupe:').describe('Key prefix of the markers (`<prefix><key>:<_id>`).'),
      })
      .strict()
      .default({ ttl: 86_400_000, prefix: 'fluxo:dedupe:' })
      .describe(
        '`{ enabled, ttl, prefix }`: duplicate suppression by `_id` (default on for `stream` and `list`, ttl 24h). ' +
          'Each event is written by a Lua script that sets a marker ' +
          '(`SET <prefix><key>:<_id> 1 NX PX <ttl>`) and adds the event only when the marker was new, so a retried ' +
          'write adds nothing already added. Events without a string `_id` are written as they are. Markers live ' +
          'in memory like any key: a server restarted without persistence forgets them (duplicates with the same ' +
          '`_id` are then possible).',
      ),
    connect_timeout: duration().default(5_000).describe('How long to wait for a connection (and its TLS and AUTH).'),
    ...encodingOptions(['ndjson', 'text'], { codec: 'ndjson' }),
  })
  .superRefine((o, ctx) => {
    if (o.max_len !== undefined && o.max_age !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['max_age'], message: 'set max_len or max_age, not both' });
    }
    if (o.data_type === 'channel' && o.dedupe.enabled === true) {
      ctx.addIssue({
        code: 'custom',
        path: ['dedupe', 'enabled'],
        message: 'a channel keeps nothing to deduplicate against: dedupe is for stream and list',
      });
    }
  });

export type RedisSinkOptions = z.infer<typeof options>;

/**
 * SET NX and the write, as one atomic step. MULTI cannot make the XADD depend on the SET's answer (every queued
 * command runs), and WATCH would cost a round trip per event; a script runs alone on the server, so no other
 * client sees the marker without the entry. Redis does not roll a script back, so when the write itself fails
 * (WRONGTYPE) the marker is deleted again: the event is dead-lettered, and a later replay is not mistaken for
 * a duplicate. KEYS[1]: marker, KEYS[2]: stream or list; ARGV[1]: ttl ms, ARGV[2]: the command, ARGV[3..]: its
 * arguments after the key. Returns false for a duplicate.
 */
const DEDUPE_SCRIPT = `if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return false end
local r = redis.pcall(ARGV[2], KEYS[2], unpack(ARGV, 3))
if type(r) == 'table' and r.err then redis.call('DEL', KEYS[1]) end
return r`;
const DEDUPE_SHA = createHash('sha1').update(DEDUPE_SCRIPT).digest('hex');

/** Error replies that say "not now" rather than "not this": the event is sent again. */
const TRANSIENT_REPLIES =
  /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|MISCONF|READONLY|OOM|NOAUTH|NOPERM|NOSCRIPT)\b/;

/** A write's commands, built once per request (the kit's memo) so a retry sends the same bytes. */
interface Prepared {
  /** One command per event that has one; `commands[k]` is the command of event `index[k]`. */
  commands: string[][];
  index: number[];
  rejected: { index: number; reason: string }[];
}

/**
 * Writes each event as its own command, all commands of a write pipelined (issued in one turn, so node-redis
 * puts them in one socket write: one round trip per write). Each command answers on its own: an error reply
 * that names the event (WRONGTYPE on its key, an invalid argument) dead-letters that event, the rest are
 * delivered; a lost connection or a transient reply retries only the events not answered. With dedupe on, a
 * retry is harmless for the events that were written but whose answer was lost.
 */
export class RedisSink implements Sink {
  readonly encoding: Encoding;
  private client: RedisClientType | undefined;
  /** node-redis's error class for server replies, once connect() loaded the library. */
  private ErrorReply: typeof import('redis').ErrorReply | undefined;
  private readonly template: PathTemplate;
  private readonly dedupe: boolean;
  private readonly trim: string[];
  private readonly shown: string;

  constructor(
    private readonly opts: RedisSinkOptions,
    private readonly context: ComponentContext,
  ) {
    this.encoding = encodingOf(opts);
    this.template = new PathTemplate(opts.key);
    this.dedupe = opts.data_type !== 'channel' && opts.dedupe.enabled !== false;
    const approx = opts.exact_trim ? '=' : '~';
    this.trim = opts.max_len !== undefined ? ['MAXLEN', approx, String(opts.max_len)] : [];
    this.shown = redactUrl(opts.endpoint);
    const url = new URL(opts.endpoint);
    if (opts.tls?.enabled && url.protocol === 'redis:') {
      throw new FluxoError(
        'FLUXO_SINK_INVALID_OPTIONS',
        `sink ${context.id}: tls is set but endpoint ${this.shown} is redis://; use rediss://`,
      );
    }
  }

  /**
   * Opens a new client (see connectRedis): the runner retries a failed connect with its backoff; once
   * connected, writes during an outage fail at once so the runner backs off and retries them.
   */
  async connect(signal: AbortSignal): Promise<void> {
    this.ErrorReply = (await redisModule()).ErrorReply;
    const onError = (error: Error) =>
      this.context.logger.debug({ sink: this.context.id, err: error.message }, 'redis connection error');
    // Each write is bounded by the kit's attempt timeout (and aborted through `signal` in send()).
    this.client = await connectRedis(this.opts, `sink ${this.context.id}`, onError, signal, false);
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    await abortable(this.requireClient().ping(), signal);
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    const client = this.requireClient();
    const prepared = request.memo(() => this.prepare(request));
    const { commands, index } = prepared;
    const replies: Promise<unknown>[] = [];
    if (this.dedupe && commands.length > 0) {
      // Loads the script in the same pipeline, before its first EVALSHA: a server restarted since (an empty
      // script cache) never answers NOSCRIPT. Loading a script already there only hashes it.
      replies.push(client.sendCommand(['SCRIPT', 'LOAD', DEDUPE_SCRIPT]));
    }
    for (const command of commands) replies.push(client.sendCommand(command));
    const settled = await abortable(Promise.allSettled(replies), signal);
    const offset = replies.length - commands.length;
    const rejected = [...prepared.rejected];
    const retry: number[] = [];
    let error: unknown;
    for (let k = 0; k < commands.length; k++) {
      const outcome = settled[k + offset]!;
      if (outcome.status === 'fulfilled') continue;
      const reason = outcome.reason as Error;
      if (reason instanceof this.ErrorReply! && !TRANSIENT_REPLIES.test(reason.message)) {
        rejected.push({ index: index[k]!, reason: `redis ${commands[k]![0]}: ${reason.message}` });
      } else {
        retry.push(index[k]!);
        error ??= reason;
      }
    }
    if (retry.length === commands.length && retry.length > 0) {
      throw new RetryableError(`${this.shown}: ${describeRedisError(error)}`, { cause: error });
    }
    if (rejected.length === 0 && retry.length === 0) return undefined;
    return {
      rejected,
      retry,
      error: error === undefined ? undefined : new RetryableError(`${this.shown}: ${describeRedisError(error)}`),
    };
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    // The runner settled every send before stop(), so a command still unanswered belongs to an aborted attempt
    // (a stalled server): close gracefully, but never wait on it for long.
    await closeRedis(client);
  }

  private requireClient(): RedisClientType {
    if (this.client === undefined) throw new RetryableError(`${this.shown}: not connected`);
    return this.client;
  }

  /** The command of each event, from the kit's encoded lines (one per event, its newline left out). */
  private prepare(request: SinkRequest): Prepared {
    const { events } = request;
    const lines = request.lines();
    const now = Date.now();
    const trim =
      this.opts.max_age !== undefined
        ? ['MINID', this.opts.exact_trim ? '=' : '~', String(Math.max(0, now - this.opts.max_age))]
        : this.trim;
    const commands: string[][] = [];
    const index: number[] = [];
    const rejected: { index: number; reason: string }[] = [];
    const { prefix, ttl } = this.opts.dedupe;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const key = this.template.render(event, now);
      if (key === undefined) {
        rejected.push({ index: i, reason: `key template "${this.opts.key}": no field ${this.template.missingField}` });
        continue;
      }
      const line = lines.bytes.toString('utf8', lines.offsets[i]!, lines.offsets[i + 1]! - 1);
      const id = typeof event._id === 'string' && event._id !== '' ? event._id : undefined;
      let name: string;
      let args: string[];
      if (this.opts.data_type === 'stream') {
        name = 'XADD';
        args = [...trim, '*', this.opts.message_field, line];
        if (id !== undefined) args.push('_id', id);
      } else if (this.opts.data_type === 'list') {
        name = this.opts.method === 'lpush' ? 'LPUSH' : 'RPUSH';
        args = [line];
      } else {
        name = 'PUBLISH';
        args = [line];
      }
      index.push(i);
      if (this.dedupe && id !== undefined) {
        commands.push(['EVALSHA', DEDUPE_SHA, '2', `${prefix}${key}:${id}`, key, String(ttl), name, ...args]);
      } else {
        commands.push([name, key, ...args]);
      }
    }
    return { commands, index, rejected };
  }
}

export const redisSink = defineSink({
  kind: 'sink',
  type: 'redis',
  description:
    'Writes events to Redis: stream entries (XADD, trimmed, deduplicated by `_id`), a list (RPUSH/LPUSH) or a channel (PUBLISH, best-effort).',
  options,
  example: `sinks:
  speed:
    type: redis
    inputs: [web_syslog]
    endpoint: redis://127.0.0.1:6379
    password: "\${REDIS_PASSWORD}"
    key: "logs:{{ host }}"
    max_len: 1000000
    dedupe: { ttl: 24h }`,
  defaultBatchTimeoutMs: 20,
  describeEndpoint: (o) => `${o.data_type} ${o.key} at ${redactUrl(o.endpoint)}`,
  build: (o, ctx) => new RedisSink(o, ctx),
});
