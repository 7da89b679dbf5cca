import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeRelpFrame, encodeRelpResponse, RelpDecoder, type RelpFrame } from '../../src/codecs/relp.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

function decode(chunks: (string | Buffer)[], maxDataBytes = 1024) {
  const decoder = new RelpDecoder({ maxDataBytes, prefixBytes: 16 });
  const frames: RelpFrame[] = [];
  let error: string | undefined;
  for (const c of chunks) error ??= decoder.push(typeof c === 'string' ? Buffer.from(c) : c, frames);
  return {
    frames: frames.map((f) => ({ txnr: f.txnr, command: f.command, data: f.data.toString(), overlong: f.overlong })),
    error,
    decoder,
  };
}

describe('RELP decoder', () => {
  it('decodes several frames in one chunk, with and without DATA, LF inside DATA included', () => {
    const { frames, error } = decode(['1 open 14 relp_version=0\n2 syslog 5 <13>a\n3 close 0\n4 syslog 3 a\nb\n']);
    assert.equal(error, undefined);
    assert.deepEqual(frames, [
      { txnr: 1, command: 'open', data: 'relp_version=0', overlong: undefined },
      { txnr: 2, command: 'syslog', data: '<13>a', overlong: undefined },
      { txnr: 3, command: 'close', data: '', overlong: undefined },
      { txnr: 4, command: 'syslog', data: 'a\nb', overlong: undefined },
    ]);
  });

  it('decodes a frame split at every byte the same as whole', () => {
    const bytes = Buffer.concat([encodeRelpFrame(7, 'syslog', '<13>hello world'), encodeRelpFrame(8, 'close')]);
    const whole = decode([bytes]).frames;
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepEqual(decode([bytes.subarray(0, cut), bytes.subarray(cut)]).frames, whole, `cut at ${cut}`);
    }
    assert.deepEqual(decode([...bytes].map((b) => Buffer.from([b]))).frames, whole, 'one byte at a time');
  });

  for (const [name, input, pattern] of [
    ['a TXNR that is not a number', 'a1 syslog 1 x\n', /bad TXNR/],
    ['a TXNR of 10 digits', '1234567890 syslog 1 x\n', /TXNR longer than 9 digits/],
    ['a missing command', '1  1 x\n', /bad COMMAND/],
    ['a command with a digit', '1 sys1og 1 x\n', /bad COMMAND/],
    ['a DATALEN that is not a number', '1 syslog x x\n', /bad DATALEN/],
    ['a DATALEN of 10 digits', '1 syslog 1234567890 x\n', /DATALEN longer than 9 digits/],
    ['a DATALEN with no DATA', '1 syslog 5\n', /ends without DATA/],
    ['DATA longer than DATALEN', '1 syslog 1 xy\n', /not terminated by LF/],
  ] as const) {
    it(`${name}: a protocol error, after which the decoder takes nothing`, () => {
      const { frames, error, decoder } = decode(['1 open 0\n', input]);
      assert.equal(frames.length, 1, 'the frame before the error is kept');
      assert.match(error!, pattern);
      assert.equal(decoder.broken, true);
      const more: RelpFrame[] = [];
      assert.equal(decoder.push(Buffer.from('2 close 0\n'), more), error);
      assert.equal(more.length, 0);
    });
  }

  it('DATA over max size is skipped as it arrives, kept as a prefix with its declared length', () => {
    const long = 'x'.repeat(5000);
    const bytes = encodeRelpFrame(3, 'syslog', long);
    const decoder = new RelpDecoder({ maxDataBytes: 100, prefixBytes: 16 });
    const frames: RelpFrame[] = [];
    for (let i = 0; i < bytes.length; i += 700) {
      assert.equal(decoder.push(bytes.subarray(i, i + 700), frames), undefined);
      assert.ok(decoder.bufferedBytes <= 100, `holds ${decoder.bufferedBytes}`);
    }
    decoder.push(encodeRelpFrame(4, 'syslog', 'next'), frames);
    assert.deepEqual(
      frames.map((f) => [f.txnr, f.data.toString(), f.overlong]),
      [
        [3, 'x'.repeat(16), 5000],
        [4, 'next', undefined],
      ],
    );
  });

  it('discardPartial reports an unfinished frame and starts over', () => {
    const decoder = new RelpDecoder({ maxDataBytes: 100 });
    const frames: RelpFrame[] = [];
    decoder.push(Buffer.from('5 syslog 10 abc'), frames);
    assert.equal(decoder.discardPartial(), 3);
    assert.equal(decoder.discardPartial(), 0);
    decoder.push(Buffer.from('6 close 0\n'), frames);
    assert.deepEqual(
      frames.map((f) => f.txnr),
      [6],
    );
  });

  it('encodes answers as librelp reads them', () => {
    assert.equal(encodeRelpResponse(2, 200, 'OK').toString(), '2 rsp 6 200 OK\n');
    assert.equal(
      encodeRelpResponse(1, 200, 'OK', 'relp_version=0\ncommands=syslog').toString(),
      '1 rsp 37 200 OK\nrelp_version=0\ncommands=syslog\n',
    );
    assert.equal(encodeRelpFrame(0, 'serverclose').toString(), '0 serverclose 0\n');
  });

  it('property: random bytes, cut anywhere, never throw out of the decoder nor buffer more than the cap', () => {
    const max = 64;
    const frame = fc
      .tuple(fc.integer({ min: 0, max: 999_999_999 }), fc.constantFrom('open', 'syslog', 'close', 'rsp'), fc.string())
      .map(([txnr, command, data]) => encodeRelpFrame(txnr, command, data));
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      frame,
      // a valid frame with one byte flipped
      fc.tuple(frame, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([f, at, b]) => {
        const copy = Buffer.from(f);
        copy[at % copy.length] = b;
        return copy;
      }),
    );
    fc.assert(
      fc.property(fc.array(bytes, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 8 }), (parts, cuts) => {
        const all = Buffer.concat(parts);
        const points = [...new Set(cuts.map((c) => (all.length === 0 ? 0 : c % all.length)))].sort((a, b) => a - b);
        const decoder = new RelpDecoder({ maxDataBytes: max, prefixBytes: 16 });
        const frames: RelpFrame[] = [];
        let at = 0;
        for (const p of [...points, all.length]) {
          const error = decoder.push(all.subarray(at, p), frames);
          if (error !== undefined) assert.equal(decoder.broken, true);
          assert.ok(decoder.bufferedBytes <= max, `holds ${decoder.bufferedBytes} > ${max}`);
          at = p;
        }
        for (const f of frames) assert.ok(f.data.length <= max);
      }),
      fuzzRuns(500),
    );
  });
});
