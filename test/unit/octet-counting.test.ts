import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OctetCountingDecoder, SyslogFramer } from '../../src/codecs/octet-counting.ts';

const frame = (msg: string) => `${Buffer.byteLength(msg)} ${msg}`;

function decoder(max = 1024) {
  const overlong: [string, number][] = [];
  const errors: string[] = [];
  const d = new OctetCountingDecoder({
    maxMessageBytes: max,
    onOverlong: (prefix, bytes) => overlong.push([prefix, bytes]),
    onError: (reason) => errors.push(reason),
  });
  return { d, overlong, errors };
}

/** Feeds `input` cut at `cuts` and returns every message. */
function feed(push: (b: Buffer) => string[], input: Buffer, cuts: number[]): string[] {
  const out: string[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(...push(input.subarray(from, cut)));
    from = cut;
  }
  return out;
}

describe('octet counting (RFC 6587)', () => {
  it('decodes frames holding newlines and multi-byte characters, split at every byte', () => {
    const messages = ['<13>1 - - - - - - one', 'two\nlines', 'é ünïcödé 🎉', '<13>x'];
    const input = Buffer.from(messages.map(frame).join(''));
    for (let cut = 0; cut <= input.length; cut++) {
      for (const second of [cut, Math.min(input.length, cut + 3)]) {
        const { d, errors } = decoder();
        assert.deepEqual(
          feed((b) => d.push(b), input, [cut, second]),
          messages,
          `cut at ${cut}, ${second}`,
        );
        assert.deepEqual(errors, []);
        assert.ok(d.atBoundary);
      }
    }
  });

  it('skips whitespace between frames and a trailing newline inside a frame', () => {
    const { d, errors } = decoder();
    const input = `${frame('a\n')}\n${frame('b\r\n')}\r\n  ${frame('c')}\n`;
    assert.deepEqual(d.push(Buffer.from(input)), ['a', 'b', 'c']);
    assert.deepEqual(errors, []);
  });

  it('skips a frame over the limit without holding it, reports its prefix and length, and goes on', () => {
    const { d, overlong, errors } = decoder(2048);
    const big = 'x'.repeat(5000);
    const input = Buffer.from(frame('before') + frame(big) + frame('after'));
    const out: string[] = [];
    for (let i = 0; i < input.length; i += 100) {
      out.push(...d.push(input.subarray(i, i + 100)));
      assert.ok(d.bufferedBytes <= 2048, `holds ${d.bufferedBytes} bytes`);
    }
    assert.deepEqual(out, ['before', 'after']);
    assert.deepEqual(overlong, [['x'.repeat(1024), 5000]]);
    assert.deepEqual(errors, []);
  });

  for (const [input, reason] of [
    ['12x <13>hello', /MSG-LEN 12 is followed by byte 0x78/],
    ['<13>not counted', /expected MSG-LEN, found byte 0x3c/],
    ['012 <13>x', /starts with 0/],
    ['12345678901 x', /more than 10 digits/],
  ] as const) {
    it(`stops at a malformed stream: ${JSON.stringify(input)}`, () => {
      const { d, errors } = decoder();
      const out = d.push(Buffer.from(frame('first') + input));
      assert.deepEqual(out, ['first'], 'frames before the error are delivered');
      assert.equal(errors.length, 1);
      assert.match(errors[0]!, reason);
      assert.ok(d.broken);
      assert.deepEqual(d.push(Buffer.from(frame('later'))), [], 'nothing is framed after an error');
    });
  }

  it('reports an incomplete frame when the stream stops', () => {
    const { d } = decoder();
    assert.deepEqual(d.push(Buffer.from('10 <13>ab')), []);
    assert.equal(d.discardPartial(), 6, 'the body bytes received');
    assert.ok(d.atBoundary);
    assert.deepEqual(d.push(Buffer.from('12')), []);
    assert.equal(d.discardPartial(), 1, 'a MSG-LEN alone is an incomplete frame too');
    assert.equal(d.discardPartial(), 0);
  });

  it('decodes any messages cut into any chunks (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (messages, rawCuts) => {
          // A trailing newline inside a frame is removed by design; keep it out of the generated messages.
          const kept = messages.filter((m) => !m.endsWith('\n'));
          const input = Buffer.from(kept.map(frame).join(''));
          const cuts = rawCuts.map((c) => c % (input.length + 1)).sort((a, b) => a - b);
          const { d, errors } = decoder(4096);
          assert.deepEqual(
            feed((b) => d.push(b), input, cuts),
            kept,
          );
          assert.deepEqual(errors, []);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('syslog framing detection', () => {
  it('octet counting when the first byte is a digit, after leading whitespace', () => {
    const detected: string[] = [];
    const f = new SyslogFramer({ maxMessageBytes: 1024, onDetected: (x) => detected.push(x) });
    assert.deepEqual(f.push(Buffer.from('\n \r\n')), []);
    assert.equal(f.framing, undefined);
    assert.deepEqual(f.push(Buffer.from(`${frame('<13>a\nb')}${frame('<13>c')}`)), ['<13>a\nb', '<13>c']);
    assert.equal(f.framing, 'octet-counting');
    assert.deepEqual(detected, ['octet-counting']);
    f.push(Buffer.from('5 <13>'));
    assert.deepEqual(f.end(), { last: undefined, droppedBytes: 4 }, 'an unfinished frame is dropped at the end');
  });

  it('newline framing otherwise, decided once: a later line starting with a digit is still a line', () => {
    const f = new SyslogFramer({ maxMessageBytes: 1024 });
    assert.deepEqual(f.push(Buffer.from('<13>one\r\n12 not a length\n<13>la')), ['<13>one', '12 not a length']);
    assert.equal(f.framing, 'newline');
    assert.deepEqual(f.end(), { last: '<13>la', droppedBytes: 0 }, 'the last line is complete at the end');
  });

  it('reports overlong messages in both framings', () => {
    for (const input of [`<13>${'y'.repeat(300)}\n<13>ok\n`, `${frame(`<13>${'y'.repeat(300)}`)}${frame('<13>ok')}`]) {
      const overlong: number[] = [];
      const f = new SyslogFramer({ maxMessageBytes: 100, onOverlong: (_p, bytes) => overlong.push(bytes) });
      assert.deepEqual(f.push(Buffer.from(input)), ['<13>ok']);
      assert.deepEqual(overlong, [304]);
    }
  });

  it('is broken after a framing error so the connection can be closed', () => {
    const errors: string[] = [];
    const f = new SyslogFramer({ maxMessageBytes: 100, onError: (r) => errors.push(r) });
    assert.deepEqual(f.push(Buffer.from('3 abcgarbage')), ['abc']);
    assert.ok(f.broken);
    assert.equal(errors.length, 1);
  });
});

describe('SyslogFramer detection needs MSG-LEN SP', () => {
  const collect = (chunks: string[]) => {
    const framer = new SyslogFramer({ maxMessageBytes: 1024 });
    const out: string[] = [];
    for (const c of chunks) out.push(...framer.push(Buffer.from(c)));
    const last = framer.end().last;
    if (last !== undefined) out.push(last);
    return { out, framing: framer.framing };
  };

  it('a line that starts with an IP address is newline framing', () => {
    const r = collect(['203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 512\n', '10.0.0.1 next\n']);
    assert.equal(r.framing, 'newline');
    assert.deepEqual(r.out, ['203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 512', '10.0.0.1 next']);
  });

  it('the length may arrive one byte at a time', () => {
    const r = collect(['1', '1', ' <13>1 - - - - ', '- hi']);
    assert.equal(r.framing, 'octet-counting');
    assert.deepEqual(r.out, ['<13>1 - - - - - hi'.slice(0, 11)]);
  });

  it('only digits before the end of the stream are a line', () => {
    const r = collect(['12345']);
    assert.equal(r.framing, 'newline');
    assert.deepEqual(r.out, ['12345']);
  });
});
