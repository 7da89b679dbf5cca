import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  checkPathTemplate,
  compactUtcStamp,
  extensionStart,
  insertUniqueSuffix,
  PathTemplate,
  PathTemplateError,
  sanitizePathValue,
} from '../../src/codecs/path-template.ts';
import type { Event } from '../../src/core/event.ts';

const NOW = Date.UTC(2030, 0, 2, 3, 4, 5); // stands in for missing timestamps
const TS = '2026-11-24T07:45:01.123Z';

describe('path template: strftime fields (UTC)', () => {
  const cases: [template: string, timestamp: unknown, expected: string][] = [
    ['%Y/%m/%d/%H/%M/%S.log', TS, '2026/11/24/07/45/01.log'],
    ['dt=%F/t=%T.log', TS, 'dt=2026-11-24/t=07:45:01.log'],
    ['%y-%j.log', TS, '26-328.log'],
    ['%j.log', '2026-02-01T00:00:00Z', '032.log'],
    ['%j.log', '2024-12-31T23:59:59Z', '366.log'], // leap year
    ['%j.log', '2026-01-01T00:00:00Z', '001.log'],
    ['%s.log', TS, `${Math.floor(Date.parse(TS) / 1000)}.log`],
    ['100%%/%Y.log', TS, '100%/2026.log'],
    ['%%Y.log', TS, '%Y.log'],
    ['static/part.log', TS, 'static/part.log'],
    // epoch milliseconds and ISO with an offset name the same instant
    ['%Y%m%d%H%M%S.log', Date.parse(TS), '20261124074501.log'],
    ['%Y%m%d%H%M%S.log', '2026-11-24T09:45:01.999+02:00', '20261124074501.log'],
    ['%H.log', Date.UTC(1999, 11, 31, 23), '23.log'],
    // missing or unparseable: the current time
    ['%Y-%m-%d/%H%M%S.log', undefined, '2030-01-02/030405.log'],
    ['%Y-%m-%d/%H%M%S.log', 'not a date', '2030-01-02/030405.log'],
    ['%Y-%m-%d/%H%M%S.log', null, '2030-01-02/030405.log'],
    ['%Y-%m-%d/%H%M%S.log', Number.NaN, '2030-01-02/030405.log'],
    ['%Y-%m-%d/%H%M%S.log', { not: 'a time' }, '2030-01-02/030405.log'],
  ];
  for (const [template, timestamp, expected] of cases) {
    it(`${template} with ${inspect(timestamp)} → ${expected}`, () => {
      assert.equal(new PathTemplate(template).render({ timestamp }, NOW), expected);
    });
  }
});

describe('path template: event fields', () => {
  const cases: [template: string, event: Event, expected: string][] = [
    ['{{ host }}/x.log', { host: 'web-1' }, 'web-1/x.log'],
    ['{{host}}/x.log', { host: 'web-1' }, 'web-1/x.log'],
    ['{{ kubernetes.pod }}.log', { kubernetes: { pod: 'api-7f9' } }, 'api-7f9.log'],
    ['{{ a.b.c }}.log', { a: { b: { c: 'deep' } } }, 'deep.log'],
    ['s={{ status }}/ok={{ ok }}.log', { status: 503, ok: false }, 's=503/ok=false.log'],
    ['{{ app }}-%H.log', { app: 'api', timestamp: TS }, 'api-07.log'],
    ['{{ @meta }}.log', { '@meta': 'm' }, 'm.log'],
  ];
  for (const [template, event, expected] of cases) {
    it(`${template} with ${JSON.stringify(event)} → ${expected}`, () => {
      assert.equal(new PathTemplate(template).render(event, NOW), expected);
    });
  }

  it('renders each event with its own values within one second', () => {
    const t = new PathTemplate('%H/{{ app }}.log');
    const rendered = ['a', 'b', 'a', 'c'].map((app) => t.render({ app, timestamp: TS }, NOW));
    assert.deepEqual(rendered, ['07/a.log', '07/b.log', '07/a.log', '07/c.log']);
  });

  it('timestamps of one second share a render, whatever their fraction; anything else is parsed', () => {
    const t = new PathTemplate('%F/%H%M%S.log');
    const sequence: [timestamp: string, expected: string][] = [
      ['2026-11-24T07:45:01.123Z', '2026-11-24/074501.log'],
      ['2026-11-24T07:45:01.999Z', '2026-11-24/074501.log'],
      ['2026-11-24T07:45:02.000Z', '2026-11-24/074502.log'],
      ['2026-11-24T07:45:02.1x3Z', '2030-01-02/030405.log'], // not a date: the current time
      ['2026-11-24T07:45:02.500+02:00', '2026-11-24/054502.log'],
      ['2026-11-24T07:45:02.501-02:00', '2026-11-24/094502.log'],
      ['2026-11-24T07:45:02.502-02:00', '2026-11-24/094502.log'],
      ['2026-11-24T07:45:02-02:00', '2026-11-24/094502.log'],
      ['2026-11-24T07:45:03-02:00', '2026-11-24/094503.log'],
      ['1969-12-31T23:59:59.500Z', '1969-12-31/235959.log'],
      ['1969-12-31T23:59:59.999Z', '1969-12-31/235959.log'],
    ];
    for (const [timestamp, expected] of sequence) assert.equal(t.render({ timestamp }, NOW), expected, timestamp);
  });

  it('keeps rendering right across many distinct, interleaved seconds (the per-second memo is bounded)', () => {
    const t = new PathTemplate('%H%M%S.log');
    for (let i = 0; i < 1000; i++) {
      const ms = Date.UTC(2026, 0, 1, 0, 0, 0) + ((i * 7919) % 86_400) * 1000;
      const d = new Date(ms);
      const expected = `${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}.log`;
      assert.equal(t.render({ timestamp: i % 2 ? ms : d.toISOString() }, NOW), expected);
    }
  });
});

