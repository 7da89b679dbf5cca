import { z } from 'zod';
import { type CoercionSpec, coercionOption, compileCoercion } from '../../codecs/parsers/coerce.ts';
import { compilePath, deletePath, getPath, hasPath, setPath } from '../../codecs/parsers/field-path.ts';
import { type Fields, ParseFailure } from '../../codecs/parsers/parser.ts';
import { checkTimeZone } from '../../codecs/parsers/time-zone.ts';
import { checkTimestampFormat, compileTimestampParser, toIso } from '../../codecs/parsers/timestamp.ts';
import { checkRedactRegex, REDACT_PATTERNS, Redactor, type RedactPatternName } from '../../codecs/redact.ts';
import { celExpression, compileCel } from '../../core/cel.ts';
import type { Event } from '../../core/event.ts';
import { celToJson } from './cel-value.ts';

/**
 * The steps of `remap`: small declarative operations applied in order to a copy of the event. Each step is a
 * map with one operation key (and an optional `if` CEL condition). A step returns the event to continue with,
 * or a ParseFailure that `on_error` handles. Missing fields are not errors (there is nothing to convert or
 * rename); a value that cannot be converted is.
 */

const paths = z.array(z.string().min(1)).min(1);

const redactStep = z
  .object({
    fields: paths.default(['message']).describe('Fields to redact (strings inside objects and lists too).'),
    patterns: z
      .array(
        z.union([
          z.enum(REDACT_PATTERNS),
          z
            .object({
              regex: z
                .string()
                .superRefine((v, ctx) => {
                  const problem = checkRedactRegex(v);
                  if (problem) ctx.addIssue({ code: 'custom', message: problem });
                })
                .describe('A JavaScript regex; every match is redacted.'),
            })
            .strict(),
        ]),
      )
      .min(1)
      .default([...REDACT_PATTERNS])
      .describe(
        'What to redact: `ipv4`, `ipv6`, `email`, `credit_card` (Luhn-checked) and `{ regex: … }`; default the four built-ins.',
      ),
    replacement: z.string().default('[REDACTED]').describe('What a match becomes (without `hash_key`).'),
    hash_key: z
      .string()
      .min(16, { error: 'hash_key needs at least 16 characters' })
      .optional()
      .describe(
        'Replace each match by HMAC-SHA256(hash_key, match) instead, so equal values stay joinable. Use ${ENV}.',
      ),
    hash_length: z.number().int().min(8).max(64).default(16).describe('Hex characters kept of the keyed hash.'),
  })
  .strict();

