import { z } from 'zod';
import { compilePath, type FieldPath, getPath } from '../codecs/parsers/field-path.ts';
import { defineTransform } from '../core/component.ts';
import type { Event } from '../core/event.ts';
import { duration } from '../core/units.ts';

const dedupeOptions = z.object({
  fields: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe(
      'Events with equal values in these fields are duplicates (a missing field differs from null). Default `[_id]`: the ' +
        'deterministic ids of file and forward sources make a redelivered event a duplicate of the first delivery.',
    ),
  ignore_fields: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe('Instead of `fields`: compare every top-level field except these (e.g. `[_id, timestamp]`).'),
  cache: z
    .object({
      max_events: z
        .number()
        .int()
        .positive()
        .default(5000)
        .describe('Most distinct events remembered; the least recently seen is forgotten first.'),
      ttl: duration()
        .optional()
        .describe('Forget an event this long after it was last seen (e.g. `10m`); default: never.'),
    })
    .strict()
    .default({ max_events: 5000 })
    .describe(
      'The window of remembered events, `{ max_events: 5000, ttl: 10m }`: bounded in count, optionally in time.',
    ),
});

export type DedupeOptions = z.infer<typeof dedupeOptions>;

/** JSON text never contains a raw NUL (it escapes control characters), so NUL separates values safely. */
const SEPARATOR = '\u0000';

function valueKey(value: unknown): string {
  if (value === undefined) return '~';
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? '~';
  } catch {
    return String(value);
  }
}

/**
 * A bounded LRU set of event keys, with an optional time to live. Map keeps insertion order, so the first key
 * is the least recently seen one; a hit moves its key to the end.
 */
export class SeenEvents {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly maxEvents: number,
    private readonly ttlMs: number | undefined,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  /** Records `key` as seen at `nowMs`; returns true when it was already seen within the window. */
  check(key: string, nowMs: number): boolean {
    const last = this.seen.get(key);
    const duplicate = last !== undefined && (this.ttlMs === undefined || nowMs - last <= this.ttlMs);
    if (last !== undefined) this.seen.delete(key);
    this.seen.set(key, nowMs);
    if (this.seen.size > this.maxEvents) this.seen.delete(this.seen.keys().next().value!);
    return duplicate;
  }
}

export function dedupeKey(
  event: Event,
  fields: readonly FieldPath[] | undefined,
  ignore: ReadonlySet<string> | undefined,
): string {
  if (fields) {
    let key = '';
    for (let i = 0; i < fields.length; i++) {
      const p = fields[i]!;
      if (i > 0) key += SEPARATOR;
      key += valueKey(p.length === 1 ? (Object.hasOwn(event, p[0]!) ? event[p[0]!] : undefined) : getPath(event, p));
    }
    return key;
  }
  let key = '';
  for (const name of Object.keys(event).sort()) {
    if (ignore?.has(name)) continue;
    key += `${JSON.stringify(name)}:${valueKey(event[name])}${SEPARATOR}`;
  }
  return key;
}

export const dedupeTransform = defineTransform({
  kind: 'transform',
  type: 'dedupe',
  description: 'Drops events equal (by listed fields) to one seen recently, within a bounded LRU window; counted.',
  options: dedupeOptions,
  example: `transforms:
  unique:
    type: dedupe
    inputs: [files]
    fields: [_id]                 # redeliveries after a restart carry the same id
    cache: { max_events: 100000, ttl: 10m }`,
  build(options, context) {
    const ignore = options.ignore_fields === undefined ? undefined : new Set(options.ignore_fields);
    const fields =
      ignore !== undefined && options.fields === undefined ? undefined : (options.fields ?? ['_id']).map(compilePath);
    const seen = new SeenEvents(options.cache.max_events, options.cache.ttl);
    const duplicates = context.metrics.counter(
      'fluxo_dedupe_duplicates_total',
      'Events dedupe dropped as duplicates of one seen within its window.',
    );
    const size = context.metrics.gauge('fluxo_dedupe_cache_events', 'Distinct events dedupe currently remembers.');
    return {
      process(events, out) {
        const now = Date.now();
        let kept: Event[] | undefined;
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          const duplicate = seen.check(dedupeKey(e, fields, ignore), now);
          // Until the first duplicate the input array itself is the output.
          if (!duplicate) kept?.push(e);
          else if (!kept) kept = events.slice(0, i);
        }
        const dropped = kept ? events.length - kept.length : 0;
        if (dropped > 0) duplicates.inc(dropped);
        size.set(seen.size);
        out.push(kept ?? events);
      },
    };
  },
});