describe('path template: missing fields', () => {
  const cases: [name: string, event: Event, field: string][] = [
    ['absent', { other: 1 }, 'app'],
    ['null', { app: null }, 'app'],
    ['empty string', { app: '' }, 'app'],
    ['an object', { app: { x: 1 } }, 'app'],
    ['an array', { app: ['a'] }, 'app'],
    ['NaN', { app: Number.NaN }, 'app'],
  ];
  for (const [name, event, field] of cases) {
    it(`{{ app }} ${name} → undefined, missingField = ${field}`, () => {
      const t = new PathTemplate('x/{{ app }}.log');
      assert.equal(t.render(event, NOW), undefined);
      assert.equal(t.missingField, field);
    });
  }

  it('a nested path through a scalar is missing', () => {
    const t = new PathTemplate('{{ a }}/{{ k8s.pod }}.log');
    assert.equal(t.render({ a: 'x', k8s: 'not-an-object' }, NOW), undefined);
    assert.equal(t.missingField, 'k8s.pod');
  });
});

describe('path template: sanitising field values', () => {
  const cases: [raw: string, expected: string][] = [
    ['plain-value_1', 'plain-value_1'],
    ['a/b', 'a_b'],
    ['../../etc/passwd', '______etc_passwd'],
    ['..', '__'],
    ['a..b', 'a__b'],
    ['.hidden', '_hidden'],
    ['nul\0byte', 'nul_byte'],
    ['back\\slash', 'back_slash'],
    ['tab\tnew\nline', 'tab_new_line'],
    ['dt=2026.11', 'dt=2026.11'],
    ['ünïcødé', 'ünïcødé'],
    ['x'.repeat(300), 'x'.repeat(100)],
    [`${'x'.repeat(99)}😀tail`, 'x'.repeat(99)], // a surrogate pair is not cut in half
  ];
  for (const [raw, expected] of cases) {
    it(`${JSON.stringify(raw.slice(0, 30))} → ${JSON.stringify(expected.slice(0, 30))}`, () => {
      assert.equal(sanitizePathValue(raw), expected);
      const rendered = new PathTemplate('out/{{ v }}/part.log').render({ v: raw }, NOW);
      assert.equal(rendered, `out/${expected}/part.log`);
      // whatever the value, the file stays exactly two levels below out/
      assert.equal(rendered!.split('/').length, 3);
    });
  }
});

describe('path template: time zones', () => {
  it('utc by default, local when asked (TZ=Asia/Kolkata, UTC+05:30)', (t) => {
    const before = process.env.TZ;
    t.after(() => {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    });
    process.env.TZ = 'Asia/Kolkata';
    const event = { timestamp: '2026-11-24T20:45:01Z' };
    assert.equal(new PathTemplate('%F/%H%M.log').render(event, NOW), '2026-11-24/2045.log');
    assert.equal(new PathTemplate('%F/%H%M.log', { timezone: 'utc' }).render(event, NOW), '2026-11-24/2045.log');
    assert.equal(
      new PathTemplate('%F/%H%M/%j.log', { timezone: 'local' }).render(event, NOW),
      '2026-11-25/0215/329.log',
    );
  });
});

