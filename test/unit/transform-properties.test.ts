import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileGrok } from '../../src/codecs/grok.ts';
import { parseAccessLog } from '../../src/codecs/parsers/access-log.ts';
import { COERCION_TYPES, compileCoercion } from '../../src/codecs/parsers/coerce.ts';
import { parseCsv } from '../../src/codecs/parsers/csv.ts';
import { parseJson } from '../../src/codecs/parsers/json.ts';
import { encodeLogfmt, parseKeyValue, parseLogfmt } from '../../src/codecs/parsers/key-value.ts';
import { parseNginxError } from '../../src/codecs/parsers/nginx-error.ts';
import { ParseFailure } from '../../src/codecs/parsers/parser.ts';
import { timeZone } from '../../src/codecs/parsers/time-zone.ts';
import { compileTimestampParser } from '../../src/codecs/parsers/timestamp.ts';
import { REDACT_PATTERNS, Redactor } from '../../src/codecs/redact.ts';
import type { TransformDefinition } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';
import { PARSE_FORMATS } from '../../src/transforms/parse/parsers.ts';
import { parseTransform } from '../../src/transforms/parse.ts';
import { remapTransform } from '../../src/transforms/remap.ts';
import { componentContext } from '../helpers/context.ts';

const RUNS = { numRuns: 300 };

/** Strings that look like log lines half the time: real prefixes cut and spliced with arbitrary text. */
const SAMPLES = [
  '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8"',
  '2025/03/05 14:02:17 [error] 1#1: *2 oops, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1"',
  '<165>1 2003-10-11T22:14:15.003Z host app - ID47 [id@1 a="b\\"c"] msg',
  '<13>Mar  5 14:02:17 web01 sshd[1234]: Accepted',
  'level=info msg="a \\"b\\"" flag',
  '{"a":[1,{"b":null}],"c":"\\u0000"}',
  'a,"b,""c""",d',
];
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc
    .tuple(fc.constantFrom(...SAMPLES), fc.nat(), fc.string({ unit: 'binary', maxLength: 40 }))
    .map(([s, cut, junk]) => s.slice(0, cut % (s.length + 1)) + junk),
  fc.tuple(fc.constantFrom(...SAMPLES), fc.nat(), fc.string({ maxLength: 5 })).map(([s, at, junk]) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + junk + s.slice(i + 1);
  }),
);
const key = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).filter((k) => k !== '__proto__');
/** Events as they arrive from anywhere: any JSON, `message` often a string, sometimes not. */
const event = fc
  .tuple(
    fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
    fc.oneof(text, fc.jsonValue({ maxDepth: 2 })),
    fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.constant('503')), { nil: undefined }),
  )
  .map(([fields, message, status]) => ({ ...fields, message, ...(status === undefined ? {} : { status }) }) as Event);

/**
 * fast-check makes some objects without a prototype where parsers make plain ones, and JSON has no -0 (it is
 * written `0`): compare the data JSON can carry.
 */
function plain(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    Object.defineProperty(out, k, { value: plain(v), enumerable: true, writable: true, configurable: true });
  return out;
}

function runTransform(def: TransformDefinition, options: unknown, events: Event[]): Event[] {
  const t = def.build(def.options.parse(options) as never, componentContext('p', '/x', 'transform', def.type));
  const out: Event[] = [];
  t.process(events, { push: (e) => out.push(...e), deadLetter: (e) => out.push(...e) });
  return out;
}

describe('property: no parser throws, whatever the input', () => {
  const grok = [
    '%{COMBINEDAPACHELOG}',
    '%{SYSLOGLINE}',
    '%{NGINX_ERROR}',
    '%{JAVASTACKTRACEPART}',
    '%{SYSLOG5424LINE}',
  ].map((p) => compileGrok(p));
  const zone = timeZone('Europe/Paris');
  const parsers: [string, (s: string) => unknown][] = [
    ['apache_combined', (s) => parseAccessLog(s, true)],
    ['apache_common', (s) => parseAccessLog(s, false)],
    ['nginx_error', (s) => parseNginxError(s, zone)],
    ['json', parseJson],
    ['logfmt', parseLogfmt],
    ['key_value', (s) => parseKeyValue(s, { keyValueDelimiter: ':', fieldDelimiter: ',', acceptStandaloneKey: false })],
    ['csv', (s) => parseCsv(s, { delimiter: ',', quote: '"', columns: ['a', 'b', 'c'] })],
    ['strptime', (s) => compileTimestampParser('%d/%b/%Y:%H:%M:%S %z').parse(s)],
    ['rfc3339', (s) => compileTimestampParser('rfc3339', 'America/New_York').parse(s)],
    ...grok.map((g) => [`grok ${g.source}`, (s: string) => g.match(s)] as [string, (s: string) => unknown]),
  ];
  for (const [name, parse] of parsers) {
    it(name, () => {
      fc.assert(
        fc.property(text, (s) => {
          const r = parse(s);
          assert.ok(
            r === undefined ||
              r instanceof ParseFailure ||
              typeof r === 'number' ||
              (typeof r === 'object' && r !== null) ||
              typeof r === 'string' ||
              typeof r === 'boolean' ||
              r === null,
          );
        }),
        RUNS,
      );
    });
  }

  it('coercions take any value', () => {
    const coercions = COERCION_TYPES.map((type) => compileCoercion({ type }));
    fc.assert(
      fc.property(fc.anything(), (v) => {
        for (const c of coercions) {
          const r = c(v);
          if (typeof r === 'number') assert.ok(Number.isFinite(r));
        }
      }),
      RUNS,
    );
  });

  it('redaction of any string never throws and is idempotent when masking', () => {
    const r = new Redactor({ patterns: [...REDACT_PATTERNS], replacement: '[REDACTED]' });
    fc.assert(
      fc.property(text, (s) => {
        const once = r.redactString(s);
        assert.equal(r.redactString(once), once);
      }),
      RUNS,
    );
  });
});

