/**
 * Fuzzing syslog over TCP as a peer reaches it: octet-counting and newline framing (RFC 6587) and message parsing
 * (RFC 5424 / 3164). Bounded runs in `npm test`; FLUXO_FUZZ_RUNS=<n> (scripts/fuzz.js) runs each property n times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OctetCountingDecoder, SyslogFramer } from '../../src/codecs/octet-counting.ts';
import { FACILITIES, SEVERITIES, SyslogParser, syslogEvent } from '../../src/codecs/syslog.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

const runs = fuzzRuns;

const MAX = 64;

/** Message text as senders write it: any Unicode, newlines included, but not ending in one (the decoder strips it). */
const messageText = fc
  .string({
    unit: fc.oneof(
      fc.constantFrom('a', ' ', '\n', '<', '1', 'é', '😀', '\r'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    ),
    maxLength: 40,
  })
  .filter((s) => s !== '' && !s.endsWith('\n') && Buffer.byteLength(s) <= MAX);

const octetFrame = (m: string, trailer: string) => `${Buffer.byteLength(m)} ${m}${trailer}`;

/** Cuts `bytes` at the given points (taken modulo its length). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    parts.push(bytes.subarray(at, p));
    at = p;
  }
  return parts;
}

/** Garbage as a fuzzer makes it: random bytes, or a valid stream with bytes flipped, cut, or a huge MSG-LEN. */
function garbage(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    fc
      .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([b, flips]) => {
        const copy = Buffer.from(b);
        for (const [at, v] of flips) if (copy.length > 0) copy[at % copy.length] = v;
        return copy;
      }),
    fc.tuple(valid, fc.nat()).map(([b, at]) => b.subarray(0, b.length === 0 ? 0 : at % b.length)),
    fc
      .tuple(valid, fc.constantFrom('9999999999 ', '4294967296 ', '65 ', '0 ', '00 ', '12345678901 '), fc.nat())
      .map(([b, len, at]) => {
        const p = b.length === 0 ? 0 : at % b.length;
        return Buffer.concat([b.subarray(0, p), Buffer.from(len), b.subarray(p)]);
      }),
  );
}

const octetStream = fc
  .array(fc.tuple(messageText, fc.constantFrom('', '\n', '\r\n', ' ')), { maxLength: 8 })
  .map((frames) => Buffer.from(frames.map(([m, t]) => octetFrame(m, t)).join('')));

describe('fuzz: octet counting', () => {
  it('property: a valid stream cut anywhere decodes to the same messages as whole, and to what was sent', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(messageText, fc.constantFrom('', '\n', '\r\n', ' ')), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, cuts) => {
          const bytes = Buffer.from(frames.map(([m, t]) => octetFrame(m, t)).join(''));
          const decode = (parts: Buffer[]) => {
            const d = new OctetCountingDecoder({ maxMessageBytes: MAX, onError: (r) => assert.fail(r) });
            return parts.flatMap((p) => d.push(p));
          };
          const whole = decode([bytes]);
          assert.deepEqual(
            whole,
            frames.map(([m]) => m),
          );
          assert.deepEqual(decode(split(bytes, cuts)), whole);
        },
      ),
      runs(500),
    );
  });

  it('property: garbage cut anywhere never throws, never holds more than max, never yields a longer message', () => {
    fc.assert(
      fc.property(fc.array(garbage(octetStream), { maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), (g, cuts) => {
        const overlong: number[] = [];
        let errors = 0;
        const d = new OctetCountingDecoder({
          maxMessageBytes: MAX,
          onOverlong: (prefix, length) => {
            assert.ok(length > MAX);
            assert.ok(Buffer.byteLength(prefix) <= 1024);
            overlong.push(length);
          },
          onError: () => errors++,
        });
        for (const part of split(Buffer.concat(g), cuts)) {
          for (const m of d.push(part)) assert.ok(m.length <= MAX, `a message of ${m.length} > ${MAX}`);
          assert.ok(d.bufferedBytes <= MAX, `holds ${d.bufferedBytes}`);
          if (errors > 0) assert.equal(d.broken, true);
        }
        assert.ok(errors <= 1, 'one framing error, then nothing');
        d.discardPartial();
        assert.equal(d.bufferedBytes, 0);
      }),
      runs(500),
    );
  });

  it('a declared length of 9,999,999,999 is skipped as it arrives, never allocated', () => {
    const overlong: [string, number][] = [];
    const d = new OctetCountingDecoder({ maxMessageBytes: MAX, onOverlong: (p, n) => overlong.push([p, n]) });
    d.push(Buffer.from('9999999999 '));
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 32; i++) {
      assert.deepEqual(d.push(chunk), []);
      assert.equal(d.bufferedBytes, 0);
    }
    assert.equal(d.discardPartial(), 0);
    assert.deepEqual(
      overlong.map(([p, n]) => [p.length, n]),
      [[1024, 9_999_999_999]],
    );
  });
});

