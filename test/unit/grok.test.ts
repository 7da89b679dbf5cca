import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkGrok, compileGrok, parsePatternFile } from '../../src/codecs/grok.ts';
import { GROK_PATTERNS } from '../../src/codecs/grok-patterns.ts';
import { ParseFailure } from '../../src/codecs/parsers/parser.ts';

const match = (pattern: string, text: string, definitions?: Record<string, string>) =>
  compileGrok(pattern, { definitions }).match(text);

describe('grok pattern library', () => {
  it('every bundled pattern compiles to a native RegExp', () => {
    for (const name of Object.keys(GROK_PATTERNS)) {
      assert.ok(compileGrok(`%{${name}}`).regex instanceof RegExp, name);
    }
  });

  it('COMBINEDAPACHELOG gives Logstash’s legacy field names', () => {
    const line =
      '203.0.113.9 - frank [05/Mar/2025:14:02:17 +0100] "GET /cart?id=7 HTTP/1.1" 200 2326 "https://shop.example/" "Mozilla/5.0 (X11; \\"Q\\")"';
    assert.deepEqual(match('%{COMBINEDAPACHELOG}', line), {
      clientip: '203.0.113.9',
      ident: '-',
      auth: 'frank',
      timestamp: '05/Mar/2025:14:02:17 +0100',
      verb: 'GET',
      request: '/cart?id=7',
      httpversion: '1.1',
      response: '200',
      bytes: '2326',
      referrer: '"https://shop.example/"',
      agent: '"Mozilla/5.0 (X11; \\"Q\\")"',
    });
  });

  it('COMMONAPACHELOG with an IPv6 client, `-` bytes and a raw request', () => {
    assert.deepEqual(
      match('%{COMMONAPACHELOG}', '2001:db8::1 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/2.0" 304 -'),
      {
        clientip: '2001:db8::1',
        ident: '-',
        auth: '-',
        timestamp: '05/Mar/2025:14:02:17 +0000',
        verb: 'GET',
        request: '/',
        httpversion: '2.0',
        response: '304',
      },
    );
    const raw = match('%{COMMONAPACHELOG}', '::ffff:192.0.2.1 - - [05/Mar/2025:14:02:17 +0000] "-" 408 0') as Record<
      string,
      unknown
    >;
    assert.equal(raw.clientip, '::ffff:192.0.2.1');
    assert.equal(raw.rawrequest, '-');
  });

  it('SYSLOGLINE, SYSLOG5424LINE and CRONLOG', () => {
    assert.deepEqual(match('%{SYSLOGLINE}', 'Mar  5 14:02:17 web01 sshd[1234]: Accepted publickey for deploy'), {
      timestamp: 'Mar  5 14:02:17',
      logsource: 'web01',
      program: 'sshd',
      pid: '1234',
      message: 'Accepted publickey for deploy',
    });
    assert.deepEqual(match('%{SYSLOGLINE}', '2025-03-05T14:02:17.123+01:00 db2 kernel: oom-killer invoked'), {
      timestamp8601: '2025-03-05T14:02:17.123+01:00',
      logsource: 'db2',
      program: 'kernel',
      message: 'oom-killer invoked',
    });
    const r5424 = match(
      '%{SYSLOG5424LINE}',
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event',
    ) as Record<string, unknown>;
    assert.equal(r5424.syslog5424_pri, 165);
    assert.equal(r5424.syslog5424_ver, 1);
    assert.equal(r5424.syslog5424_app, 'evntslog');
    assert.equal(r5424.syslog5424_sd, '[exampleSDID@32473 iut="3"]');
    assert.equal(r5424.syslog5424_msg, 'An application event');
    assert.deepEqual(match('%{CRONLOG}', 'Mar  5 14:00:01 web01 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)'), {
      timestamp: 'Mar  5 14:00:01',
      logsource: 'web01',
      program: 'CRON',
      pid: '4242',
      user: 'root',
      action: 'CMD',
      message: 'run-parts /etc/cron.hourly',
    });
  });

  it('Java: stack trace lines, Tomcat and Catalina logs', () => {
    assert.deepEqual(match('%{JAVASTACKTRACEPART}', '\tat com.example.shop.Cart.add(Cart.java:42)'), {
      class: 'com.example.shop.Cart',
      method: 'add',
      file: 'Cart.java',
      line: '42',
    });
    assert.deepEqual(
      match('%{JAVASTACKTRACEPART}', '    at sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)'),
      {
        class: 'sun.reflect.NativeMethodAccessorImpl',
        method: 'invoke0',
        file: 'Native Method',
      },
    );
    assert.equal(
      (match('%{JAVASTACKTRACEPART}', 'at a.B.<init>(B.java:1)') as Record<string, unknown>).method,
      '<init>',
    );
    assert.deepEqual(
      match(
        '%{TOMCATLOG}',
        '2014-01-09 20:03:28,269 -0800 | ERROR | com.example.service.ExampleService - something unexpected happened',
      ),
      {
        timestamp: '2014-01-09 20:03:28,269 -0800',
        level: 'ERROR',
        class: 'com.example.service.ExampleService',
        logmessage: 'something unexpected happened',
      },
    );
    assert.equal(
      (
        match('%{CATALINALOG}', 'Jan 9, 2014 7:13:13 AM org.apache.catalina.startup.Catalina start') as Record<
          string,
          unknown
        >
      ).class,
      'org.apache.catalina.startup.Catalina',
    );
    assert.match(String(compileGrok('%{JAVACLASS}').regex.exec('org.Foo$Bar')?.[0]), /org\.Foo\$Bar/);
  });

  it('NGINX_ERROR gives the nginx_error parser’s fields, typed', () => {
    const line =
      '2025/03/05 14:02:17 [error] 1234#1234: *56 open() "/srv/x.png" failed (2: No such file or directory), client: 203.0.113.9, server: shop.example, request: "GET /x.png HTTP/1.1", host: "shop.example"';
    assert.deepEqual(match('%{NGINX_ERROR}', line), {
      timestamp: '2025/03/05 14:02:17',
      severity: 'error',
      pid: 1234,
      tid: 1234,
      cid: 56,
      message: 'open() "/srv/x.png" failed (2: No such file or directory)',
      client: '203.0.113.9',
      server: 'shop.example',
      request: 'GET /x.png HTTP/1.1',
      host: 'shop.example',
    });
  });

  it('HTTPD_ERRORLOG (2.2 and 2.4 formats)', () => {
    const v24 = match(
      '%{HTTPD_ERRORLOG}',
      '[Wed Mar 05 14:02:17.123456 2025] [core:error] [pid 4242:tid 1401] [client 203.0.113.9:51234] AH00126: Invalid URI in request',
    ) as Record<string, unknown>;
    assert.equal(v24.module, 'core');
    assert.equal(v24.loglevel, 'error');
    assert.equal(v24.clientip, '203.0.113.9');
    assert.equal(v24.errorcode, 'AH00126');
    assert.equal(v24.message, 'Invalid URI in request');
    const v22 = match(
      '%{HTTPD_ERRORLOG}',
      '[Wed Mar 05 14:02:17 2025] [error] [client 10.0.0.1] File does not exist: /x',
    ) as Record<string, unknown>;
    assert.equal(v22.message, 'File does not exist: /x');
  });

  it('IP patterns accept every IPv6 form and reject near misses', () => {
    const ip = compileGrok('^%{IP:ip}$');
    for (const good of [
      '::1',
      '::',
      'fe80::1%eth0',
      '2001:db8::',
      '1:2:3:4:5:6:7:8',
      '::ffff:10.0.0.1',
      '64:ff9b::192.0.2.33',
      '10.0.0.255',
    ]) {
      assert.deepEqual(ip.match(good), { ip: good }, good);
    }
    for (const bad of ['256.1.1.1', '1.2.3', '1:2:3', 'gggg::1', '12345::1'])
      assert.equal(ip.match(bad), undefined, bad);
  });
});