describe('path template: invalid templates', () => {
  const cases: [template: string, message: RegExp][] = [
    ['', /empty/],
    ['out/%Q.log', /unknown strftime field "%Q"/],
    ['out/%', /unknown strftime field "%"/],
    ['out/{{ app.log', /never closed/],
    ['out/{{ a b }}.log', /not a field name/],
    ['out/{{ }}.log', /not a field name/],
    ['out/%Y/', /needs a file name/],
    ['out/.hidden.log', /starts with "\."/],
    ['out/a\0b.log', /NUL/],
  ];
  for (const [template, message] of cases) {
    it(`${JSON.stringify(template)} is rejected: ${message}`, () => {
      assert.throws(
        () => new PathTemplate(template),
        (e: unknown) =>
          e instanceof PathTemplateError && e.code === 'FLUXO_PATH_TEMPLATE_INVALID' && message.test(e.message),
      );
      assert.match(checkPathTemplate(template) ?? '', message);
    });
  }
  it('a valid template has no problem', () => {
    assert.equal(checkPathTemplate('data/%Y/{{ host }}.ndjson.gz'), undefined);
  });
});

describe('path template: static directory and depth (what recovery scans)', () => {
  const cases: [template: string, staticDir: string, depth: number][] = [
    ['data/master/dt=%Y-%m-%d/hour=%H/part.ndjson.gz', 'data/master/', 2],
    ['/var/log/fluxo/%Y/%m/%d/x.log', '/var/log/fluxo/', 3],
    ['data/master/part-%H.log', 'data/master/', 0],
    ['data/static/part.log', 'data/static/', 0],
    ['part.log', '', 0],
    ['%Y/part.log', '', 1],
    ['logs/app-{{ app }}/%Y/x.log', 'logs/', 2],
    ['logs/100%%/%Y/x.log', 'logs/100%/', 1],
  ];
  for (const [template, staticDir, depth] of cases) {
    it(`${template} → ${JSON.stringify(staticDir)}, depth ${depth}`, () => {
      const t = new PathTemplate(template);
      assert.equal(t.staticDir, staticDir);
      assert.equal(t.depth, depth);
    });
  }
});

describe('unique final names', () => {
  const stamp = Date.UTC(2026, 10, 24, 7, 45, 1, 999);
  const cases: [path: string, expected: string][] = [
    ['part.ndjson.gz', 'part-20261124T074501Z-1a2b3c4d.ndjson.gz'],
    ['out/dt=2026-11-24/part.ndjson.gz', 'out/dt=2026-11-24/part-20261124T074501Z-1a2b3c4d.ndjson.gz'],
    ['out/part.ndjson', 'out/part-20261124T074501Z-1a2b3c4d.ndjson'],
    ['out/x.tar.zst', 'out/x-20261124T074501Z-1a2b3c4d.tar.zst'],
    ['out/app.v2.log', 'out/app.v2-20261124T074501Z-1a2b3c4d.log'],
    ['out/my.app.log.gz', 'out/my.app-20261124T074501Z-1a2b3c4d.log.gz'],
    ['out/data.GZ', 'out/data-20261124T074501Z-1a2b3c4d.GZ'],
    ['out/noext', 'out/noext-20261124T074501Z-1a2b3c4d'],
    ['out.d/noext', 'out.d/noext-20261124T074501Z-1a2b3c4d'],
    ['out/_x.gz', 'out/_x-20261124T074501Z-1a2b3c4d.gz'],
  ];
  for (const [path, expected] of cases) {
    it(`${path} → ${expected}`, () => {
      assert.equal(insertUniqueSuffix(path, stamp, '1a2b3c4d'), expected);
    });
  }
  it('extensionStart ignores a leading dot', () => {
    assert.equal(extensionStart('.profile'), '.profile'.length);
    assert.equal(extensionStart('a.b'), 1);
  });
  it('the stamp is UTC, second precision', () => {
    assert.equal(compactUtcStamp(stamp), '20261124T074501Z');
  });
});