describe('fuzz: syslog framing detection', () => {
  const newlineStream = fc
    .array(
      messageText.map((m) => m.replaceAll('\n', ' ')),
      { maxLength: 8 },
    )
    .map((lines) => Buffer.from(lines.map((l) => `<13>${l}\n`).join('')));

  it('property: octet-counted and newline streams cut anywhere decode as whole', () => {
    fc.assert(
      fc.property(fc.oneof(octetStream, newlineStream), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        const decode = (parts: Buffer[]) => {
          const f = new SyslogFramer({ maxMessageBytes: MAX });
          const out = parts.flatMap((p) => f.push(p));
          const { last } = f.end();
          if (last !== undefined && last !== '') out.push(last);
          return out;
        };
        assert.deepEqual(decode(split(bytes, cuts)), decode([bytes]));
      }),
      runs(500),
    );
  });

  it('property: garbage never throws and nothing is held past max (+ the 10 digits deciding the framing)', () => {
    fc.assert(
      fc.property(
        fc.array(garbage(fc.oneof(octetStream, newlineStream)), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (g, cuts) => {
          const f = new SyslogFramer({ maxMessageBytes: MAX, onError: () => {} });
          const internals = f as unknown as { undecided?: Buffer; decoder?: { bufferedBytes: number } };
          for (const part of split(Buffer.concat(g), cuts)) {
            for (const m of f.push(part)) assert.ok(m.length <= MAX);
            assert.ok((internals.undecided?.length ?? 0) <= 11, `undecided ${internals.undecided?.length}`);
            assert.ok((internals.decoder?.bufferedBytes ?? 0) <= MAX);
          }
          f.end();
        },
      ),
      runs(500),
    );
  });

  it('regression: a peer sending only whitespace is not buffered (it grew without bound, copied per chunk)', () => {
    // Found by the property above: the bytes before the framing decision were all kept, whitespace included.
    const f = new SyslogFramer({ maxMessageBytes: MAX });
    const spaces = Buffer.alloc(64 * 1024, 0x20);
    for (let i = 0; i < 64; i++) assert.deepEqual(f.push(spaces), []);
    assert.ok(f.discardPartial() <= 11);
    const g = new SyslogFramer({ maxMessageBytes: MAX });
    g.push(Buffer.from(' \n\t '));
    g.push(Buffer.from('  12'));
    assert.deepEqual(g.push(Buffer.from(' <13>hello wo')), ['<13>hello wo']);
    assert.equal(g.framing, 'octet-counting');
  });
});