describe('property: the parse transform on any event', () => {
  const formatOptions: Record<string, Record<string, unknown>> = {
    regex: { pattern: '^(?<word>\\w+)' },
    grok: { pattern: ['%{COMBINEDAPACHELOG}', '%{WORD:w} %{INT:n:int}'] },
    csv: { columns: ['a', 'b'] },
  };
  for (const format of PARSE_FORMATS) {
    it(`${format}: never throws, keeps one event per input, never changes the input`, () => {
      fc.assert(
        fc.property(fc.array(event, { maxLength: 8 }), (events) => {
          const before = structuredClone(events);
          const out = runTransform(
            parseTransform as never,
            { format, types: { status: 'int', n: 'float' }, ...formatOptions[format] },
            events,
          );
          assert.equal(out.length, events.length);
          assert.deepEqual(plain(events), plain(before));
          for (const e of out) assert.ok(e._parse_error === undefined || typeof e._parse_error === 'string');
        }),
        { numRuns: 100 },
      );
    });
  }
});

describe('property: every remap step on any event', () => {
  const steps: Record<string, unknown>[] = [
    { set: { a: 'status + 1', 'b.c': 'message', d: '{"x": [1, 2u, b"z"]}', e: 'timestamp("2025-01-01T00:00:00Z")' } },
    { rename: { message: 'msg.text', status: 'code' } },
    { delete: ['msg.text', 'zzz', 'b'] },
    { coerce: { code: 'int', a: 'float', d: 'string', e: 'timestamp' } },
    { parse_timestamp: { field: 'e', format: 'rfc3339', target: 'ts' } },
    { lowercase: ['msg.text', 'code'] },
    { uppercase: ['d'] },
    { redact: { fields: ['msg', 'd', 'a'], hash_key: 'x'.repeat(16) } },
    { add_tags: ['t1', 't2'], if: 'has(code)' },
    { keep: ['msg', 'code', 'tags', 'ts', 'a', '_remap_error'] },
  ];
  for (const onError of ['keep', 'drop', 'dead_letter']) {
    it(`on_error ${onError}: never throws, never changes the input`, () => {
      fc.assert(
        fc.property(fc.array(event, { maxLength: 8 }), (events) => {
          const before = structuredClone(events);
          const out = runTransform(remapTransform as never, { steps, on_error: onError }, events);
          if (onError === 'drop') assert.ok(out.length <= events.length);
          else assert.equal(out.length, events.length, 'every event comes out, remapped or dead-lettered');
          assert.deepEqual(plain(events), plain(before));
          for (const e of out) assert.doesNotThrow(() => JSON.stringify(e));
        }),
        { numRuns: 150 },
      );
    });
  }
  for (const step of steps) {
    it(`${Object.keys(step).find((k) => k !== 'if')} alone`, () => {
      fc.assert(
        fc.property(event, (e) => {
          const out = runTransform(remapTransform as never, { steps: [step] }, [e]);
          assert.equal(out.length, 1);
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe('property: round trips', () => {
  it('json: text written by JSON.stringify parses back to the same value, and into the event root', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        assert.deepEqual(parseJson(JSON.stringify(value)), plain(value));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue({ maxDepth: 3 })), (fields) => {
        const [out] = runTransform(parseTransform as never, { format: 'json', drop_field: true }, [
          { message: JSON.stringify(fields) },
        ]);
        assert.deepEqual(out, plain(fields));
      }),
      RUNS,
    );
  });

  it('logfmt: any keys and string or flag values survive encode then parse', () => {
    fc.assert(
      fc.property(
        fc.dictionary(key, fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.constant(true as const))),
        (fields) => {
          assert.deepEqual(parseLogfmt(encodeLogfmt(fields)), plain(fields));
        },
      ),
      RUNS,
    );
  });
});
