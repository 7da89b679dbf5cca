import { z } from 'zod';
import { compilePath, copyFields, getPath } from '../codecs/parsers/field-path.ts';
import { hashKey, keyText } from '../codecs/parsers/key-hash.ts';
import { celExpression, compileCel } from '../core/cel.ts';
import { defineTransform } from '../core/component.ts';
import type { Event } from '../core/event.ts';

const sampleOptions = z.object({
  rate: z.number().int().min(1).describe('Keep 1 event in `rate` (10 keeps 10 %); 1 keeps everything.'),
  key_field: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Decide by a hash of this field instead of counting, e.g. `request_id`: every event of one request is kept or dropped ' +
        'together, on every agent. Events without the field are counted 1-in-rate.',
    ),
  exclude: celExpression()
    .optional()
    .describe('Events for which this CEL condition is true are always kept, e.g. `int(status) >= 500`.'),
  rate_field: z
    .string()
    .min(1)
    .optional()
    .describe('Set this field to `rate` on kept events, so counts can be scaled back up downstream.'),
});

export const sampleTransform = defineTransform({
  kind: 'transform',
  type: 'sample',
  description: 'Keeps 1 event in N, by count or by a hash of a key so related events stay together; drops are counted.',
  options: sampleOptions,
  example: `transforms:
  sampled:
    type: sample
    inputs: [access]
    rate: 10                      # keep 10 %
    key_field: request_id         # all events of a request together
    exclude: 'int(status) >= 500' # never drop errors`,
  build(options) {
    const rate = options.rate;
    const keyPath = options.key_field === undefined ? undefined : compilePath(options.key_field);
    const exclude = options.exclude === undefined ? undefined : compileCel(options.exclude);
    const rateField = options.rate_field;
    let counter = 0;
    /** 0 to drop the event, else the rate it stands for: 1 when excluded from sampling, `rate` when sampled. */
    const weight = (event: Event): number => {
      if (exclude !== undefined) {
        try {
          if (exclude(event) === true) return 1;
        } catch {
          // an exclude condition that cannot be evaluated does not exclude
        }
      }
      if (keyPath !== undefined) {
        const value = keyPath.length === 1 ? event[keyPath[0]!] : getPath(event, keyPath);
        if (value !== undefined && value !== null) return hashKey(keyText(value)) % rate === 0 ? rate : 0;
      }
      return counter++ % rate === 0 ? rate : 0;
    };
    return {
      process(events, out) {
        if (rate === 1 && rateField === undefined) {
          out.push(events);
          return;
        }
        const kept: Event[] = [];
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          const w = weight(e);
          if (w === 0) continue;
          if (rateField === undefined) kept.push(e);
          else {
            const weighted = copyFields(e);
            weighted[rateField] = w;
            kept.push(weighted);
          }
        }
        out.push(kept);
      },
    };
  },
});
