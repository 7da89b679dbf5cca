import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCoercion, compileCoercion, parseCoercionText } from '../../src/codecs/parsers/coerce.ts';
import { ParseFailure } from '../../src/codecs/parsers/parser.ts';
import { checkTimeZone, timeZone } from '../../src/codecs/parsers/time-zone.ts';
import { checkTimestampFormat, compileTimestampParser, parseIso } from '../../src/codecs/parsers/timestamp.ts';

const iso = (ms: unknown) => {
  assert.equal(typeof ms, 'number', `expected epoch ms, got ${ms instanceof ParseFailure ? ms.reason : String(ms)}`);
  return new Date(ms as number).toISOString();
};

describe('strptime formats', () => {
  const cases: [string, string, string, string][] = [
    ['%d/%b/%Y:%H:%M:%S %z', '05/Mar/2025:14:02:17 +0100', 'UTC', '2025-03-05T13:02:17.000Z'],
    ['%Y-%m-%dT%H:%M:%S%.f%:z', '2025-03-05T14:02:17.123456-05:30', 'UTC', '2025-03-05T19:32:17.123Z'],
    ['%Y-%m-%d %H:%M:%S,%f', '2025-03-05 14:02:17,527', 'UTC', '2025-03-05T14:02:17.527Z'],
    ['%F %T', '2025-07-01 12:00:00', 'Europe/Paris', '2025-07-01T10:00:00.000Z'],
    ['%F %T', '2025-01-15 12:00:00', 'Europe/Paris', '2025-01-15T11:00:00.000Z'],
    ['%F %T', '2025-03-05 09:00:00', 'America/New_York', '2025-03-05T14:00:00.000Z'],
    ['%F %T', '2025-03-05 09:00:00', '+02:00', '2025-03-05T07:00:00.000Z'],
    ['%a, %d %b %Y %H:%M:%S %Z', 'Wed, 05 Mar 2025 14:02:17 GMT', 'Europe/Paris', '2025-03-05T14:02:17.000Z'],
    ['%b %e %H:%M:%S %Y', 'Mar  5 14:02:17 2025', 'UTC', '2025-03-05T14:02:17.000Z'],
    ['%m/%d/%y %I:%M:%S %p', '03/05/25 02:02:17 PM', 'UTC', '2025-03-05T14:02:17.000Z'],
    ['%m/%d/%y %I:%M:%S %p', '03/05/25 12:00:00 AM', 'UTC', '2025-03-05T00:00:00.000Z'],
    ['%Y %j %H:%M', '2024 060 10:30', 'UTC', '2024-02-29T10:30:00.000Z'],
    ['%B %d, %Y', 'September 01, 2024', 'UTC', '2024-09-01T00:00:00.000Z'],
    ['%s', '1741183337.5', 'UTC', '2025-03-05T14:02:17.500Z'],
  ];
  for (const [format, text, zone, expected] of cases) {
    it(`${format} reads ${JSON.stringify(text)} in ${zone}`, () => {
      assert.equal(iso(compileTimestampParser(format, zone).parse(text)), expected);
    });
  }

  it('gives a year-less date the most recent year: December lines read in January', () => {
    const parser = compileTimestampParser('%b %d %H:%M:%S', 'UTC');
    const january = Date.UTC(2025, 0, 2, 0, 0, 0);
    assert.equal(iso(parser.parse('Dec 31 23:59:00', january)), '2024-12-31T23:59:00.000Z');
    assert.equal(iso(parser.parse('Jan  1 10:00:00', january)), '2025-01-01T10:00:00.000Z');
  });

  it('reads wall-clock times across a DST change', () => {
    const paris = compileTimestampParser('%F %T', 'Europe/Paris');
    assert.equal(iso(paris.parse('2025-03-30 01:30:00')), '2025-03-30T00:30:00.000Z');
    assert.equal(iso(paris.parse('2025-03-30 03:30:00')), '2025-03-30T01:30:00.000Z');
    assert.equal(iso(paris.parse('2025-10-26 12:00:00')), '2025-10-26T11:00:00.000Z');
  });

  it('explains what does not match, never throws', () => {
    const parser = compileTimestampParser('%d/%b/%Y:%H:%M:%S %z', 'UTC');
    for (const bad of [
      '',
      '05/Foo/2025:14:02:17 +0000',
      '31/Feb/2025:14:02:17 +0000',
      '05/Mar/2025:14:02:17',
      '05/Mar/2025:14:02:17 +0000 extra',
      42,
    ]) {
      const r = parser.parse(bad);
      assert.ok(r instanceof ParseFailure, `${JSON.stringify(bad)} gave ${String(r)}`);
    }
    assert.match((parser.parse('05/Mar/2025 14:02:17 +0000') as ParseFailure).reason, /expected ":" at position 11/);
  });

  it('validates formats and zones for the config', () => {
    assert.equal(checkTimestampFormat('%Y-%m-%d'), undefined);
    assert.equal(checkTimestampFormat('unix_ms'), undefined);
    assert.match(checkTimestampFormat('%Q')!, /unknown directive %Q/);
    assert.equal(checkTimeZone('Asia/Tokyo'), undefined);
    assert.match(checkTimeZone('Mars/Olympus')!, /unknown time zone/);
  });
});

