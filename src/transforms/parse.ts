import { z } from 'zod';
import { type Coercion, type CoercionSpec, coercionOption, compileCoercion } from '../codecs/parsers/coerce.ts';
import { FailedEvents, onErrorOption } from '../codecs/parsers/error-policy.ts';
import { compilePath, copyFields, type FieldPath, getPath, setPath } from '../codecs/parsers/field-path.ts';
import { type Fields, ParseFailure, setField } from '../codecs/parsers/parser.ts';
import { checkTimeZone } from '../codecs/parsers/time-zone.ts';
import { defineTransform } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { buildDirectParser, buildParser, PARSE_FORMATS, parserSettingsProblems } from './parse/parsers.ts';

const ERROR_FIELD = '_parse_error';

const parseOptions = z
  .object({
    format: z
      .enum(PARSE_FORMATS)
      .describe(
        'How to read the field: `json`, `logfmt`, `key_value`, `csv`, `regex` (named groups), `grok` (Logstash patterns), ' +
          '`apache_combined` / `apache_common` (also nginx `combined`), `nginx_error`, `syslog` (RFC 5424 and 3164, with or without `<PRI>`).',
      ),
    field: z
      .string()
      .min(1)
      .default('message')
      .describe('The field holding the text to parse (`a.b` for a nested one).'),
    target: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Where the parsed fields go: this field (`a.b` nests); absent: the event root, parsed fields winning over existing ones.',
      ),
    pattern: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .optional()
      .describe(
        '`regex` and `grok`: the pattern, or a list tried in order (first match wins). Grok: `%{IPORHOST:client} %{NUMBER:bytes:int}`; ' +
          'regex: JavaScript syntax with named groups `(?<status>\\d+)`.',
      ),
    pattern_definitions: z
      .record(z.string(), z.string())
      .default({})
      .describe('`grok`: your own patterns, `NAME: regex`, usable as %{NAME}; they may use the bundled ones.'),
    pattern_files: z
      .array(z.string())
      .default([])
      .describe('`grok`: Logstash pattern files (`NAME regex` per line) to load at start.'),
    columns: z.array(z.string().min(1)).min(1).optional().describe('`csv`: the field names, in order.'),
    delimiter: z.string().min(1).default(',').describe('`csv`: the field separator.'),
    quote: z.string().length(1).default('"').describe('`csv`: the quote character (doubled inside a quoted field).'),
    key_value_delimiter: z.string().min(1).default('=').describe('`key_value`: between a key and its value.'),
    field_delimiter: z
      .string()
      .min(1)
      .default(' ')
      .describe('`key_value`: between pairs; a space means any run of whitespace.'),
    timezone: z
      .string()
      .default('UTC')
      .superRefine((value, ctx) => {
        const problem = checkTimeZone(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe(
        'Zone of timestamps written without an offset (`nginx_error`, and `types` timestamps that name none): IANA name, UTC, local or +02:00.',
      ),
    types: z
      .record(z.string(), coercionOption())
      .default({})
      .describe(
        'Type conversions of parsed fields, e.g. `{ status: int, took: float, ok: bool, ts: "timestamp|%d/%b/%Y:%T %z" }`.',
      ),
    drop_field: z
      .boolean()
      .default(false)
      .describe('Remove `field` once it was parsed successfully (it stays on failure).'),
    on_error: onErrorOption(ERROR_FIELD),
  })
  .superRefine((options, ctx) => {
    for (const p of parserSettingsProblems(options))
      ctx.addIssue({ code: 'custom', message: p.message, path: [p.path] });
  });

export type ParseOptions = z.infer<typeof parseOptions>;

export const parseTransform = defineTransform({
  kind: 'transform',
  type: 'parse',
  description:
    'Parses a text field (JSON, logfmt, CSV, key=value, regex, grok, access logs, syslog) into typed fields.',
  options: parseOptions,
  example: `transforms:
  access:
    type: parse
    inputs: [web]
    format: apache_combined          # client, method, path, status (int), bytes (int), referrer, agent, timestamp
    on_error: keep                   # unparsable lines pass on with _parse_error set
  app:
    type: parse
    inputs: [app_logs]
    format: grok
    pattern: '%{TIMESTAMP_ISO8601:ts} %{LOGLEVEL:level} \\[%{DATA:thread}\\] %{JAVACLASS:class} - %{GREEDYDATA:msg}'
    types: { ts: timestamp }`,
  build(options, context) {
    const problems = parserSettingsProblems(options);
    if (problems.length > 0) {
      throw new FluxoError(
        'FLUXO_CONFIG_INVALID',
        `transform ${context.id}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      );
    }
    const parser = buildParser(options);
    const field = options.field;
    const fieldPath = compilePath(field);
    const simpleField = fieldPath.length === 1;
    const targetPath = options.target === undefined ? undefined : compilePath(options.target);
    const dropField = options.drop_field;
    const rootJson = options.format === 'json' && targetPath === undefined;
    const coercions: { path: FieldPath; name: string; coerce: Coercion }[] = Object.entries(options.types).map(
      ([name, spec]) => ({
        name,
        path: compilePath(name),
        coerce: compileCoercion(withDefaultZone(spec as CoercionSpec, options.timezone)),
      }),
    );
    const policy = options.on_error;
    const failed = new FailedEvents(context, policy, 'parse_failed');
    const missing = `field ${field} is missing`;
    const notText = `field ${field} is not a string`;

    /** The parsed value of one event, or the reason it failed. */
    const parseOne = (event: Event): unknown => {
      const raw = simpleField ? event[field] : getPath(event, fieldPath);
      if (typeof raw !== 'string') return new ParseFailure(raw === undefined ? missing : notText);
      let parsed: unknown;
      try {
        parsed = parser(raw);
      } catch (error) {
        return new ParseFailure(`parser failed: ${(error as Error).message}`);
      }
      if (parsed instanceof ParseFailure) return parsed;
      if (rootJson && (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))) {
        return new ParseFailure('the JSON value is not an object; set a target to keep arrays and scalars');
      }
      for (const c of coercions) {
        const container = parsed as Fields;
        const value = c.path.length === 1 ? container[c.name] : getPath(container, c.path);
        if (value === undefined) continue;
        const converted = c.coerce(value);
        if (converted instanceof ParseFailure) return new ParseFailure(`field ${c.name}: ${converted.reason}`);
        if (c.path.length === 1) setField(container, c.name, converted);
        else setPath(container, c.path, converted);
      }
      return parsed;
    };

    const dropKey = dropField && simpleField ? field : undefined;
    // Access lines into the event root without conversions (the default config): the parser writes into the
    // event's copy, one object per line instead of two and no merge.
    const direct = targetPath === undefined && coercions.length === 0 ? buildDirectParser(options) : undefined;
    const parseInto = (event: Event): Event | ParseFailure => {
      const raw = simpleField ? event[field] : getPath(event, fieldPath);
      if (typeof raw !== 'string') return new ParseFailure(raw === undefined ? missing : notText);
      const next = copyFields(event, {}, dropKey);
      if (dropField && !simpleField) removeNested(next, fieldPath);
      const r = direct!(raw, next);
      return r instanceof ParseFailure ? r : next;
    };
    const merge = (event: Event, parsed: unknown): Event => {
      const next = copyFields(event, {}, dropKey);
      if (dropField && !simpleField) removeNested(next, fieldPath);
      if (targetPath === undefined) copyFields(parsed as Fields, next);
      else setPath(next, targetPath, parsed);
      return next;
    };

    return {
      process(events, out) {
        const result: Event[] = [];
        for (let i = 0; i < events.length; i++) {
          const event = events[i]!;
          let parsed: unknown;
          try {
            if (direct !== undefined) {
              parsed = parseInto(event);
              if (!(parsed instanceof ParseFailure)) {
                result.push(parsed as Event);
                continue;
              }
            } else parsed = parseOne(event);
            if (!(parsed instanceof ParseFailure)) {
              result.push(merge(event, parsed));
              continue;
            }
          } catch (error) {
            parsed = new ParseFailure(`parse failed: ${(error as Error).message}`);
          }
          const reason = (parsed as ParseFailure).reason;
          failed.add(event, reason);
          if (policy === 'keep') {
            const flagged = copyFields(event);
            flagged[ERROR_FIELD] = reason;
            result.push(flagged);
          }
        }
        failed.flush(out);
        out.push(result);
      },
    };
  },
});

function withDefaultZone(spec: CoercionSpec, zone: string): CoercionSpec {
  return spec.type === 'timestamp' && spec.timezone === undefined ? { ...spec, timezone: zone } : spec;
}

/** Removes a nested field from `next` (a fresh copy), copying the objects along the path. */
function removeNested(next: Event, path: FieldPath): void {
  let parent: Fields = next;
  for (let i = 0; i < path.length - 1; i++) {
    const child = parent[path[i]!];
    if (child === null || typeof child !== 'object' || Array.isArray(child)) return;
    const copy = copyFields(child as Fields);
    setField(parent, path[i]!, copy);
    parent = copy;
  }
  delete parent[path[path.length - 1]!];
}
