import { z } from 'zod';
import { checkPathTemplate } from '../../codecs/path-template.ts';
import { natsConnectionShape } from '../../core/net/nats-connection.ts';
import { encodingOptions } from '../../core/sink/index.ts';
import { duration, size } from '../../core/units.ts';

// The nats sink's options and what makes a subject publishable; docs/components.md is generated from these
// descriptions.

/** Characters a published subject cannot hold: `*` and `>` are wildcards, whitespace ends the token. */
const SUBJECT_UNSAFE = /[\s*>]/;

function checkSubjectTemplate(value: string): string | undefined {
  const problem = checkPathTemplate(value);
  if (problem !== undefined) return problem.replace('path template', 'subject template');
  // Fields render to tokens made safe at publish time; only the literal parts are checked here.
  const literal = value.replace(/\{\{[^}]*\}\}/g, 'f');
  if (SUBJECT_UNSAFE.test(literal))
    return `subject "${value}" holds whitespace, "*" or ">" (no wildcards when publishing)`;
  if (literal.startsWith('.') || literal.endsWith('.') || literal.includes('..')) {
    return `subject "${value}" has an empty token (a leading, trailing or doubled ".")`;
  }
  return undefined;
}

const subject = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    const problem = checkSubjectTemplate(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

const { encoding, text_field } = encodingOptions(['ndjson', 'text'], { codec: 'ndjson', aliases: { json: 'ndjson' } });

export const natsSinkOptions = z.object({
  servers: z
    .array(z.string().min(1))
    .min(1)
    .default(['nats://127.0.0.1:4222'])
    .describe(
      'NATS servers, `host:port` or `nats://host:port` (`tls://` for TLS); the client picks one and fails over.',
    ),
  subject: subject.describe(
    'Subject each event is published to: a template with event fields (`logs.{{ app }}`) and strftime fields ' +
      'of its `timestamp` (%Y %m %d %H …). Whitespace, `*` and `>` in values become `_`; a value with `.` adds tokens.',
  ),
  encoding: encoding.describe(
    'One event per message: `ndjson` (or `json`), the event as one JSON object; `text`, its `text_field` ' +
      '(`message` by default) as it is when a string, JSON otherwise.',
  ),
  text_field,
  headers: z
    .record(z.string().min(1), z.string().min(1))
    .default({})
    .describe(
      'Message headers from event fields: header name → field (`a.b` for nested), e.g. `{ X-Host: host }`. A ' +
        'string is sent as it is, another value as JSON, a missing field not at all. `Nats-Msg-Id` is always `_id`.',
    ),
  max_inflight: z
    .number()
    .int()
    .positive()
    .default(256)
    .describe('Most publishes awaiting their PubAck at once (for the whole sink).'),
  ack_timeout: duration()
    .default(5_000)
    .describe(
      'How long to wait for the PubAck of one message; past it that message is retried (with the same ' +
        '`Nats-Msg-Id`, so the stream drops it if the first one was stored).',
    ),
  create_stream: z
    .object({
      name: z.string().min(1).describe('The stream’s name.'),
      subjects: z
        .array(z.string().min(1))
        .min(1)
        .optional()
        .describe('Subjects it captures (wildcards allowed); default: `subject` when it has no fields, else required.'),
      storage: z.enum(['file', 'memory']).default('file').describe('`file` (survives a restart) or `memory`.'),
      duplicate_window: duration()
        .default(120_000)
        .describe(
          'How long the stream remembers `Nats-Msg-Id`s to drop duplicates (retries within it are stored once).',
        ),
      max_age: duration().default(0).describe('Messages older than this are removed; 0: kept.'),
      max_bytes: size().optional().describe('Most bytes the stream holds (oldest removed first).'),
      max_msg_size: size().optional().describe('Largest message the stream takes; larger ones are dead-lettered.'),
      replicas: z.number().int().min(1).max(5).default(1).describe('Replicas in a JetStream cluster.'),
    })
    .optional()
    .describe(
      'Create the stream at connect when it does not exist (an existing stream is left as it is). Absent: a ' +
        'stream must already capture `subject`, or the sink reports FLUXO_NATS_STREAM_MISSING and retries.',
    ),
  ...natsConnectionShape('sink'),
});

export type NatsSinkOptions = z.infer<typeof natsSinkOptions>;

/** A rendered subject made publishable: wildcards and whitespace from values become `_`, empty tokens `_`. */
export function safeSubject(rendered: string): string {
  if (!SUBJECT_UNSAFE.test(rendered) && !rendered.includes('..') && !rendered.endsWith('.')) return rendered;
  return rendered
    .replace(/[\s*>]/g, '_')
    .split('.')
    .map((t) => (t === '' ? '_' : t))
    .join('.');
}
