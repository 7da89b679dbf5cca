import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigTexts } from '../../src/config/load.ts';
import { compileCel } from '../../src/core/cel.ts';
import type { Event } from '../../src/core/event.ts';
import { fullRegistry } from '../../src/registry.ts';
import { celToJson } from '../../src/transforms/remap/cel-value.ts';
import { remapTransform } from '../../src/transforms/remap.ts';
import { componentContext } from '../helpers/context.ts';

const registry = await fullRegistry();

function remap(steps: unknown[], events: Event[], onError?: string) {
  const ctx = componentContext('r', '/nonexistent', 'transform', 'remap');
  const options = remapTransform.options.parse({ steps, ...(onError ? { on_error: onError } : {}) });
  const t = remapTransform.build(options, ctx);
  const pushed: Event[] = [];
  const dead: { events: Event[]; reason: string }[] = [];
  t.process(events, { push: (e) => pushed.push(...e), deadLetter: (e, reason) => dead.push({ events: e, reason }) });
  return { pushed, dead, metrics: () => ctx.pipelineMetrics.registry.metrics() };
}

const one = (steps: unknown[], event: Event) => {
  const { pushed } = remap(steps, [event]);
  assert.equal(pushed.length, 1);
  return pushed[0]!;
};

describe('remap steps', () => {
  it('set evaluates CEL on the event as changed so far, in order, with JSON results', () => {
    const e = one(
      [
        {
          set: {
            status_class: 'string(int(status) / 100) + "xx"',
            env: '"prod"',
            'http.code': 'status',
            double: 'status * 2',
          },
        },
        { set: { again: 'env + "!"' } },
      ],
      { status: 503 },
    );
    assert.deepEqual(e, {
      status: 503,
      status_class: '5xx',
      env: 'prod',
      http: { code: 503 },
      double: 1006,
      again: 'prod!',
    });
  });

  it('set converts CEL values: ints, maps, lists, timestamps, bytes, optionals', () => {
    const e = one(
      [
        {
          set: {
            n: 'size(message)',
            m: '{"a": 1, "b": [2, "x"]}',
            t: 'timestamp("2025-03-05T14:02:17Z")',
            b: 'b"hi"',
            gone: 'message.?nothing.orValue("fallback")',
          },
        },
      ],
      { message: 'hello' },
    );
    assert.deepEqual(e, {
      message: 'hello',
      n: 5,
      m: { a: 1, b: [2, 'x'] },
      t: '2025-03-05T14:02:17.000Z',
      b: 'hi',
      gone: 'fallback',
    });
    assert.equal(celToJson(2n ** 70n), '1180591620717411303424');
    assert.equal(celToJson(compileCel('duration("1.5s")')({})), '1.5s');
    assert.equal(celToJson(compileCel('{"a": 1}.?b')({})), undefined);
  });

  it('rename, delete and keep work on top-level and nested fields without touching the input', () => {
    const input = Object.freeze({ a: 1, b: Object.freeze({ c: 2, d: 3 }), _id: 'x', gone: true });
    const e = one(
      [
        { rename: { a: 'x.y', 'b.c': 'c', missing: 'z' } },
        { delete: ['gone', 'b.d', 'nope'] },
        { keep: ['_id', 'x', 'c', 'b'] },
      ],
      input,
    );
    assert.deepEqual(e, { _id: 'x', x: { y: 1 }, c: 2, b: {} });
    assert.deepEqual(input, { a: 1, b: { c: 2, d: 3 }, _id: 'x', gone: true });
  });

  it('coerce, parse_timestamp, lowercase, uppercase, add_tags', () => {
    const e = one(
      [
        { coerce: { status: 'int', ok: 'bool', missing: 'int' } },
        { parse_timestamp: { field: 'when', format: '%d/%b/%Y:%H:%M:%S %z', target: 'timestamp' } },
        { lowercase: ['method'] },
        { uppercase: ['level', 'absent'] },
        { add_tags: ['web', 'prod'] },
        { add_tags: ['web', 'eu'] },
      ],
      { status: '404', ok: 'true', when: '05/Mar/2025:14:02:17 +0100', method: 'GET', level: 'warn', tags: ['old'] },
    );
    assert.deepEqual(e, {
      status: 404,
      ok: true,
      when: '05/Mar/2025:14:02:17 +0100',
      timestamp: '2025-03-05T13:02:17.000Z',
      method: 'get',
      level: 'WARN',
      tags: ['old', 'web', 'prod', 'eu'],
    });
  });

  it('a step with `if` applies only when its CEL condition is true (an error counts as false)', () => {
    const { pushed } = remap(
      [
        { add_tags: ['error'], if: 'int(status) >= 500' },
        { set: { seen: 'true' }, if: 'nope.field == 1' },
      ],
      [{ status: 503 }, { status: 200 }],
    );
    assert.deepEqual(pushed, [{ status: 503, tags: ['error'] }, { status: 200 }]);
  });

  it('on_error keep skips the failing step, runs the rest and records every reason; counted', async () => {
    const { pushed, metrics } = remap(
      [{ coerce: { status: 'int' } }, { set: { x: 'missing_field + 1' } }, { set: { after: '"ran"' } }],
      [{ status: 'abc' }, { status: '200', missing_field: 1 }],
    );
    assert.equal(pushed[0]!.after, 'ran');
    assert.equal(pushed[0]!.status, 'abc');
    assert.match(
      pushed[0]!._remap_error as string,
      /^step 1 \(coerce\): field status: cannot convert "abc" to int; step 2 \(set\): .*missing_field/,
    );
    assert.deepEqual(pushed[1], { status: 200, missing_field: 1, x: 2, after: 'ran' });
    assert.match(await metrics(), /error_type="remap_failed"\} 1/);
  });

  it('on_error drop and dead_letter stop at the first failing step', () => {
    const steps = [{ uppercase: ['n'] }];
    assert.deepEqual(remap(steps, [{ n: 1 }, { n: 'a' }], 'drop').pushed, [{ n: 'A' }]);
    const original = { n: 1 };
    const dl = remap(steps, [original], 'dead_letter');
    assert.equal(dl.pushed.length, 0);
    assert.equal(dl.dead[0]!.events[0], original);
    assert.equal(dl.dead[0]!.reason, 'step 1 (uppercase): field n is number, not a string');
  });

  it('validates steps when the config is loaded: one operation per step, known keys, valid CEL', () => {
    const load = (steps: string) =>
      loadConfigTexts(
        [
          {
            file: 'c.yaml',
            text: `api: { enabled: false }\nsources:\n  in: { type: stdin }\ntransforms:\n  r:\n    type: remap\n    inputs: [in]\n    steps:\n${steps}\nsinks:\n  out: { type: blackhole, inputs: [r] }\n`,
          },
        ],
        registry,
      );
    assert.throws(() => load('      - { rename: { a: b }, delete: [c] }'), /one operation, found rename and delete/);
    assert.throws(() => load('      - { renam: { a: b } }'), /unknown key "renam"; did you mean "rename"/);
    assert.throws(() => load("      - { set: { a: 'status +' } }"), /invalid CEL expression/);
    assert.throws(() => load('      - { coerce: { a: number } }'), /unknown type "number"/);
    assert.throws(() => load('      - { redact: { hash_key: short } }'), /at least 16 characters/);
    assert.throws(() => load("      - { redact: { patterns: [{ regex: '(' }] } }"), /invalid regex/);
    assert.doesNotThrow(() => load("      - { delete: [a] }\n      - { add_tags: [x], if: 'a == 1' }"));
  });
});