describe('named formats', () => {
  it('rfc3339 takes offsets and reads offset-less times in the zone', () => {
    assert.equal(iso(parseIso('2025-03-05T14:02:17.5+01:00', timeZone('UTC'))), '2025-03-05T13:02:17.500Z');
    assert.equal(iso(parseIso('2025-03-05 14:02:17', timeZone('Asia/Tokyo'))), '2025-03-05T05:02:17.000Z');
    assert.ok(parseIso('2025-13-05T14:02:17Z', timeZone('UTC')) instanceof ParseFailure);
  });

  it('unix formats take numbers and numeric strings', () => {
    assert.equal(iso(compileTimestampParser('unix').parse(1741183337)), '2025-03-05T14:02:17.000Z');
    assert.equal(iso(compileTimestampParser('unix_ms').parse('1741183337123')), '2025-03-05T14:02:17.123Z');
    assert.equal(iso(compileTimestampParser('unix_us').parse(1741183337123456)), '2025-03-05T14:02:17.123Z');
    assert.ok(compileTimestampParser('unix').parse('soon') instanceof ParseFailure);
    assert.ok(compileTimestampParser('unix').parse(1e300) instanceof ParseFailure);
  });
});

describe('type coercion', () => {
  const to = (type: string, value: unknown) => compileCoercion(parseCoercionText(type) as never)(value);

  it('int, float and bool read numbers and words leniently and never give NaN', () => {
    assert.equal(to('int', '200'), 200);
    assert.equal(to('int', ' -7 '), -7);
    assert.equal(to('int', '1.9'), 1);
    assert.equal(to('int', 3.7), 3);
    assert.equal(to('int', true), 1);
    assert.equal(to('float', '0.25'), 0.25);
    assert.equal(to('float', '1e3'), 1000);
    assert.equal(to('bool', 'yes'), true);
    assert.equal(to('bool', 'OFF'), false);
    assert.equal(to('bool', 0), false);
    assert.equal(to('string', 42), '42');
    assert.equal(to('string', { a: 1 }), '{"a":1}');
    assert.equal(to('int', null), null);
    for (const [type, bad] of [
      ['int', 'abc'],
      ['int', ''],
      ['int', '0x10'],
      ['int', '99999999999999999999'],
      ['float', 'NaN'],
      ['float', 'Infinity'],
      ['bool', 'maybe'],
      ['int', {}],
    ] as const) {
      assert.ok(to(type, bad) instanceof ParseFailure, `${type} ${JSON.stringify(bad)}`);
    }
  });

  it('timestamp with Vector’s shorthand or a format and zone', () => {
    assert.equal(to('timestamp', '2025-03-05T14:02:17Z'), '2025-03-05T14:02:17.000Z');
    assert.equal(to('timestamp|%d/%b/%Y:%T %z', '05/Mar/2025:14:02:17 +0000'), '2025-03-05T14:02:17.000Z');
    const paris = compileCoercion({ type: 'timestamp', format: '%F %T', timezone: 'Europe/Paris' });
    assert.equal(paris('2025-07-01 12:00:00'), '2025-07-01T10:00:00.000Z');
    assert.ok(to('timestamp', 'yesterday') instanceof ParseFailure);
  });

  it('validates specs', () => {
    assert.match(parseCoercionText('integer') as string, /unknown type "integer"/);
    assert.match(parseCoercionText('int|x') as string, /only timestamp takes a format/);
    assert.match(checkCoercion({ type: 'int', format: '%Y' })!, /apply to type timestamp only/);
    assert.match(checkCoercion({ type: 'timestamp', format: '%Q' })!, /unknown directive/);
  });
});
