import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FACILITIES, SEVERITIES, type SyslogMessage, SyslogParser } from '../../src/codecs/syslog.ts';

const parser = new SyslogParser();
const NOW = Date.UTC(2025, 2, 5, 12, 0, 0);

/** Expected fields, absent ones left out (the parser returns them as undefined). */
function fields(m: Partial<SyslogMessage> & Pick<SyslogMessage, 'facility' | 'severity' | 'message'>): SyslogMessage {
  return {
    timestamp: undefined,
    hostname: undefined,
    appname: undefined,
    procid: undefined,
    msgid: undefined,
    structured_data: undefined,
    ...m,
  };
}

/** A local-time BSD timestamp as the parser reads it (3164 has no zone: the collector's zone applies). */
function local(year: number, month: number, day: number, h: number, m: number, s: number, ms = 0): string {
  return new Date(year, month, day, h, m, s, ms).toISOString();
}

describe('syslog parser: RFC 5424', () => {
  const cases: [string, string, SyslogMessage][] = [
    [
      'RFC 5424 §6.5 example 1: no structured data, BOM before MSG',
      "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \uFEFF'su root' failed for lonvick on /dev/pts/8",
      fields({
        facility: 'auth',
        severity: 'crit',
        timestamp: '2003-10-11T22:14:15.003Z',
        hostname: 'mymachine.example.com',
        appname: 'su',
        msgid: 'ID47',
        message: "'su root' failed for lonvick on /dev/pts/8",
      }),
    ],
    [
      'example 2: microseconds and an offset, numeric procid',
      "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
      fields({
        facility: 'local4',
        severity: 'notice',
        timestamp: '2003-08-24T12:14:15.000Z',
        hostname: '192.0.2.1',
        appname: 'myproc',
        procid: '8710',
        message: "%% It's time to make the do-nuts.",
      }),
    ],
    [
      'example 4: two structured data elements and no MSG',
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
      fields({
        facility: 'local4',
        severity: 'notice',
        timestamp: '2003-10-11T22:14:15.003Z',
        hostname: 'mymachine.example.com',
        appname: 'evntslog',
        msgid: 'ID47',
        structured_data: {
          'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' },
          'examplePriority@32473': { class: 'high' },
        },
        message: '',
      }),
    ],
    [
      'util-linux logger --rfc5424 with --sd-id and --msgid',
      '<164>1 2026-11-24T08:16:59.355390+00:00 vm myapp - ID47 [timeQuality tzKnown="1" isSynced="0"][ex@32473 iut="3"] hello 5424',
      fields({
        facility: 'local4',
        severity: 'warning',
        timestamp: '2026-11-24T08:16:59.355Z',
        hostname: 'vm',
        appname: 'myapp',
        msgid: 'ID47',
        structured_data: { timeQuality: { tzKnown: '1', isSynced: '0' }, 'ex@32473': { iut: '3' } },
        message: 'hello 5424',
      }),
    ],
    [
      'every header field NIL',
      '<13>1 - - - - - - just text',
      fields({ facility: 'user', severity: 'notice', message: 'just text' }),
    ],
    [
      'escapes in PARAM-VALUE: only \\" \\\\ \\] are escapes',
      '<14>1 - h a - - [id a="q\\"uote" b="back\\\\slash" c="br\\]acket" d="keep\\n" e=""] m',
      fields({
        facility: 'user',
        severity: 'info',
        hostname: 'h',
        appname: 'a',
        structured_data: { id: { a: 'q"uote', b: 'back\\slash', c: 'br]acket', d: 'keep\\n', e: '' } },
        message: 'm',
      }),
    ],
    [
      'MSG keeps spaces, brackets and a trailing space',
      '<0>1 2025-03-05T14:02:17+01:00 h a 1 m - [x] y ',
      fields({
        facility: 'kern',
        severity: 'emerg',
        timestamp: '2025-03-05T13:02:17.000Z',
        hostname: 'h',
        appname: 'a',
        procid: '1',
        msgid: 'm',
        message: '[x] y ',
      }),
    ],
  ];
  for (const [name, line, expected] of cases) {
    it(name, () => {
      assert.deepEqual(parser.parse(line, NOW), expected);
    });
  }

  it('an SD-ID or parameter named __proto__ becomes a plain field, not a prototype', () => {
    const m = parser.parse('<13>1 - h a - - [__proto__ polluted="yes"][x __proto__="1"] m', NOW)!;
    assert.ok(m);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(m.structured_data!), ['__proto__', 'x']);
    assert.equal(JSON.stringify(m.structured_data), '{"__proto__":{"polluted":"yes"},"x":{"__proto__":"1"}}');
  });

  const failures: [string, RegExp][] = [
    ['plain text', /no <PRI>/],
    ['', /no <PRI>/],
    ['<abc>1 - - - - - - x', /not a number/],
    ['<1234>x', /1 to 3 digits/],
    ['<>x', /1 to 3 digits/],
    ['<192>1 - - - - - - x', /over 191/],
    ['<13>1 2003-10-11T22:14:15.003Z host', /header ends before APP-NAME/],
    ['<13>1 2003-10-11T22:14:15.003Z  host app - - - x', /HOSTNAME is empty/],
    ['<13>1 2003-10-11T22:14:15.003Z host  app - - - x', /APP-NAME is empty/],
    ['<13>1 2003-13-45T99:99:99Z host app - - - x', /not RFC 3339/],
    ['<13>1 2003-10-11 host app - - - x', /not RFC 3339/],
    ['<13>1 - host app - - [id k="v msg', /no closing quote/],
    ['<13>1 - host app - - [id k=v] msg', /without ="value"/],
    ['<13>1 - host app - - [ k="v"] msg', /without SD-ID/],
    ['<13>1 - host app - - [id k="v"', /not closed/],
    ['<13>1 - host app - - [id k="v"]msg', /not followed by a space/],
    ['<13>1 - host app - - x msg', /neither - nor \[/],
  ];
  for (const [line, reason] of failures) {
    it(`rejects ${JSON.stringify(line)} with a reason`, () => {
      assert.equal(parser.parse(line, NOW), undefined);
      assert.match(parser.error, reason);
    });
  }

  it('round-trips any header, structured data and message (property)', () => {
    const printable = fc.stringMatching(/^[!-~]{1,20}$/).filter((s) => s !== '-');
    const sdName = fc.stringMatching(/^[!#-<>-Z^-~]{1,12}$/); // PRINTUSASCII except = SP ] "
    const value = fc.string({ maxLength: 12 });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 191 }),
        fc.option(fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }), { nil: undefined }),
        fc.option(printable, { nil: undefined }),
        fc.option(printable, { nil: undefined }),
        fc.option(printable, { nil: undefined }),
        fc.option(printable, { nil: undefined }),
        fc.option(fc.dictionary(sdName, fc.dictionary(sdName, value, { maxKeys: 3 }), { minKeys: 1, maxKeys: 3 }), {
          nil: undefined,
        }),
        fc.string({ maxLength: 40 }),
        (pri, date, hostname, appname, procid, msgid, sd, message) => {
          const esc = (v: string) => v.replace(/[\\"\]]/g, (c) => `\\${c}`);
          const sdText =
            sd === undefined
              ? '-'
              : Object.entries(sd)
                  .map(
                    ([id, ps]) =>
                      `[${id}${Object.entries(ps)
                        .map(([k, v]) => ` ${k}="${esc(v)}"`)
                        .join('')}]`,
                  )
                  .join('');
          const line = `<${pri}>1 ${date?.toISOString() ?? '-'} ${hostname ?? '-'} ${appname ?? '-'} ${procid ?? '-'} ${msgid ?? '-'} ${sdText} ${message}`;
          const m = parser.parse(line, NOW);
          assert.ok(m, `${line}: ${parser.error}`);
          assert.deepEqual(m, {
            facility: FACILITIES[pri >> 3],
            severity: SEVERITIES[pri & 7],
            timestamp: date?.toISOString(),
            hostname,
            appname,
            procid,
            msgid,
            // fast-check makes null-prototype dictionaries; the parser makes plain objects
            structured_data: sd === undefined ? undefined : JSON.parse(JSON.stringify(sd)),
            message: message.startsWith('\uFEFF') ? message.slice(1) : message,
          });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 80 }), (a, b) => {
        for (const line of [a, `<13>1 ${a}`, `<13>${a}`, `<13>1 - - - - - [${a}`, `<13>Mar  5 12:00:00 ${a} ${b}`]) {
          const m = parser.parse(line, NOW);
          if (m === undefined) assert.ok(parser.error.length > 0);
          else assert.equal(typeof m.message, 'string');
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('syslog parser: RFC 3164', () => {
  const cases: [string, string, SyslogMessage][] = [
    [
      'RFC 3164 §5.4 example 1',
      "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
      fields({
        facility: 'auth',
        severity: 'crit',
        timestamp: local(2024, 9, 11, 22, 14, 15),
        hostname: 'mymachine',
        appname: 'su',
        message: "'su root' failed for lonvick on /dev/pts/8",
      }),
    ],
    [
      'a space-padded day, no tag',
      '<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!',
      fields({
        facility: 'user',
        severity: 'notice',
        timestamp: local(2025, 1, 5, 17, 32, 18),
        hostname: '10.0.0.99',
        message: 'Use the BFG!',
      }),
    ],
    [
      'util-linux logger --rfc3164 -i over TCP',
      '<13>Nov 24 08:17:04 vm app3[31740]: third 3164',
      fields({
        facility: 'user',
        severity: 'notice',
        timestamp: local(2024, 10, 24, 8, 17, 4),
        hostname: 'vm',
        appname: 'app3',
        procid: '31740',
        message: 'third 3164',
      }),
    ],
    [
      'rsyslog RSYSLOG_ForwardFormat: RFC 3339 timestamp in the legacy layout',
      '<30>2025-03-05T11:59:58.123456+00:00 web-01 nginx[812]: GET / 200',
      fields({
        facility: 'daemon',
        severity: 'info',
        timestamp: '2025-03-05T11:59:58.123Z',
        hostname: 'web-01',
        appname: 'nginx',
        procid: '812',
        message: 'GET / 200',
      }),
    ],
    [
      'no hostname: the first token is already the tag',
      '<13>Mar  5 11:00:00 sshd[42]: Accepted publickey',
      fields({
        facility: 'user',
        severity: 'notice',
        timestamp: local(2025, 2, 5, 11, 0, 0),
        appname: 'sshd',
        procid: '42',
        message: 'Accepted publickey',
      }),
    ],
    [
      'no timestamp and no hostname (BusyBox, devices)',
      '<86>cron: (root) CMD (run-parts /etc/cron.hourly)',
      fields({
        facility: 'authpriv',
        severity: 'info',
        appname: 'cron',
        message: '(root) CMD (run-parts /etc/cron.hourly)',
      }),
    ],
    [
      'milliseconds in a BSD timestamp, tag with dots and slashes',
      '<13>Mar 05 11:00:00.250 host postfix/smtpd[7]: connect',
      fields({
        facility: 'user',
        severity: 'notice',
        timestamp: local(2025, 2, 5, 11, 0, 0, 250),
        hostname: 'host',
        appname: 'postfix/smtpd',
        procid: '7',
        message: 'connect',
      }),
    ],
    [
      'nothing but a PRI and text',
      '<13>hello world',
      fields({ facility: 'user', severity: 'notice', message: 'hello world' }),
    ],
    [
      'a digit after PRI that is not a 5424 version',
      '<13>1 apple fell',
      fields({ facility: 'user', severity: 'notice', message: '1 apple fell' }),
    ],
    [
      'an invalid month is text, not a timestamp',
      '<13>Foo 11 22:14:15 host app: x',
      fields({ facility: 'user', severity: 'notice', message: 'Foo 11 22:14:15 host app: x' }),
    ],
  ];
  for (const [name, line, expected] of cases) {
    it(name, () => {
      assert.deepEqual(parser.parse(line, NOW), expected);
    });
  }

  it('puts a year-less date just past the new year into the previous year', () => {
    const newYear = new Date(2025, 0, 1, 0, 0, 30).getTime();
    assert.equal(parser.parse('<13>Dec 31 23:59:59 h a: x', newYear)!.timestamp, local(2024, 11, 31, 23, 59, 59));
    assert.equal(parser.parse('<13>Jan  1 00:00:10 h a: x', newYear)!.timestamp, local(2025, 0, 1, 0, 0, 10));
    // A sender whose clock runs a little ahead stays in the current year.
    assert.equal(parser.parse('<13>Jan  2 00:00:00 h a: x', newYear)!.timestamp, local(2025, 0, 2, 0, 0, 0));
  });

  it('puts a year-less date just before the new year from a sender ahead of the clock into the next year', () => {
    const newYearsEve = new Date(2024, 11, 31, 23, 59, 50).getTime();
    assert.equal(parser.parse('<13>Jan  1 00:00:05 h a: x', newYearsEve)!.timestamp, local(2025, 0, 1, 0, 0, 5));
    assert.equal(parser.parse('<13>Dec 31 23:59:49 h a: x', newYearsEve)!.timestamp, local(2024, 11, 31, 23, 59, 49));
    assert.equal(parser.parse('<13>Jan 15 00:00:00 h a: x', newYearsEve)!.timestamp, local(2024, 0, 15, 0, 0, 0));
  });

  it('reuses the last BSD timestamp within one second of the clock only, and only for the same text', () => {
    const p = new SyslogParser();
    const before = new Date(2025, 0, 1, 0, 0, 0, 100).getTime() - 1000;
    const line = '<13>Jan  1 00:00:03 h a: x';
    assert.equal(p.parse(line, before)!.timestamp, local(2025, 0, 1, 0, 0, 3));
    // The same text a year later (another second of the clock): read again, not taken from the last one.
    const later = new Date(2026, 0, 1, 0, 0, 1).getTime();
    assert.equal(p.parse(line, later)!.timestamp, local(2026, 0, 1, 0, 0, 3));
    const again = p.parse('<13>Jan  1 00:00:03 h2 b: y', later)!;
    assert.equal(again.timestamp, local(2026, 0, 1, 0, 0, 3));
    assert.equal(again.hostname, 'h2');
    assert.equal(again.message, 'y');
    // A text that starts with the last one but is longer is another timestamp.
    assert.equal(p.parse('<13>Jan  1 00:00:03.250 h a: x', later)!.timestamp, local(2026, 0, 1, 0, 0, 3, 250));
  });
});
