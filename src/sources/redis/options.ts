import { z } from 'zod';
import { tlsClientOption } from '../../codecs/tls.ts';
import { duration, urlString } from '../../core/units.ts';

// The redis source's options, apart from its reading loop (src/sources/redis.ts); docs/components.md is generated
// from these descriptions.

export const redisSourceOptions = z.object({
  endpoint: urlString(['redis', 'rediss'])
    .default('redis://127.0.0.1:6379')
    .describe('The server, `redis://host:port` (or `rediss://host:port` for TLS).'),
  username: z.string().min(1).optional().describe('ACL user name (Redis 6+); absent: the `default` user.'),
  password: z.string().optional().describe('Password (AUTH); use `${REDIS_PASSWORD}` to keep it out of the file.'),
  database: z.number().int().nonnegative().default(0).describe('Database number (SELECT).'),
  tls: tlsClientOption(),
  key: z.string().min(1).describe('The stream to read (one key; run one source per stream for several).'),
  group: z
    .string()
    .min(1)
    .describe(
      'Consumer group. Every Fluxo process in the same group shares the stream: each entry goes to one of them.',
    ),
  consumer: z
    .string()
    .min(1)
    .optional()
    .describe(
      'This process’s consumer name in the group; default `<hostname>-<pid>`. A stable name (e.g. from ' +
        '`${HOSTNAME}`) lets a restarted process re-read at once what it had not acknowledged; otherwise another ' +
        'member claims it after `claim_idle`.',
    ),
  start_id: z
    .string()
    .regex(/^(\$|0|\d+(-\d+)?)$/, 'start_id is $, 0 or an entry id')
    .default('0')
    .describe(
      'Where a group the source creates starts (`XGROUP CREATE … MKSTREAM`): `0`, every entry the stream holds; ' +
        '`$`, only entries added later. An existing group keeps its position.',
    ),
  count: z.number().int().positive().default(100).describe('Most entries one read asks for (`COUNT`).'),
  block: duration()
    .default(2_000)
    .refine((ms) => ms > 0, 'block must be more than 0')
    .describe('How long one read waits for new entries on an idle stream (`BLOCK`).'),
  claim_idle: duration()
    .default(60_000)
    .refine((ms) => ms >= 100, 'claim_idle is at least 100ms')
    .describe(
      'Entries another member read and has not acknowledged for this long (a dead process) are claimed ' +
        '(`XAUTOCLAIM`) and delivered by this one. Entries this process holds are kept fresh meanwhile.',
    ),
  max_pending: z
    .number()
    .int()
    .positive()
    .default(1_000)
    .describe('Most entries read and not yet acknowledged that this process holds: the backpressure bound.'),
  decoding: z
    .enum(['json', 'text'])
    .default('json')
    .describe(
      '`json`: `message_field` holds a JSON object (what a redis sink writes) whose fields become the event (the ' +
        'entry’s other fields are added where it has none); an entry without one is dead-lettered with the reason ' +
        'and acknowledged. `text`: every entry field becomes an event field, as a string. Either way `redis.key` and ' +
        '`redis.id` say where it came from; `timestamp` (the entry id’s time), `host`, `source_type` are set where ' +
        'missing; `_id` is the event’s own `_id`, else the entry’s `_id` field, else `<key>:<entry id>`.',
    ),
  message_field: z
    .string()
    .min(1)
    .default('message')
    .describe('With `decoding: json`: the entry field that holds the JSON event.'),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection (and its TLS and AUTH).'),
});

export type RedisSourceOptions = z.infer<typeof redisSourceOptions>;
