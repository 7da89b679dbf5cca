import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessLogGenerator } from '../../src/codecs/access-log.ts';
import { httpDateToIso, parseAccessLog, unescapeLogField } from '../../src/codecs/parsers/access-log.ts';
import { parseCsv, parseCsvRecord } from '../../src/codecs/parsers/csv.ts';
import { parseJson } from '../../src/codecs/parsers/json.ts';
import { encodeLogfmt, parseKeyValue, parseLogfmt } from '../../src/codecs/parsers/key-value.ts';
import { parseNginxError } from '../../src/codecs/parsers/nginx-error.ts';
import { ParseFailure } from '../../src/codecs/parsers/parser.ts';
import { compileRegexes, parseWithRegexes } from '../../src/codecs/parsers/regex.ts';
import { timeZone } from '../../src/codecs/parsers/time-zone.ts';

function failure(value: unknown): string {
  assert.ok(value instanceof ParseFailure, `expected a failure, got ${JSON.stringify(value)}`);
  return value.reason;
}

describe('apache_combined / apache_common', () => {
  it('parses a combined line into typed fields, the offset applied to the timestamp', () => {
    const line =
      '203.0.113.9 - frank [05/Mar/2025:14:02:17 +0100] "GET /cart?id=7 HTTP/1.1" 200 2326 "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)"';
    assert.deepEqual(parseAccessLog(line, true), {
      client: '203.0.113.9',
      user: 'frank',
      timestamp: '2025-03-05T13:02:17.000Z',
      method: 'GET',
      path: '/cart?id=7',
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: 2326,
      referrer: 'https://shop.example/',
      agent: 'Mozilla/5.0 (X11; Linux x86_64)',
    });
  });

  it('takes an IPv6 client, a `-` byte count (zero bytes), and leaves `-` fields out', () => {
    const line = '2001:db8:85a3::8a2e:370:7334 - - [31/Dec/2024:23:59:59 -0500] "HEAD /health HTTP/1.0" 304 - "-" "-"';
    assert.deepEqual(parseAccessLog(line, true), {
      client: '2001:db8:85a3::8a2e:370:7334',
      timestamp: '2025-01-01T04:59:59.000Z',
      method: 'HEAD',
      path: '/health',
      protocol: 'HTTP/1.0',
      status: 304,
      bytes: 0,
    });
  });

  it('unescapes quoted quotes in user agents (Apache \\" and nginx \\x22)', () => {
    const apache =
      '192.0.2.1 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (Linux; Android 13; \\"Galaxy Tab\\")"';
    assert.equal(
      (parseAccessLog(apache, true) as { agent: string }).agent,
      'Mozilla/5.0 (Linux; Android 13; "Galaxy Tab")',
    );
    const nginx =
      '192.0.2.1 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 5 "-" "x \\x22quoted\\x22 caf\\xC3\\xA9"';
    assert.equal((parseAccessLog(nginx, true) as { agent: string }).agent, 'x "quoted" café');
    assert.equal(unescapeLogField('a\\\\b\\tc'), 'a\\b\tc');
  });

  it('keeps a request line that is not METHOD TARGET PROTOCOL whole in `request`', () => {
    const tls = '198.51.100.7 - - [05/Mar/2025:14:02:17 +0000] "\\x16\\x03\\x01\\x00\\xa5" 400 157 "-" "-"';
    const r = parseAccessLog(tls, true) as Record<string, unknown>;
    assert.equal(r.method, undefined);
    assert.equal(typeof r.request, 'string');
    assert.equal(r.status, 400);
    const empty = '198.51.100.7 - - [05/Mar/2025:14:02:17 +0000] "" 400 0 "-" "-"';
    assert.deepEqual(Object.keys(parseAccessLog(empty, true) as object).sort(), [
      'bytes',
      'client',
      'status',
      'timestamp',
    ]);
    const http09 = '198.51.100.7 - - [05/Mar/2025:14:02:17 +0000] "GET /old" 200 10 "-" "-"';
    assert.deepEqual(
      [
        (parseAccessLog(http09, true) as Record<string, unknown>).path,
        (parseAccessLog(http09, true) as Record<string, unknown>).protocol,
      ],
      ['/old', undefined],
    );
  });

  it('parses the common format, with or without a trailing carriage return', () => {
    const line =
      '127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326\r';
    assert.deepEqual(parseAccessLog(line, false), {
      client: '127.0.0.1',
      ident: 'user-identifier',
      user: 'frank',
      timestamp: '2000-10-10T20:55:36.000Z',
      method: 'GET',
      path: '/apache_pb.gif',
      protocol: 'HTTP/1.0',
      status: 200,
      bytes: 2326,
    });
  });

  it('parses every line the access-log generator writes (apache and nginx flavours)', () => {
    for (const format of ['apache_combined', 'nginx_combined'] as const) {
      const g = new AccessLogGenerator({ format, seed: 42 });
      for (let i = 1; i <= 2000; i++) {
        const line = g.line(i, Date.UTC(2025, 2, 5, 14, 2, 17));
        const r = parseAccessLog(line, true);
        assert.ok(!(r instanceof ParseFailure), `${format} line ${i}: ${line}: ${(r as ParseFailure).reason}`);
        assert.equal(typeof (r as { status: unknown }).status, 'number');
        assert.equal((r as { timestamp: unknown }).timestamp, '2025-03-05T14:02:17.000Z');
      }
    }
  });

  it('rejects garbage with a reason instead of throwing', () => {
    for (const bad of [
      '',
      'hello world',
      '1.2.3.4 - - [not a date] "GET / HTTP/1.1" 200 1 "-" "-"',
      '1.2.3.4 - - [31/Feb/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
      '1.2.3.4 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" abc 1 "-" "-"',
      '1.2.3.4 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 1e5 "-" "-"',
      '1.2.3.4 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1 200 1 "-" "-',
      '1.2.3.4 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 1 "-" "-" trailing',
      '1.2.3.4 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 1',
    ]) {
      assert.match(failure(parseAccessLog(bad, true)), /^not an access log line/, bad);
    }
    assert.equal(httpDateToIso('05/Mar/2025:25:02:17 +0000'), undefined);
  });
});

