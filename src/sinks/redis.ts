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
          'Events are written by a Lua script (up to 256 per call) that sets the marker of each ' +
          '(`SET <prefix><key>:<_id> 1 NX PX <ttl>`) and adds the event only when the marker was new, so a retried ' +
          'write adds nothing already added. Events without a string `_id` are written as they are. Markers live ' +
          'in memory like any key: a server restarted without persistence forgets them (duplicates with the same ' +
          '`_id` are then possible). Redis 8.6 `XADD … IDMP` is not used: it remembers at most 10,000 ids per ' +
          'producer and stream (100 by default) for at most 24 h, fewer than one disk buffer replays after a restart.',
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
 * SET NX and the write, as one atomic step per event, for many events in one call. MULTI cannot make a write
 * depend on the SET's answer (every queued command runs), and WATCH would cost a round trip per event; a script
 * runs alone on the server, so no other client sees a marker without its entry. Redis does not roll a script
 * back, so when a write itself fails (WRONGTYPE) its marker is deleted again: that event is dead-lettered, and a
 * later replay is not mistaken for a duplicate. One call writes up to SCRIPT_EVENTS events: one command to
 * queue, encode and answer instead of one per event (the client's per-command work was most of the sink's own
 * CPU), and each event's arguments are only its key, its marker and what differs between events.
 *
 * KEYS: marker, key, marker, key, … (one pair per event; a marker is `<prefix><key>:<_id>`). ARGV[1]: ttl ms,
 * ARGV[2]: the command, ARGV[3]: the number n of arguments every event's write shares (after the key),
 * ARGV[4..3+n]: those, then `1` to add `_id <id>` after the line (stream entries), the byte length of the
 * prefix, the byte length of each event's slot in the lines (space-separated), and the lines themselves, each
 * followed by one newline: one argument, the kit's encoded bytes as they are, not one string per event. Answers
 * one status per event: `+` written, `=` a duplicate (its marker was there), `-<error>` its write's error reply.
 */
const DEDUPE_SCRIPT = `local ttl, name, shared = ARGV[1], ARGV[2], tonumber(ARGV[3])
local args = {}
for i = 1, shared do args[i] = ARGV[3 + i] end
local withId = ARGV[4 + shared] == '1'
local prefix = tonumber(ARGV[5 + shared])
local lines = ARGV[7 + shared]
local at, k, out = 1, 1, {}
for slot in string.gmatch(ARGV[6 + shared], '%d+') do
  local marker, key = KEYS[k], KEYS[k + 1]
  if redis.call('SET', marker, '1', 'NX', 'PX', ttl) then
    args[shared + 1] = string.sub(lines, at, at + tonumber(slot) - 2)
    if withId then
      args[shared + 2] = '_id'
      args[shared + 3] = string.sub(marker, prefix + #key + 2)
    end
    local r = redis.pcall(name, key, unpack(args))
    if type(r) == 'table' and r.err then
      redis.call('DEL', marker)
      out[#out + 1] = '-' .. r.err
    else
      out[#out + 1] = '+'
    end
  else
    out[#out + 1] = '='
  end
  at = at + tonumber(slot)
  k = k + 2
end
return out`;
const DEDUPE_SHA = createHash('sha1').update(DEDUPE_SCRIPT).digest('hex');

/**
 * Events per script call. The server runs a call alone: ~11 µs per event for the marker and the XADD
 * (redis-server used 0.75 of a core for 67,000 events/s in bench/streams.ts), so ~3 ms per call. A call whose
 * answer is lost is sent again whole (its markers make that harmless).
 */
export const SCRIPT_EVENTS = 256;

/** `-`: the status of an event whose write the server refused, its error reply after it. */
const MINUS = 0x2d;

/** Error replies that say "not now" rather than "not this": the event is sent again. */
const TRANSIENT_REPLIES =
  /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|MISCONF|READONLY|OOM|NOAUTH|NOPERM|NOSCRIPT)\b/;

/** A write's commands, built once per request (the kit's memo) so a retry sends the same bytes. */
interface Prepared {
  commands: (string | Buffer)[][];
  /** The events `commands[k]` writes: one for a plain command, up to SCRIPT_EVENTS for a script call. */
  members: number[][];
  /** Whether `commands[k]` is a script call, which answers one status per event. */
  scripted: boolean[];
  /** The command name of the writes, for error reasons. */
  name: string;
  rejected: { index: number; reason: string }[];
}

