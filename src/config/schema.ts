import { z } from 'zod';
import { httpAuthSchema } from '../codecs/http-auth.ts';
import type { ComponentDefinition } from '../core/component.ts';
import type { ComponentRegistry } from '../core/pipeline-config.ts';
import { address, duration, size, splitAddress } from '../core/units.ts';

/** Settings every config has, outside the component maps. */
export const globalOptions = z
  .object({
    data_dir: z
      .string()
      .default('./data')
      .describe(
        'Directory for checkpoints, disk buffers and other state; relative paths start at the working directory.',
      ),
    api: z
      .object({
        enabled: z.boolean().default(true).describe('Serve /health and /metrics.'),
        address: address()
          .default('127.0.0.1:8686')
          .describe(
            'Where the API listens (host:port; port 0 picks a free one). Loopback by default: an address on ' +
              'another interface needs `api.auth`, since the API shows every event (`/tap`) and the topology.',
          ),
        auth: httpAuthSchema
          .optional()
          .describe(
            'Credentials every request but `GET /health` must carry: `{ strategy: bearer, token: … }` or ' +
              '`{ strategy: basic, user: …, password: … }`; others are answered 401. Required when `address` is ' +
              'not a loopback address.',
          ),
      })
      .strict()
      .superRefine((api, ctx) => {
        if (api.enabled && api.auth === undefined && !isLoopbackHost(splitAddress(api.address).host)) {
          ctx.addIssue({
            code: 'custom',
            path: ['auth'],
            message:
              `the API on ${api.address} is reachable beyond this host: set api.auth ({ strategy: bearer, ` +
              'token: … } or basic), or listen on 127.0.0.1',
          });
        }
      })
      .default({ enabled: true, address: '127.0.0.1:8686' })
      .describe('The HTTP API: health, Prometheus metrics, tap.'),
    shutdown_timeout: duration()
      .default(30_000)
      .describe(
        'How long SIGTERM/SIGINT waits for sinks to drain; what is not delivered by then stays unacknowledged.',
      ),
  })
  .describe('Global settings');

const inputs = z
  .array(z.string().min(1), { error: 'expected a list of component ids' })
  .min(1, { error: 'expected at least one input id' })
  .describe('Ids of the sources or transforms (or `route_id.output`, or `dead_letter`) this component reads from.');

