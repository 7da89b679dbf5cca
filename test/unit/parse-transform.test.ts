import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigTexts } from '../../src/config/load.ts';
import type { TransformDefinition } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';
import { fullRegistry } from '../../src/registry.ts';
import { parseTransform } from '../../src/transforms/parse.ts';
import { componentContext } from '../helpers/context.ts';

const registry = await fullRegistry();

/** Builds a transform from options as a config gives them (defaults applied) and runs one batch. */
function run(options: Record<string, unknown>, events: Event[], def: TransformDefinition = parseTransform as never) {
  const ctx = componentContext('p', '/nonexistent', 'transform', def.type);
  const transform = def.build(def.options.parse(options) as never, ctx);
  const pushed: Event[] = [];
  const dead: { events: Event[]; reason: string }[] = [];
  transform.process(events, {
    push: (e) => pushed.push(...e),
    deadLetter: (e, reason) => dead.push({ events: e, reason }),
  });
  const metrics = async () => ctx.pipelineMetrics.registry.metrics();
  return { pushed, dead, metrics };
}

const ACCESS = '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET /cart HTTP/1.1" 200 512 "-" "curl/8.5"';

describe('parse transform', () => {
  it('merges parsed fields into the event root, parsed fields winning, the input untouched', () => {
    const input = Object.freeze({ message: ACCESS, timestamp: '2030-01-01T00:00:00.000Z', host: 'web1', _id: 'x' });
    const { pushed } = run({ format: 'apache_combined' }, [input]);
    assert.equal(pushed.length, 1);
    assert.notEqual(pushed[0], input);
    assert.deepEqual(pushed[0], {
      message: ACCESS,
      timestamp: '2025-03-05T14:02:17.000Z',
      host: 'web1',
      _id: 'x',
      client: '203.0.113.9',
      method: 'GET',
      path: '/cart',
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: 512,
      agent: 'curl/8.5',
    });
  });

  it('writes to a target field and can drop the source field', () => {
    const { pushed } = run({ format: 'json', field: 'payload', target: 'data.parsed', drop_field: true }, [
      { payload: '[1,2]', data: { kept: true } },
    ]);
    assert.deepEqual(pushed, [{ data: { kept: true, parsed: [1, 2] } }]);
    const root = run({ format: 'logfmt', drop_field: true }, [{ message: 'a=1 b=two', host: 'h' }]);
    assert.deepEqual(root.pushed, [{ host: 'h', a: '1', b: 'two' }]);
  });

  it('reads a nested field', () => {
    const { pushed } = run({ format: 'key_value', field: 'raw.line' }, [{ raw: { line: 'k=v' } }]);
    assert.deepEqual(pushed, [{ raw: { line: 'k=v' }, k: 'v' }]);
  });

  it('coerces types: int, float, bool, timestamp with format and the transform’s zone', () => {
    const { pushed } = run(
      {
        format: 'logfmt',
        timezone: 'Europe/Paris',
        types: {
          status: 'int',
          took: 'float',
          ok: 'bool',
          at: 'timestamp|%F %T',
          utc: { type: 'timestamp', format: '%F %T', timezone: 'UTC' },
        },
      },
      [{ message: 'status=503 took=0.25 ok=false at="2025-07-01 12:00:00" utc="2025-07-01 12:00:00"' }],
    );
    assert.deepEqual(pushed[0], {
      message: 'status=503 took=0.25 ok=false at="2025-07-01 12:00:00" utc="2025-07-01 12:00:00"',
      status: 503,
      took: 0.25,
      ok: false,
      at: '2025-07-01T10:00:00.000Z',
      utc: '2025-07-01T12:00:00.000Z',
    });
  });

  it('on_error keep (default) passes the event on with _parse_error, counted', async () => {
    const { pushed, dead, metrics } = run({ format: 'apache_combined' }, [
      { message: 'garbage' },
      { message: ACCESS },
      { n: 1 },
    ]);
    assert.equal(pushed.length, 3);
    assert.match(pushed[0]!._parse_error as string, /^not an access log line/);
    assert.equal(pushed[0]!.message, 'garbage');
    assert.equal(pushed[1]!._parse_error, undefined);
    assert.equal(pushed[2]!._parse_error, 'field message is missing');
    assert.equal(dead.length, 0);
    assert.match(await metrics(), /fluxo_component_errors_total\{[^}]*error_type="parse_failed"\} 2/);
  });

  it('a type that cannot be converted is a parse error with the field named', () => {
    const { pushed } = run({ format: 'logfmt', types: { status: 'int' } }, [{ message: 'status=abc' }]);
    assert.equal(pushed[0]!._parse_error, 'field status: cannot convert "abc" to int');
    assert.equal(pushed[0]!.status, undefined);
  });

  it('on_error drop discards and counts; dead_letter sends the unchanged events grouped by reason', async () => {
    const dropped = run({ format: 'json', on_error: 'drop' }, [
      { message: '{' },
      { message: '{"a":1}' },
      { message: 5 },
    ]);
    assert.deepEqual(dropped.pushed, [{ message: '{"a":1}', a: 1 }]);
    assert.match(await dropped.metrics(), /error_type="parse_failed"\} 2/);

    const original = { message: 'nope' };
    const dl = run({ format: 'json', on_error: 'dead_letter' }, [original, { message: '[1]' }, { message: 'nope2' }]);
    assert.equal(dl.pushed.length, 0);
    const reasons = dl.dead.map((d) => d.reason).sort();
    assert.equal(dl.dead.flatMap((d) => d.events).length, 3);
    assert.ok(
      dl.dead.some((d) => d.events[0] === original),
      'the original event object, unchanged',
    );
    assert.ok(
      reasons.some((r) => r.includes('not an object')),
      reasons.join('|'),
    );
  });

  it('parses syslog with and without <PRI>, with and without structured data', () => {
    const { pushed } = run({ format: 'syslog' }, [
      {
        message:
          '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event',
      },
      { message: "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed" },
      { message: '<13>Mar  5 14:02:17 web01 sshd[1234]: Accepted publickey for deploy' },
      { message: 'Mar  5 14:02:17 web01 CRON[99]: (root) CMD (run-parts /etc/cron.hourly)' },
    ]);
    assert.deepEqual(
      pushed.map((e) => [e.facility, e.severity, e.hostname, e.appname, e.procid, e.msgid, e.message, e._parse_error]),
      [
        ['local4', 'notice', 'mymachine.example.com', 'evntslog', undefined, 'ID47', 'An application event', undefined],
        ['auth', 'crit', 'mymachine.example.com', 'su', undefined, 'ID47', "BOM'su root' failed", undefined],
        ['user', 'notice', 'web01', 'sshd', '1234', undefined, 'Accepted publickey for deploy', undefined],
        [undefined, undefined, 'web01', 'CRON', '99', undefined, '(root) CMD (run-parts /etc/cron.hourly)', undefined],
      ],
    );
    assert.deepEqual(pushed[0]!.structured_data, { 'exampleSDID@32473': { iut: '3', eventSource: 'Application' } });
    assert.equal(pushed[0]!.timestamp, '2003-10-11T22:14:15.003Z');
    assert.equal(pushed[1]!.structured_data, undefined);
  });

  it('parses with grok, user patterns and several patterns in order', () => {
    const { pushed } = run(
      {
        format: 'grok',
        pattern: ['%{ORDER:order} shipped', '%{GREEDYDATA:other}'],
        pattern_definitions: { ORDER: 'ORD-%{INT}' },
        types: {},
      },
      [{ message: 'ORD-42 shipped' }, { message: 'hello' }],
    );
    assert.deepEqual(
      pushed.map((e) => [e.order, e.other]),
      [
        ['ORD-42', undefined],
        [undefined, 'hello'],
      ],
    );
  });

  it('parses csv into columns', () => {
    const { pushed } = run({ format: 'csv', columns: ['id', 'name'], types: { id: 'int' } }, [
      { message: '7,"Doe, J."' },
    ]);
    assert.deepEqual(pushed, [{ message: '7,"Doe, J."', id: 7, name: 'Doe, J.' }]);
  });

  it('rejects incoherent options when the config is validated (and at build)', () => {
    const load = (transform: string) =>
      loadConfigTexts(
        [
          {
            file: 'c.yaml',
            text: `api: { enabled: false }\nsources:\n  in: { type: stdin }\ntransforms:\n  p: { type: parse, inputs: [in], ${transform} }\nsinks:\n  out: { type: blackhole, inputs: [p] }\n`,
          },
        ],
        registry,
      );
    assert.throws(() => load('format: apache_combined, timezone: Mars/Base'), /unknown time zone/);
    assert.throws(() => load('format: json, types: { a: integer }'), /unknown type "integer"/);
    assert.throws(() => load('format: json, formt: x'), /unknown key "formt"; did you mean "format"/);
    const issues = parseTransform.options.safeParse({ format: 'grok' }).error?.issues ?? [];
    assert.deepEqual(
      issues.map((i) => [i.path.join('.'), i.message]),
      [['pattern', 'format grok needs a pattern']],
    );
    assert.match(
      parseTransform.options.safeParse({ format: 'grok', pattern: '%{NOPE}' }).error!.message,
      /unknown grok pattern %\{NOPE\}/,
    );
    // build checks too, whatever validated the options
    const valid = parseTransform.options.parse({ format: 'json' });
    assert.throws(
      () => parseTransform.build({ ...valid, format: 'grok' }, componentContext('p', '/x', 'transform')),
      (e: Error & { code?: string }) =>
        e.code === 'FLUXO_CONFIG_INVALID' && /format grok needs a pattern/.test(e.message),
    );
  });
});
