import { z } from 'zod';
import { FailedEvents, onErrorOption } from '../codecs/parsers/error-policy.ts';
import { copyFields } from '../codecs/parsers/field-path.ts';
import { ParseFailure } from '../codecs/parsers/parser.ts';
import { defineTransform } from '../core/component.ts';
import type { Event } from '../core/event.ts';
import { type CompiledStep, compileStep, stepSchema } from './remap/steps.ts';

const ERROR_FIELD = '_remap_error';

const remapOptions = z.object({
  steps: z
    .array(stepSchema)
    .min(1)
    .describe(
      'Operations applied in order to a copy of the event, each a map with one operation and an optional `if: CEL` ' +
        '(the step runs when it is true; an error, e.g. a missing field, counts as false): ' +
        '`set: { field: CEL, … }` (in order, each sees the previous; an empty optional removes the field); ' +
        '`rename: { from: to, … }`; `delete: [fields]`; `keep: [fields]` (only these); ' +
        '`coerce: { field: int|float|bool|string|timestamp|"timestamp|FORMAT", … }`; ' +
        '`parse_timestamp: { field, format, timezone, target }`; `lowercase: [fields]`; `uppercase: [fields]`; ' +
        '`redact: { fields: [message], patterns: [ipv4, ipv6, email, credit_card, { regex }], replacement, hash_key, hash_length }`; ' +
        '`add_tags: [tags]` (to the `tags` list). Fields may be nested paths (`http.status`); missing fields are skipped.',
    ),
  on_error: onErrorOption(ERROR_FIELD).describe(
    'When a step fails (a CEL error, a value that cannot be converted): `keep` (default) skips that step, continues with the ' +
      'next ones and records every reason in `_remap_error`; `drop` discards the event; `dead_letter` sends the unchanged event ' +
      'to the dead letter output with the reason. All are counted.',
  ),
});

export const remapTransform = defineTransform({
  kind: 'transform',
  type: 'remap',
  description: 'Reshapes events with ordered declarative steps: set (CEL), rename, delete, keep, coerce, redact, tags…',
  options: remapOptions,
  example: `transforms:
  tidy:
    type: remap
    inputs: [access]
    steps:
      - rename: { client: client_ip }
      - set: { status_class: 'string(int(status) / 100) + "xx"', env: '"prod"' }
      - lowercase: [method]
      - redact: { fields: [client_ip, message], patterns: [ipv4, ipv6, email], hash_key: \${REDACT_KEY} }
      - add_tags: [web]
        if: 'int(status) >= 500'
      - delete: [ident]`,
  build(options, context) {
    const steps: CompiledStep[] = options.steps.map(compileStep);
    const policy = options.on_error;
    const failed = new FailedEvents(context, policy, 'remap_failed');
    /** With on_error keep: the reasons of the steps skipped in the last remapOne call, if any. */
    let skipped: string | undefined;

    /** The remapped copy, or the reason the event failed (drop and dead_letter stop at the first failure). */
    const remapOne = (original: Event): Event | ParseFailure => {
      let event: Event = copyFields(original);
      let reasons: string[] | undefined;
      for (let s = 0; s < steps.length; s++) {
        const step = steps[s]!;
        if (step.condition !== undefined) {
          let pass: unknown;
          try {
            pass = step.condition(event);
          } catch {
            pass = false; // a condition on a missing field is false, as in filter
          }
          if (pass !== true) continue;
        }
        let result: Event | ParseFailure;
        try {
          result = step.apply(event);
        } catch (error) {
          result = new ParseFailure(firstLine((error as Error).message));
        }
        if (!(result instanceof ParseFailure)) {
          event = result;
          continue;
        }
        const reason = `step ${s + 1} (${step.operation}): ${result.reason}`;
        if (policy !== 'keep') return new ParseFailure(reason);
        reasons ??= [];
        reasons.push(reason);
      }
      skipped = reasons?.join('; ');
      if (skipped !== undefined) event[ERROR_FIELD] = skipped;
      return event;
    };

    return {
      process(events, out) {
        const result: Event[] = [];
        for (let i = 0; i < events.length; i++) {
          const original = events[i]!;
          let remapped: Event | ParseFailure;
          try {
            remapped = remapOne(original);
          } catch (error) {
            remapped = new ParseFailure(`remap failed: ${(error as Error).message}`);
          }
          if (!(remapped instanceof ParseFailure)) {
            if (skipped !== undefined) failed.add(original, skipped);
            result.push(remapped);
            continue;
          }
          failed.add(original, remapped.reason);
        }
        failed.flush(out);
        out.push(result);
      },
    };
  },
});

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}