/** Whether `host` (an address's host part) is only reachable from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export const memoryBufferOptions = z
  .object({
    type: z
      .literal('memory')
      .describe('`memory`: bounded in events and bytes, lost on a crash (upstream was not acknowledged).'),
    max_events: z
      .number()
      .int()
      .positive()
      .default(10_000)
      .describe('Most events held, including those being written.'),
    max_bytes: size()
      .default(64 * 1024 * 1024)
      .describe('Most bytes held, including those being written.'),
    when_full: z
      .enum(['block', 'drop_newest'])
      .default('block')
      .describe('`block` pushes back on the sources (default); `drop_newest` drops and counts new events.'),
  })
  .strict();

export const diskBufferOptions = z
  .object({
    type: z
      .literal('disk')
      .describe(
        '`disk`: a write-ahead log under `data_dir/buffers/<sink id>/` that survives crashes and restarts; a batch ' +
          'counts as delivered for its source once written and fsynced, and what the sink had not acknowledged is replayed at start.',
      ),
    max_size: size()
      .default(1024 ** 3)
      .describe(
        'Most bytes of events the sink has not acknowledged, then `when_full` applies. Disk use can pass it by up to one ' +
          'segment (acknowledged records are deleted a segment at a time).',
      ),
    when_full: z
      .enum(['block', 'drop_newest'])
      .default('block')
      .describe(
        '`block` pushes back on the sources (default); `drop_newest` drops and counts new events. A full disk (ENOSPC) always blocks.',
      ),
    sync: z
      .enum(['always', 'interval'])
      .default('always')
      .describe(
        '`always`: fsync before a batch counts as delivered (group commit: the batches that arrive during one fsync share the next). ' +
          '`interval`: count it once written and fsync every `sync_interval`: a crash of Fluxo loses nothing, a power loss or ' +
          'kernel crash can lose up to `sync_interval` of events already acknowledged upstream (`fluxo_disk_buffer_unsynced_events`).',
      ),
    sync_interval: duration().default(1000).describe('With `sync: interval`, how often written records are fsynced.'),
    commit_interval: duration()
      .default(20)
      .describe(
        'Least time between the starts of two group commits (a write, and its fsync with `sync: always`). Under a steady ' +
          'flow, records that fall due meanwhile wait and go out together, so 300 agents sending on their own schedules ' +
          'make at most one durable write per interval instead of one per arrival. It adds up to this much to ' +
          'acknowledgements under load. `0` starts each commit as soon as the last ended.',
      ),
    write_delay: duration()
      .default(100)
      .describe(
        'How long an accepted batch waits for the sink before it is written to disk. The sink gets it at once, from ' +
          'memory; if the sink delivers it within this delay it is never written, otherwise it is written (and fsynced ' +
          'with `sync: always`). Its source is acknowledged at the delivery or at the durable write, whichever comes ' +
          'first, so nothing acknowledged is ever only in memory: a healthy sink costs no disk writes, and a slow or ' +
          'failing one gets everything written after this delay. A crash loses only what no source was acknowledged ' +
          'for. `0` writes every batch at its group commit before the sink gets it.',
      ),
    max_segment_size: size()
      .optional()
      .describe(
        'Size at which the log rolls to a new segment file; a segment is deleted once all its events are acknowledged. ' +
          'Default: max_size / 8, between 1 MiB and 128 MiB.',
      ),
  })
  .strict();

export const sinkCommonOptions = {
  inputs,
  buffer: z
    .discriminatedUnion('type', [memoryBufferOptions, diskBufferOptions], {
      error: 'expected a buffer with type: memory or disk',
    })
    .default({ type: 'memory', max_events: 10_000, max_bytes: 64 * 1024 * 1024, when_full: 'block' })
    .describe("The sink's buffer."),
  batch: z
    .object({
      max_events: z.number().int().positive().default(1000).describe('Most events per write to the destination.'),
      max_bytes: size()
        .default(10 * 1024 * 1024)
        .describe(
          'Most bytes per write (as received, or estimated from the events): queued batches are merged up to it, ' +
            'and a larger batch is split into several writes.',
        ),
      timeout: duration()
        .optional()
        .describe(
          'How long a write with fewer than `max_events` waits for more, counted from the receipt of its oldest ' +
            "event (as Vector's `batch.timeout_secs` or Fluent Bit's `flush`): fewer, larger writes for more " +
            "latency. `0` writes at once. The default is the sink's own: 50ms for `file` (one fdatasync per " +
            'write), `forward` and `http` (one round trip per write), 0 for the others.',
        ),
    })
    .strict()
    .default({ max_events: 1000, max_bytes: 10 * 1024 * 1024 })
    .describe('How queued batches are merged into one write.'),
  timeout: duration()
    .optional()
    .describe(
      'How long one attempt of a write may take; past it the attempt is aborted and retried with backoff. ' +
        'Default: none (the `http` sink also bounds each of its requests by its own `request_timeout`).',
    ),
  healthcheck: z
    .boolean()
    .default(true)
    .describe(
      'Check once at start that the destination is usable, where the sink can (a failure is logged and counted; ' +
        'the sink keeps retrying).',
    ),
  retry: z
    .object({
      initial_backoff: duration().default(100).describe('First retry delay (before jitter).'),
      max_backoff: duration().default(30_000).describe('Longest retry delay.'),
      max_attempts: z
        .number()
        .int()
        .nonnegative()
        .default(0)
        .describe('Attempts before the events go to the dead letter output; 0 retries forever.'),
    })
    .strict()
    .default({ initial_backoff: 100, max_backoff: 30_000, max_attempts: 0 })
    .describe('Retries of transient errors: exponential backoff with full jitter.'),
  concurrency: z.number().int().positive().default(1).describe('Writes in flight at once.'),
} as const;

export const SINK_COMMON_KEYS = new Set(Object.keys(sinkCommonOptions));

/** The full schema of one component as written in the config: `type`, wiring keys and the component's options. */
export function componentSchema(def: ComponentDefinition) {
  const base = { type: z.literal(def.type).describe(def.description) };
  const shape =
    def.kind === 'source'
      ? { ...base, ...def.options.shape }
      : def.kind === 'transform'
        ? { ...base, inputs, ...def.options.shape }
        : { ...base, ...sinkCommonOptions, ...def.options.shape };
  const schema = z.object(shape).strict();
  // Cross-field checks of the options (refine/superRefine on the object, e.g. "format grok needs a pattern")
  // live on the options schema, not its shape: carry them over so `fluxo validate` reports them too.
  const checks = (def.options as unknown as { _zod: { def: { checks?: unknown[] } } })._zod.def.checks;
  return checks && checks.length > 0 ? schema.check(...(checks as never[])) : schema;
}

/** The JSON Schema of a whole config file, for editor completion (`fluxo schema`). */
export function configJsonSchema(registry: ComponentRegistry): unknown {
  const union = (defs: ComponentDefinition[]) => {
    const schemas = defs.map((d) => componentSchema(d).describe(`${d.kind} ${d.type}: ${d.description}`));
    return schemas.length === 1 ? schemas[0]! : z.union(schemas as unknown as [z.ZodType, z.ZodType]);
  };
  const whole = globalOptions
    .extend({
      sources: z
        .record(z.string(), union([...registry.sources.values()]))
        .optional()
        .describe('Where events come from.'),
      transforms: z
        .record(z.string(), union([...registry.transforms.values()]))
        .optional()
        .describe('What happens to events on the way.'),
      sinks: z
        .record(z.string(), union([...registry.sinks.values()]))
        .optional()
        .describe('Where events go.'),
    })
    .strict();
  const schema = z.toJSONSchema(whole, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, title: 'Fluxo configuration' };
}