const parseTimestampStep = z
  .object({
    field: z.string().min(1).describe('The field holding the time text (or epoch number for unix formats).'),
    format: z
      .string()
      .default('rfc3339')
      .superRefine((v, ctx) => {
        const problem = checkTimestampFormat(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe('strftime format (`%d/%b/%Y:%H:%M:%S %z`) or rfc3339, unix, unix_ms, unix_us, unix_ns.'),
    timezone: z
      .string()
      .default('UTC')
      .superRefine((v, ctx) => {
        const problem = checkTimeZone(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe('Zone of times written without an offset.'),
    target: z.string().min(1).optional().describe('Where the ISO-8601 result goes; default: `field` itself.'),
  })
  .strict();

export const OPERATIONS = [
  'set',
  'rename',
  'delete',
  'keep',
  'coerce',
  'parse_timestamp',
  'lowercase',
  'uppercase',
  'redact',
  'add_tags',
] as const;

export const stepSchema = z
  .object({
    if: celExpression().optional().describe('Apply the step only when this CEL condition is true.'),
    set: z
      .record(z.string().min(1), celExpression())
      .optional()
      .describe(
        'Fields to set from CEL expressions, in order: `{ env: \'"prod"\', status_class: "int(status) / 100" }`.',
      ),
    rename: z
      .record(z.string().min(1), z.string().min(1))
      .optional()
      .describe('`{ old: new }`; missing fields are skipped.'),
    delete: paths.optional().describe('Fields to remove.'),
    keep: paths.optional().describe('Keep only these fields (list `_id` and `timestamp` too if they should stay).'),
    coerce: z
      .record(z.string().min(1), coercionOption())
      .optional()
      .describe('`{ field: type }` conversions, as `parse.types`.'),
    parse_timestamp: parseTimestampStep.optional().describe('Reads a time into an ISO-8601 UTC string.'),
    lowercase: paths.optional().describe('String fields to lower-case.'),
    uppercase: paths.optional().describe('String fields to upper-case.'),
    redact: redactStep.optional().describe('Masks or hashes IP addresses, e-mails, card numbers or a regex.'),
    add_tags: paths.optional().describe('Tags appended (once each) to the `tags` list.'),
  })
  .strict()
  .superRefine((step, ctx) => {
    const ops = OPERATIONS.filter((op) => step[op] !== undefined);
    if (ops.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          ops.length === 0
            ? `a step needs one operation: ${OPERATIONS.join(', ')}`
            : `a step holds one operation, found ${ops.join(' and ')}; write them as separate steps`,
      });
    }
  })
  .describe('One operation, e.g. `{ rename: { msg: message } }`, optionally with `if`.');

export type StepConfig = z.infer<typeof stepSchema>;

/** One compiled step: transforms the owned copy `event` (and may return a new one). */
export type StepFunction = (event: Event) => Event | ParseFailure;

export interface CompiledStep {
  readonly operation: string;
  readonly condition: ((event: Event) => unknown) | undefined;
  readonly apply: StepFunction;
}

function notString(name: string, value: unknown): ParseFailure {
  return new ParseFailure(
    `field ${name} is ${value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value}, not a string`,
  );
}

function caseStep(fields: readonly string[], upper: boolean): StepFunction {
  const compiled = fields.map((f) => ({ name: f, path: compilePath(f) }));
  return (event) => {
    for (const f of compiled) {
      const v = getPath(event, f.path);
      if (v === undefined) continue;
      if (typeof v !== 'string') return notString(f.name, v);
      setPath(event, f.path, upper ? v.toUpperCase() : v.toLowerCase());
    }
    return event;
  };
}

export function compileStep(step: StepConfig): CompiledStep {
  const operation = OPERATIONS.find((op) => step[op] !== undefined)!;
  const condition = step.if === undefined ? undefined : compileCel(step.if);
  return { operation, condition, apply: compileOperation(step, operation) };
}

function compileOperation(step: StepConfig, operation: (typeof OPERATIONS)[number]): StepFunction {
  switch (operation) {
    case 'set': {
      const entries = Object.entries(step.set!).map(([name, expr]) => ({
        name,
        path: compilePath(name),
        evaluate: compileCel(expr),
      }));
      return (event) => {
        for (const e of entries) {
          const value = celToJson(e.evaluate(event));
          if (value === undefined) deletePath(event, e.path);
          else setPath(event, e.path, value);
        }
        return event;
      };
    }
    case 'rename': {
      const entries = Object.entries(step.rename!).map(([from, to]) => ({
        from: compilePath(from),
        to: compilePath(to),
      }));
      return (event) => {
        for (const e of entries) {
          if (!hasPath(event, e.from)) continue;
          const value = getPath(event, e.from);
          deletePath(event, e.from);
          setPath(event, e.to, value);
        }
        return event;
      };
    }
    case 'delete': {
      const list = step.delete!.map(compilePath);
      return (event) => {
        for (const p of list) deletePath(event, p);
        return event;
      };
    }
    case 'keep': {
      const list = step.keep!.map(compilePath);
      return (event) => {
        const next: Event = {};
        for (const p of list) if (hasPath(event, p)) setPath(next, p, getPath(event, p));
        return next;
      };
    }
    case 'coerce': {
      const entries = Object.entries(step.coerce!).map(([name, spec]) => ({
        name,
        path: compilePath(name),
        coerce: compileCoercion(spec as CoercionSpec),
      }));
      return (event) => {
        for (const e of entries) {
          const v = getPath(event, e.path);
          if (v === undefined) continue;
          const converted = e.coerce(v);
          if (converted instanceof ParseFailure) return new ParseFailure(`field ${e.name}: ${converted.reason}`);
          setPath(event, e.path, converted);
        }
        return event;
      };
    }
    case 'parse_timestamp': {
      const o = step.parse_timestamp!;
      const parser = compileTimestampParser(o.format, o.timezone);
      const from = compilePath(o.field);
      const to = compilePath(o.target ?? o.field);
      return (event) => {
        const v = getPath(event, from);
        if (v === undefined) return event;
        const ms = parser.parse(v);
        if (ms instanceof ParseFailure) return new ParseFailure(`field ${o.field}: ${ms.reason}`);
        const iso = toIso(ms);
        if (iso === undefined) return new ParseFailure(`field ${o.field}: timestamp out of range`);
        setPath(event, to, iso);
        return event;
      };
    }
    case 'lowercase':
      return caseStep(step.lowercase!, false);
    case 'uppercase':
      return caseStep(step.uppercase!, true);
    case 'redact': {
      const o = step.redact!;
      const redactor = new Redactor({
        patterns: o.patterns as (RedactPatternName | { regex: string })[],
        replacement: o.replacement,
        hashKey: o.hash_key,
        hashLength: o.hash_length,
      });
      const list = o.fields.map(compilePath);
      return (event) => {
        for (const p of list) {
          const v = getPath(event, p);
          if (v !== undefined) setPath(event, p, redactor.redactValue(v));
        }
        return event;
      };
    }
    case 'add_tags': {
      const tags = step.add_tags!;
      return (event) => {
        const current = (event as Fields).tags;
        let list: unknown[];
        if (current === undefined || current === null) list = [];
        else if (Array.isArray(current)) list = [...current];
        else if (typeof current === 'string') list = [current];
        else return new ParseFailure(`field tags is ${typeof current}, not a list`);
        for (const t of tags) if (!list.includes(t)) list.push(t);
        event.tags = list;
        return event;
      };
    }
  }
}