describe('nginx_error', () => {
  const line =
    '2025/03/05 14:02:17 [error] 1234#1234: *56 open() "/srv/www/x.png" failed (2: No such file or directory), client: 203.0.113.9, server: shop.example, request: "GET /x.png HTTP/1.1", host: "shop.example", referrer: "https://shop.example/"';

  it('parses header, message and context, the local time read in the configured zone', () => {
    assert.deepEqual(parseNginxError(line, timeZone('Europe/Paris')), {
      timestamp: '2025-03-05T13:02:17.000Z',
      severity: 'error',
      pid: 1234,
      tid: 1234,
      cid: 56,
      message: 'open() "/srv/www/x.png" failed (2: No such file or directory)',
      client: '203.0.113.9',
      server: 'shop.example',
      request: 'GET /x.png HTTP/1.1',
      host: 'shop.example',
      referrer: 'https://shop.example/',
    });
  });

  it('parses lines without a connection or context (start-up messages)', () => {
    assert.deepEqual(parseNginxError('2025/03/05 14:02:17 [notice] 1#1: signal process started', timeZone('UTC')), {
      timestamp: '2025-03-05T14:02:17.000Z',
      severity: 'notice',
      pid: 1,
      tid: 1,
      message: 'signal process started',
    });
    const upstream =
      '2025/03/05 14:02:17 [error] 7#7: *9 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 2001:db8::1, server: _, request: "POST /api HTTP/1.1", upstream: "http://127.0.0.1:9000/api", host: "api.example"';
    const r = parseNginxError(upstream, timeZone('UTC')) as Record<string, unknown>;
    assert.equal(r.client, '2001:db8::1');
    assert.equal(r.upstream, 'http://127.0.0.1:9000/api');
    assert.equal(
      r.message,
      'upstream timed out (110: Connection timed out) while reading response header from upstream',
    );
  });

  it('rejects other lines', () => {
    assert.match(failure(parseNginxError('2025-03-05 14:02:17 error', timeZone('UTC'))), /not an nginx error log line/);
    assert.match(failure(parseNginxError('2025/02/30 14:02:17 [error] 1#1: x', timeZone('UTC'))), /invalid date/);
  });
});