describe('fuzz: syslog parsing', () => {
  const token = fc.oneof(
    fc.constantFrom('-', '', ' ', 'host', 'app', '1234', '[x', ']', '"', '\\', '=', ':', '\u00a0', '\ufeff'),
    fc.string({ maxLength: 8 }),
  );
  const timestamp = fc.oneof(
    fc.constantFrom(
      '2003-10-11T22:14:15.003Z',
      '2003-10-11T22:14:15.003000+07:00',
      '9999-12-31T23:59:59Z',
      '0000-01-01T00:00:00Z',
      '2003-13-45T99:99:99Z',
      'Oct 11 22:14:15',
      'Feb 31 23:59:60',
      'Dec 99 25:61:61',
      'Jan  1 00:00:00.123456',
      '-',
    ),
    fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  );
  const sd = fc.oneof(
    fc.constantFrom('-', '[a]', '[a b="c"]', '[a b="c\\"]"][d e="\\]"]', '[__proto__ __proto__="x"]', '[a b=c]', '['),
    fc.tuple(token, token, token).map(([id, k, v]) => `[${id} ${k}="${v}"]`),
  );
  const line = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc
      .tuple(fc.integer({ min: 0, max: 999 }), fc.array(fc.oneof(timestamp, token, sd), { maxLength: 8 }))
      .map(([pri, parts]) => `<${pri}>${parts.join(' ')}`),
    fc
      .tuple(fc.integer({ min: 0, max: 200 }), timestamp, token, token, token, token, sd, fc.string())
      .map(([pri, ts, h, a, p, m, s, msg]) => `<${pri}>1 ${ts} ${h} ${a} ${p} ${m} ${s} ${msg}`),
    fc
      .tuple(fc.integer({ min: 0, max: 200 }), timestamp, token, token, fc.string())
      .map(([pri, ts, h, tag, msg]) => `<${pri}>${ts} ${h} ${tag}[${tag}]: ${msg}`),
  );
  const mutatedLine = fc
    .tuple(line, fc.nat(), fc.nat(), fc.string({ maxLength: 3 }))
    .map(([l, at, len, ins]) => l.slice(0, at % (l.length + 1)) + ins + l.slice((at % (l.length + 1)) + (len % 4)));

  const optionalString = (v: unknown, name: string) =>
    assert.ok(v === undefined || typeof v === 'string', `${name} is ${typeof v}`);

  it('property: any line parses or fails with a reason, never throws; the fields have their declared types', () => {
    const shared = new SyslogParser();
    fc.assert(
      fc.property(
        fc.oneof(line, mutatedLine),
        fc.integer({ min: 0, max: 4_102_444_800_000 }), // the collector's clock: 1970 to 2100
        fc.boolean(),
        (text, nowMs, fresh) => {
          // A fresh parser too: the parser caches its last timestamp, and a fresh cache once hid a bug.
          const parser = fresh ? new SyslogParser() : shared;
          const m = parser.parse(text, nowMs);
          if (m === undefined) {
            assert.equal(typeof parser.error, 'string');
            assert.notEqual(parser.error, '');
            return;
          }
          assert.ok((FACILITIES as readonly string[]).includes(m.facility));
          assert.ok((SEVERITIES as readonly string[]).includes(m.severity));
          optionalString(m.timestamp, 'timestamp');
          if (m.timestamp !== undefined) assert.ok(!Number.isNaN(Date.parse(m.timestamp)), m.timestamp);
          for (const k of ['hostname', 'appname', 'procid', 'msgid'] as const) optionalString(m[k], k);
          assert.equal(typeof m.message, 'string');
          if (m.structured_data !== undefined) {
            for (const id of Object.keys(m.structured_data)) {
              const params: Record<string, string> = m.structured_data[id]!;
              assert.equal(typeof params, 'object');
              for (const k of Object.keys(params)) assert.equal(typeof params[k], 'string');
            }
            assert.equal(Object.getPrototypeOf(m.structured_data), Object.prototype);
          }
          const e = syslogEvent(m, new Date(nowMs).toISOString(), 'peer', 'syslog', 'id');
          JSON.stringify(e);
        },
      ),
      runs(2000),
    );
  });

  it('regression: a space after <PRI> is no empty timestamp, and the word after it no hostname', () => {
    // Found by the property above: a fresh parser's timestamp cache ('' → '') took the empty token before the
    // space for an RFC 3339 timestamp, so `<13> hello world` had timestamp '' and hostname `hello`.
    for (const text of ['<13> hello world', '<13>']) {
      const m = new SyslogParser().parse(text, Date.UTC(2026, 0, 1));
      assert.equal(m?.timestamp, undefined, text);
      assert.equal(m?.hostname, undefined, text);
    }
    assert.equal(new SyslogParser().parse('<13> hello world')?.message.trim(), 'hello world');
  });
});