/**
 * Writes each event with its own command, or with dedupe on, up to SCRIPT_EVENTS events per script call; all
 * commands of a write pipelined (issued in one turn, so node-redis puts them in one socket write: one round trip
 * per write). Each event's write answers on its own: an error reply that names the event (WRONGTYPE on its key,
 * an invalid argument) dead-letters that event, the rest are delivered; a lost connection or a transient reply
 * retries only the events not answered. With dedupe on, a retry is harmless for the events that were written
 * but whose answer was lost.
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
    const { commands, members, scripted, name } = prepared;
    const replies: Promise<unknown>[] = [];
    if (scripted.includes(true)) {
      // Loads the script in the same pipeline, before its first EVALSHA: a server restarted since (an empty
      // script cache) never answers NOSCRIPT. Loading a script already there only hashes it.
      replies.push(client.sendCommand(['SCRIPT', 'LOAD', DEDUPE_SCRIPT]));
    }
    for (const command of commands) replies.push(client.sendCommand(command));
    const settled = await abortable(Promise.allSettled(replies), signal);
    const offset = replies.length - commands.length;
    const rejected = [...prepared.rejected];
    const retry: number[] = [];
    let written = 0;
    let error: unknown;
    const failed = (index: number, reply: string | undefined, cause: unknown) => {
      if (reply !== undefined && !TRANSIENT_REPLIES.test(reply)) {
        rejected.push({ index, reason: `redis ${name}: ${reply}` });
      } else {
        retry.push(index);
        error ??= cause;
      }
    };
    for (let k = 0; k < commands.length; k++) {
      const outcome = settled[k + offset]!;
      const events = members[k]!;
      written += events.length;
      if (outcome.status === 'rejected') {
        const reason = outcome.reason as Error;
        const reply = reason instanceof this.ErrorReply! ? reason.message : undefined;
        for (const index of events) failed(index, reply, reason);
        continue;
      }
      if (!scripted[k]) continue;
      const statuses = outcome.value;
      if (!Array.isArray(statuses) || statuses.length !== events.length) {
        const cause = new Error(`unexpected answer of the write script: ${String(statuses).slice(0, 200)}`);
        for (const index of events) failed(index, undefined, cause);
        continue;
      }
      for (let j = 0; j < events.length; j++) {
        const status = String(statuses[j]);
        if (status.charCodeAt(0) === MINUS) failed(events[j]!, status.slice(1), new Error(status.slice(1)));
      }
    }
    if (retry.length === written && written > 0) {
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

  /**
   * The commands of a write, from the kit's encoded lines (one per event, its newline left out), in event order:
   * with dedupe on, consecutive events with an `_id` share a script call (an event without one is written by a
   * plain command between two calls, so each key keeps the events' order).
   */
  private prepare(request: SinkRequest): Prepared {
    const { events } = request;
    const lines = request.lines();
    const now = Date.now();
    const { data_type, message_field } = this.opts;
    const name = data_type === 'stream' ? 'XADD' : data_type === 'list' ? this.opts.method.toUpperCase() : 'PUBLISH';
    const trim =
      this.opts.max_age !== undefined
        ? ['MINID', this.opts.exact_trim ? '=' : '~', String(Math.max(0, now - this.opts.max_age))]
        : this.trim;
    // The arguments after the key that every event's write shares.
    const shared = data_type === 'stream' ? [...trim, '*', message_field] : [];
    const prepared: Prepared = { commands: [], members: [], scripted: [], name, rejected: [] };
    const { prefix, ttl } = this.opts.dedupe;
    const head = [String(ttl), name, String(shared.length), ...shared, data_type === 'stream' ? '1' : '0'];
    head.push(String(Buffer.byteLength(prefix)));
    const { bytes, offsets } = lines;
    let keys: string[] = [];
    let slots = '';
    let batch: number[] = [];
    const flush = () => {
      if (batch.length === 0) return;
      const from = offsets[batch[0]!]!;
      const to = offsets[batch.at(-1)! + 1]!;
      prepared.commands.push([
        'EVALSHA',
        DEDUPE_SHA,
        String(keys.length),
        ...keys,
        ...head,
        slots,
        bytes.subarray(from, to),
      ]);
      prepared.members.push(batch);
      prepared.scripted.push(true);
      keys = [];
      slots = '';
      batch = [];
    };
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const key = this.template.render(event, now);
      if (key === undefined) {
        flush();
        prepared.rejected.push({
          index: i,
          reason: `key template "${this.opts.key}": no field ${this.template.missingField}`,
        });
        continue;
      }
      const id = typeof event._id === 'string' && event._id !== '' ? event._id : undefined;
      if (this.dedupe && id !== undefined) {
        keys.push(`${prefix}${key}:${id}`, key);
        slots += batch.length === 0 ? `${offsets[i + 1]! - offsets[i]!}` : ` ${offsets[i + 1]! - offsets[i]!}`;
        batch.push(i);
        if (batch.length === SCRIPT_EVENTS) flush();
        continue;
      }
      flush();
      const command = [name, key, ...shared, bytes.toString('utf8', offsets[i]!, offsets[i + 1]! - 1)];
      if (data_type === 'stream' && id !== undefined) command.push('_id', id);
      prepared.commands.push(command);
      prepared.members.push([i]);
      prepared.scripted.push(false);
    }
    flush();
    return prepared;
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
