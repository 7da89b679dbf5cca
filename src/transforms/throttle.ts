import { z } from 'zod';
import { compilePath, getPath } from '../codecs/parsers/field-path.ts';
import { keyText } from '../codecs/parsers/key-hash.ts';
import { celExpression, compileCel } from '../core/cel.ts';
import { defineTransform } from '../core/component.ts';
import type { Event } from '../core/event.ts';
import { duration } from '../core/units.ts';

export const DROPPED_OUTPUT = 'dropped';

const throttleOptions = z.object({
  threshold: z
    .number()
    .int()
    .positive()
    .describe('Events let through per `window` and key; bursts up to this size pass at once.'),
  window: duration().default(1000).describe('The period `threshold` applies to (`1s`, `1m`).'),
  key_field: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Throttle each value of this field separately (e.g. `host`, `client`); absent: one budget for all events.',
    ),
  exclude: celExpression().optional().describe('Events for which this CEL condition is true are never throttled.'),
  reroute_dropped: z
    .boolean()
    .default(false)
    .describe(`Send throttled events to \`<id>.${DROPPED_OUTPUT}\` instead of dropping them.`),
  max_keys: z
    .number()
    .int()
    .positive()
    .default(10_000)
    .describe('Most keys tracked; the least recently seen key is forgotten first (its budget starts full again).'),
});

/**
 * Token buckets per key: each holds up to `threshold` tokens and refills at threshold/window; an event takes
 * one token or is throttled. The map is an LRU bounded by `maxKeys` so a key per client cannot grow it forever.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly threshold: number,
    windowMs: number,
    private readonly maxKeys: number,
  ) {
    this.perMs = threshold / Math.max(1, windowMs);
  }

  get size(): number {
    return this.buckets.size;
  }

  allow(key: string, nowMs: number): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.threshold, at: nowMs };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    } else {
      this.buckets.delete(key);
      b.tokens = Math.min(this.threshold, b.tokens + Math.max(0, nowMs - b.at) * this.perMs);
      b.at = nowMs;
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export const throttleTransform = defineTransform({
  kind: 'transform',
  type: 'throttle',
  description:
    'Rate-limits events per key (token bucket: threshold per window); throttled events are dropped or rerouted, counted.',
  options: throttleOptions,
  outputs(options) {
    return options.reroute_dropped ? [DROPPED_OUTPUT] : [];
  },
  example: `transforms:
  calm:
    type: throttle
    inputs: [app]
    threshold: 100        # per host and second
    window: 1s
    key_field: host
    exclude: 'severity == "err"'`,
  build(options, context) {
    const buckets = new TokenBuckets(options.threshold, options.window, options.max_keys);
    const keyPath = options.key_field === undefined ? undefined : compilePath(options.key_field);
    const exclude = options.exclude === undefined ? undefined : compileCel(options.exclude);
    const reroute = options.reroute_dropped;
    const throttled = context.metrics.counter(
      'fluxo_throttled_events_total',
      'Events over the throttle budget of their key (dropped, or rerouted to <id>.dropped).',
    );
    return {
      outputs: reroute ? [DROPPED_OUTPUT] : undefined,
      process(events, out) {
        const now = Date.now();
        let passed: Event[] | undefined;
        let dropped: Event[] | undefined;
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          let allow = false;
          if (exclude !== undefined) {
            try {
              allow = exclude(e) === true;
            } catch {
              allow = false;
            }
          }
          if (!allow) {
            const key =
              keyPath === undefined ? '' : keyText(keyPath.length === 1 ? e[keyPath[0]!] : getPath(e, keyPath));
            allow = buckets.allow(key, now);
          }
          if (allow) passed?.push(e);
          else {
            passed ??= events.slice(0, i);
            if (dropped) dropped.push(e);
            else dropped = [e];
          }
        }
        if (dropped) {
          throttled.inc(dropped.length);
          if (reroute) out.push(dropped, DROPPED_OUTPUT);
        }
        out.push(passed ?? events);
      },
    };
  },
});