describe('json', () => {
  it('parses any JSON value and explains invalid text', () => {
    assert.deepEqual(parseJson('{"a":1,"b":{"c":[true,null]}}'), { a: 1, b: { c: [true, null] } });
    assert.deepEqual(parseJson('[1,2]'), [1, 2]);
    assert.match(failure(parseJson('{"a":')), /^invalid JSON/);
    assert.match(failure(parseJson('[['.repeat(200_000))), /^invalid JSON/);
  });

  it('keeps a "__proto__" key as data, not as the prototype', () => {
    const r = parseJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(r), ['__proto__']);
  });
});

describe('logfmt and key_value', () => {
  it('parses logfmt with quotes, escapes, flags and empty values', () => {
    assert.deepEqual(parseLogfmt('level=info msg="disk \\"sda\\" full" retry took=12ms empty= path=/var/log'), {
      level: 'info',
      msg: 'disk "sda" full',
      retry: true,
      took: '12ms',
      empty: '',
      path: '/var/log',
    });
    assert.deepEqual(parseLogfmt('  a=1   b="x\\ny"  '), { a: '1', b: 'x\ny' });
  });

  it('writes logfmt that reads back', () => {
    const fields = { level: 'warn', msg: 'a "quoted" = thing', flag: true, n: 'x\ty', empty: '' };
    assert.deepEqual(parseLogfmt(encodeLogfmt(fields)), fields);
  });

  it('parses key_value with other delimiters', () => {
    const options = { keyValueDelimiter: ':', fieldDelimiter: ',', acceptStandaloneKey: true };
    assert.deepEqual(parseKeyValue('user:alice, action:"log in, twice", ok', options), {
      user: 'alice',
      action: 'log in, twice',
      ok: true,
    });
  });

  it('explains broken input', () => {
    assert.match(failure(parseLogfmt('a="open')), /unterminated/);
    assert.match(failure(parseLogfmt('=x')), /without a key/);
    assert.match(
      failure(parseKeyValue('a', { keyValueDelimiter: '=', fieldDelimiter: ' ', acceptStandaloneKey: false })),
      /has no value/,
    );
  });
});

describe('csv', () => {
  it('parses RFC 4180 records with quoted fields and doubled quotes', () => {
    assert.deepEqual(parseCsvRecord('a,"b,c","say ""hi""",,d'), ['a', 'b,c', 'say "hi"', '', 'd']);
    assert.deepEqual(parseCsvRecord('x;y', ';'), ['x', 'y']);
    assert.deepEqual(parseCsv('1,alice,"Paris, FR"', { delimiter: ',', quote: '"', columns: ['id', 'name', 'city'] }), {
      id: '1',
      name: 'alice',
      city: 'Paris, FR',
    });
  });

  it('rejects a wrong column count and an unterminated quote', () => {
    assert.match(
      failure(parseCsv('1,2', { delimiter: ',', quote: '"', columns: ['a', 'b', 'c'] })),
      /expected 3 columns, found 2/,
    );
    assert.match(failure(parseCsvRecord('"open,x')), /unterminated/);
    assert.match(failure(parseCsvRecord('"a"b')), /after a quoted field/);
  });
});

describe('regex', () => {
  it('captures named groups, first matching pattern wins, Python (?P<…>) accepted', () => {
    const regexes = compileRegexes(['^(?<level>ERROR) (?<msg>.*)$', '^(?P<level>\\w+): (?P<msg>.*)$']);
    assert.deepEqual(parseWithRegexes('ERROR disk full', regexes), { level: 'ERROR', msg: 'disk full' });
    assert.deepEqual(parseWithRegexes('warn: low', regexes), { level: 'warn', msg: 'low' });
    assert.match(failure(parseWithRegexes('nothing', regexes)), /none of the 2 regexes/);
  });

  it('refuses regexes that cannot capture or compile', () => {
    assert.throws(() => compileRegexes(['^\\d+$']), /no named group/);
    assert.throws(() => compileRegexes(['(?<a>[)']), /invalid regex/);
  });
});