describe('grok compiler', () => {
  it('captures with types, nested names and Logstash field references', () => {
    assert.deepEqual(match('%{NUMBER:took:float}ms %{INT:[http][status]:int} %{WORD:user.name}', '12.5ms 404 alice'), {
      took: 12.5,
      http: { status: 404 },
      user: { name: 'alice' },
    });
    const failed = match('%{WORD:n:int}', 'abc');
    assert.ok(failed instanceof ParseFailure);
    assert.match(failed.reason, /field n: cannot convert "abc" to int/);
  });

  it('user-defined patterns may use the library and each other, and override it', () => {
    const definitions = { ORDER: 'ORD-%{ID}', ID: '[0-9]{3}', WORD: '[a-z]+' };
    assert.deepEqual(match('%{ORDER:order} by %{WORD:who}', 'ORD-042 by bob', definitions), {
      order: 'ORD-042',
      who: 'bob',
    });
    assert.equal(match('%{WORD:who}', 'BOB', definitions), undefined);
  });

  it('translates Oniguruma syntax: named groups with any name, atomic groups, possessive quantifiers, POSIX classes', () => {
    assert.deepEqual(match('(?<client.ip>%{IPV4}) (?>\\d++) [[:alpha:]]+ (?<rest>\\h+)\\Z', '10.1.2.3 42 abc beef'), {
      client: { ip: '10.1.2.3' },
      rest: 'beef',
    });
    assert.deepEqual(match('(?i)^level=(?<level>error)', 'LEVEL=ERROR'), { level: 'ERROR' });
    assert.deepEqual(match('(?<word>\\w+) \\k<word>', 'hey hey'), { word: 'hey' });
    assert.deepEqual(match('(?<a>x)|(?<a>y)', 'y'), { a: 'y' }, 'the capture that matched wins');
    assert.deepEqual(match('(x|y)(?<b>z)', 'yz'), { b: 'z' }, 'plain groups do not capture');
  });

  it('leaves out captures that did not participate or are empty', () => {
    assert.deepEqual(match('%{WORD:a}(?: %{WORD:b})?%{SPACE:s}', 'one'), { a: 'one' });
  });

  it('reports unknown patterns, cycles and broken regexes with the reason', () => {
    assert.match(checkGrok('%{IPORHOTS:client}')!, /unknown grok pattern %\{IPORHOTS\}/);
    assert.match(checkGrok('%{A}', { definitions: { A: '%{B}', B: '%{A}' } })!, /cycle: A -> B -> A/);
    assert.match(checkGrok('%{WORD:x:integer}')!, /unknown type "integer"/);
    assert.match(checkGrok('(?<a>[a-z)')!, /unterminated character class|not a valid regular expression/);
    assert.match(checkGrok('%{bad-name}')!, /invalid reference/);
    assert.match(checkGrok('(?m)x')!, /unsupported group/);
    assert.equal(checkGrok('%{COMBINEDAPACHELOG}'), undefined);
  });

  it('reads Logstash pattern files', () => {
    assert.deepEqual(parsePatternFile('# comment\n\nORDER ORD-%{INT}\nBAD LINE WITHOUT REGEX?\n  SPACED  a b \n'), {
      ORDER: 'ORD-%{INT}',
      BAD: 'LINE WITHOUT REGEX?',
      SPACED: 'a b',
    });
  });

  // A catastrophically backtracking library pattern would take minutes on these lines, not milliseconds.
  it('does not backtrack catastrophically on long non-matching lines', { timeout: 30_000 }, () => {
    const g = compileGrok('%{COMBINEDAPACHELOG}');
    assert.equal(g.match(`1.2.3.4 - - [05/Mar/2025:14:02:17 +0000] "GET ${'a'.repeat(20_000)}`), undefined);
    assert.equal(g.match(`${'1.'.repeat(5_000)} - - [x`), undefined);
    assert.equal(compileGrok('%{SYSLOGLINE}').match(`Mar  5 14:02:17 ${'a-'.repeat(10_000)}`), undefined);
  });
});
