import { z } from 'zod';
import { excerpt, ParseFailure } from './parser.ts';
import { checkTimeZone } from './time-zone.ts';
import { checkTimestampFormat, compileTimestampParser, toIso } from './timestamp.ts';

/**
 * Type coercion of parsed fields (`parse.types`, remap `coerce`, grok `%{NUMBER:bytes:int}`). Lenient in
 * what it reads the way Logstash's `convert` is ("200" → 200, "1.5" → 1 for int, "yes" → true), strict in
 * what it gives: a number, a boolean, or an ISO-8601 timestamp string, never NaN.
 */

export const COERCION_TYPES = ['string', 'int', 'float', 'bool', 'timestamp'] as const;
export type CoercionType = (typeof COERCION_TYPES)[number];

export interface CoercionSpec {
  type: CoercionType;
  /** For timestamps: a strftime format or a named one (rfc3339, unix, unix_ms…). */
  format?: string;
  /** For timestamps written without an offset. */
  timezone?: string;
}

/** Why a coercion spec cannot be used, or undefined. */
export function checkCoercion(spec: CoercionSpec): string | undefined {
  if (spec.type !== 'timestamp') {
    if (spec.format !== undefined || spec.timezone !== undefined)
      return `format and timezone apply to type timestamp only, not ${spec.type}`;
    return undefined;
  }
  if (spec.format !== undefined) {
    const problem = checkTimestampFormat(spec.format);
    if (problem) return problem;
  }
  if (spec.timezone !== undefined) return checkTimeZone(spec.timezone);
  return undefined;
}

/** `int`, `timestamp|%d/%b/%Y:%T %z` (Vector's shorthand) or `{ type: timestamp, format, timezone }`. */
export function parseCoercionText(text: string): CoercionSpec | string {
  const bar = text.indexOf('|');
  const type = (bar < 0 ? text : text.slice(0, bar)).trim();
  if (!(COERCION_TYPES as readonly string[]).includes(type)) {
    return `unknown type "${type}"; expected one of: ${COERCION_TYPES.join(', ')} (or timestamp|FORMAT)`;
  }
  if (bar < 0) return { type: type as CoercionType };
  if (type !== 'timestamp') return `only timestamp takes a format after "|", not ${type}`;
  return { type: 'timestamp', format: text.slice(bar + 1) };
}

/** The zod option for one field's type, as written in a config. */
export function coercionOption() {
  return z
    .union([
      z.string(),
      z
        .object({
          type: z.enum(COERCION_TYPES).describe('The type to convert to.'),
          format: z
            .string()
            .optional()
            .describe(
              'Timestamps: a strftime format (`%d/%b/%Y:%H:%M:%S %z`) or rfc3339, unix, unix_ms, unix_us, unix_ns.',
            ),
          timezone: z
            .string()
            .optional()
            .describe('Timestamps without an offset: an IANA zone (Europe/Paris), UTC, local or +02:00; default UTC.'),
        })
        .strict(),
    ])
    .superRefine((value, ctx) => {
      const spec = typeof value === 'string' ? parseCoercionText(value) : value;
      const problem = typeof spec === 'string' ? spec : checkCoercion(spec);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .transform(
      (value): CoercionSpec => (typeof value === 'string' ? (parseCoercionText(value) as CoercionSpec) : value),
    )
    .describe(
      'string, int, float, bool, timestamp (RFC 3339), `timestamp|FORMAT`, or `{ type: timestamp, format, timezone }`.',
    );
}

export type Coercion = (value: unknown) => unknown;

const INTEGER = /^\s*[+-]?\d+\s*$/;
const DECIMAL = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', 'off', '0']);

function describe(value: unknown): string {
  if (typeof value === 'string') return excerpt(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : String(value);
}

function toInt(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? Math.trunc(value) : cannot(value, 'int');
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') {
    if (INTEGER.test(value)) {
      const n = Number(value);
      return Number.isSafeInteger(n) ? n : new ParseFailure(`integer out of range: ${excerpt(value)}`);
    }
    if (DECIMAL.test(value)) {
      const n = Math.trunc(Number(value));
      if (Number.isSafeInteger(n)) return n;
    }
  }
  return cannot(value, 'int');
}

function toFloat(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : cannot(value, 'float');
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && DECIMAL.test(value)) {
    const n = Number(value);
    if (Number.isFinite(n)) return n;
  }
  return cannot(value, 'float');
}

function toBool(value: unknown): unknown {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'string') {
    const w = value.trim().toLowerCase();
    if (TRUE_WORDS.has(w)) return true;
    if (FALSE_WORDS.has(w)) return false;
  }
  return cannot(value, 'bool');
}

function toText(value: unknown): unknown {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

function cannot(value: unknown, type: string): ParseFailure {
  return new ParseFailure(`cannot convert ${describe(value)} to ${type}`);
}

/** Compiles one coercion; the result returns the converted value or a ParseFailure. null stays null. */
export function compileCoercion(spec: CoercionSpec): Coercion {
  switch (spec.type) {
    case 'int':
      return (v) => (v === null ? v : toInt(v));
    case 'float':
      return (v) => (v === null ? v : toFloat(v));
    case 'bool':
      return (v) => (v === null ? v : toBool(v));
    case 'string':
      return (v) => (v === null ? v : toText(v));
    case 'timestamp': {
      const parser = compileTimestampParser(spec.format ?? 'rfc3339', spec.timezone ?? 'UTC');
      return (v) => {
        if (v === null) return v;
        const ms = parser.parse(v);
        if (ms instanceof ParseFailure) return ms;
        return toIso(ms) ?? new ParseFailure(`timestamp out of range: ${describe(v)}`);
      };
    }
  }
}
