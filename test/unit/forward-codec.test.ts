import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { FluentServer } from '@fluent-org/logger';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  decodeClientFrame,
  decodePackedEntries,
  decodeServerMessage,
  EventTime,
  encodeAck,
  encodePackedForward,
  entryTimeMs,
  ForwardProtocolError,
  MsgpackScanner,
  packEntries,
  passwordDigest,
  sharedKeyDigest,
} from '../../src/codecs/forward.ts';

/** An encoder independent of the codec's, with msgpackr's defaults except records (plain MessagePack). */
const packr = new Packr({ useRecords: false });
const pack = (v: unknown) => packr.pack(v);

/** A fixext 8 EventTime, written byte by byte from the spec. */
function eventTimeBytes(seconds: number, nanos: number): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 0xd7;
  b[1] = 0x00;
  b.writeUInt32BE(seconds, 2);
  b.writeUInt32BE(nanos, 6);
  return b;
}

/** Scans `bytes` fed in pieces of `step`, as a connection would; returns the frame ends. */
function scanInPieces(scanner: MsgpackScanner, bytes: Buffer, step: number): number[] {
  const ends: number[] = [];
  let start = 0;
  for (let received = Math.min(step, bytes.length); ; received = Math.min(received + step, bytes.length)) {
    for (;;) {
      const end = scanner.scan(bytes, start, received);
      if (end < 0) break;
      ends.push(end);
      start = end;
    }
    if (received === bytes.length) break;
  }
  return ends;
}

describe('MsgpackScanner', () => {
  it('finds the end of nested frames fed one byte at a time, and in one piece', () => {
    const frames = [
      pack(['tag', 1700000000, { message: 'x', nested: { a: [1, 2, { b: null }], f: 1.5, big: 2 ** 40 } }]),
      pack([
        'tag',
        [
          [1, { a: 'é'.repeat(300) }],
          [2, { b: Buffer.alloc(70_000) }],
        ],
        { chunk: 'abc' },
      ]),
      pack(['t', Buffer.alloc(300), { size: 1, compressed: 'gzip' }]),
    ];
    const all = Buffer.concat(frames);
    const expected = frames.map((_, i) => frames.slice(0, i + 1).reduce((s, f) => s + f.length, 0));
    for (const step of [1, 7, 1000, all.length]) {
      assert.deepEqual(scanInPieces(new MsgpackScanner(1 << 20, 'array'), all, step), expected, `step ${step}`);
    }
  });

  it('agrees with msgpackr on the length of arbitrary values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 50 }), (value, step) => {
        const bytes = pack([value]);
        assert.deepEqual(scanInPieces(new MsgpackScanner(1 << 24, 'array'), bytes, step), [bytes.length]);
      }),
      { numRuns: 300 },
    );
  });

  it('counts ext types by their declared lengths (EventTime fixext 8, ext 8)', () => {
    const bytes = Buffer.concat([Buffer.from([0x93, 0xa1, 0x74]), eventTimeBytes(1, 2), pack({ a: 1 })]);
    assert.deepEqual(scanInPieces(new MsgpackScanner(1024, 'array'), bytes, 1), [bytes.length]);
    const ext8 = Buffer.from([0x92, 0xc7, 0x03, 0x05, 1, 2, 3, 0xc0]);
    assert.deepEqual(scanInPieces(new MsgpackScanner(1024, 'array'), ext8, 1), [ext8.length]);
  });

  it('rejects a frame that is not an array, and the reserved byte 0xc1', () => {
    assert.throws(
      () => new MsgpackScanner(1024, 'array').scan(Buffer.from('GET / HTTP/1.1\r\n'), 0, 16),
      (e: unknown) =>
        e instanceof ForwardProtocolError && /expected a MessagePack array, found byte 0x47/.test(e.message),
    );
    assert.throws(
      () => new MsgpackScanner(1024, 'array').scan(Buffer.from([0x92, 0x01, 0xc1]), 0, 3),
      /reserved byte 0xc1/,
    );
    assert.equal(new MsgpackScanner(1024, 'any').scan(pack({ ack: 'x' }), 0, pack({ ack: 'x' }).length) > 0, true);
  });

  it('rejects a frame larger than the limit as soon as a header says so', () => {
    const scanner = new MsgpackScanner(1000, 'array');
    // bin32 announcing 1 GB: rejected from its 8 header bytes, without waiting for the payload.
    const head = Buffer.from([0x93, 0xa1, 0x74, 0xc6, 0x40, 0x00, 0x00, 0x00]);
    assert.throws(() => scanner.scan(head, 0, head.length), /larger than max_message_bytes \(1000 bytes\)/);
    // array32 announcing 2^31 elements: each takes at least one byte.
    const many = Buffer.from([0x92, 0xa1, 0x74, 0xdd, 0x80, 0x00, 0x00, 0x00]);
    assert.throws(() => new MsgpackScanner(1000, 'array').scan(many, 0, many.length), /larger than max_message_bytes/);
    const ok = pack(['t', Buffer.alloc(900)]);
    assert.equal(new MsgpackScanner(1000, 'array').scan(ok, 0, ok.length), ok.length);
  });
});

describe('decodeClientFrame: the four modes', () => {
  it('Message mode with integer seconds and with EventTime', () => {
    const f = decodeClientFrame(pack(['app.web', 1700000000, { message: 'hi' }, { chunk: 'c1' }]));
    assert.equal(f.kind, 'entries');
    assert.ok(f.kind === 'entries');
    assert.equal(f.tag, 'app.web');
    assert.deepEqual(f.entries, [[1700000000, { message: 'hi' }]]);
    assert.equal(f.option?.chunk, 'c1');

    const raw = Buffer.concat([
      Buffer.from([0x93, 0xa1, 0x74]),
      eventTimeBytes(1700000000, 123_456_789),
      pack({ a: 1 }),
    ]);
    const g = decodeClientFrame(raw);
    assert.ok(g.kind === 'entries');
    const time = (g.entries[0] as unknown[])[0];
    assert.ok(time instanceof EventTime);
    assert.equal(entryTimeMs(time), 1700000000123);
    assert.equal(g.option, undefined);
  });

  it('Forward mode', () => {
    const f = decodeClientFrame(
      pack([
        't',
        [
          [1, { a: 1 }],
          [2, { b: 2 }],
        ],
        { size: 2, chunk: 'c' },
      ]),
    );
    assert.ok(f.kind === 'entries');
    assert.deepEqual(f.entries, [
      [1, { a: 1 }],
      [2, { b: 2 }],
    ]);
    assert.equal(f.option?.size, 2);
  });

  it('PackedForward as bin and as str (how Fluentd sends it), and CompressedPackedForward', () => {
    const entries = Buffer.concat([pack([1, { a: 'é' }]), pack([2, { b: 2 }])]);
    const asBin = decodeClientFrame(pack(['t', entries, { size: 2 }]));
    assert.ok(asBin.kind === 'packed');
    assert.equal(asBin.gzip, false);
    assert.deepEqual(decodePackedEntries(asBin.packed), [
      [1, { a: 'é' }],
      [2, { b: 2 }],
    ]);
    // str 8 header (0xd9) around the same bytes: they are not UTF-8 text and must come through untouched.
    const asStr = Buffer.concat([Buffer.from([0x92, 0xa1, 0x74, 0xd9, entries.length]), entries]);
    const s = decodeClientFrame(asStr);
    assert.ok(s.kind === 'packed');
    assert.deepEqual(Buffer.from(s.packed), entries);
    const gz = decodeClientFrame(pack(['t', gzipSync(entries), { compressed: 'gzip', chunk: 'z' }]));
    assert.ok(gz.kind === 'packed');
    assert.equal(gz.gzip, true);
    assert.equal(gz.option?.chunk, 'z');
  });

  it('rejects what is not a forward message', () => {
    assert.throws(() => decodeClientFrame(pack([1, 2, 3])), /the tag is not a string/);
    assert.throws(() => decodeClientFrame(pack(['t'])), /an array of 1 elements/);
    assert.throws(() => decodeClientFrame(pack(['t', 1, {}, {}, 5])), /an array of 5 elements/);
    assert.throws(() => decodeClientFrame(pack(['t', 1, { a: 1 }, 'opt'])), /option is not a map/);
    assert.throws(() => decodeClientFrame(pack(['t', 1, { a: 1 }, { chunk: 5 }])), /option.chunk is not a string/);
    assert.throws(() => decodePackedEntries(Buffer.from([0x92, 0x01])), /invalid MessagePack in packed entries/);
  });
});

describe('encoding (sink side)', () => {
  it('packs entries with EventTime as fixext 8 of type 0 and a PackedForward the decoder reads back', () => {
    const entries = [
      [EventTime.fromMs(1700000000123), { message: 'a' }],
      [new EventTime(1, 999_999_999), { message: 'b', n: 2 }],
    ];
    const packed = packEntries(entries);
    assert.deepEqual(
      packed.subarray(0, 12),
      Buffer.concat([Buffer.from([0x92]), eventTimeBytes(1700000000, 123_000_000), Buffer.from([0x81])]),
    );
    const frame = encodePackedForward('app', packed, 2, 'chunk-1', false);
    assert.equal(new MsgpackScanner(1 << 20, 'array').scan(frame, 0, frame.length), frame.length);
    const f = decodeClientFrame(frame);
    assert.ok(f.kind === 'packed');
    assert.equal(f.tag, 'app');
    assert.deepEqual(f.option, { size: 2, chunk: 'chunk-1' });
    const back = decodePackedEntries(f.packed) as [EventTime, unknown][];
    assert.equal(back[0]![0].ms, 1700000000123);
    assert.deepEqual(back[1]![0], new EventTime(1, 999_999_999));
    assert.deepEqual(back[1]![1], { message: 'b', n: 2 });
    const big = encodePackedForward('app', Buffer.alloc(70_000), 1, 'c', true);
    assert.deepEqual([...big.subarray(0, 8)], [0x93, 0xa3, 0x61, 0x70, 0x70, 0xc6, 0, 1]);
  });

  it('decodes server messages: ack, HELO, PONG; anything else is an error', () => {
    assert.deepEqual(decodeServerMessage(encodeAck('abc')), { kind: 'ack', chunk: 'abc' });
    const helo = decodeServerMessage(pack(['HELO', { nonce: Buffer.from('n'), auth: '', keepalive: true }]));
    assert.equal(helo.kind, 'helo');
    const pong = decodeServerMessage(pack(['PONG', false, 'shared key mismatch', 'srv', '']));
    assert.deepEqual(pong, { kind: 'pong', ok: false, reason: 'shared key mismatch', hostname: 'srv', digest: '' });
    assert.throws(() => decodeServerMessage(pack({ nope: 1 })), /unexpected message from the server/);
  });
});

describe('shared-key digests', () => {
  it('match the digests of @fluent-org/logger (a separate implementation) in a full handshake', async () => {
    // The library's server checks our PING digest and our client checks its PONG digest: both must agree byte for byte.
    const server = new FluentServer({
      security: { serverHostname: 'srv', sharedKey: 'k3y', authorize: true, userDict: { alice: 'pw' } },
      listenOptions: { host: '127.0.0.1', port: 0 },
    });
    await server.listen();
    try {
      const { ForwardClientConnection } = await import('../../src/sinks/forward/connection.ts');
      const settings = {
        host: '127.0.0.1',
        port: server.port!,
        tls: undefined,
        connectTimeoutMs: 5000,
        auth: { sharedKey: 'k3y', hostname: 'cli', username: 'alice', password: 'pw' },
      };
      const conn = await ForwardClientConnection.open(settings);
      conn.close();
      await assert.rejects(
        ForwardClientConnection.open({ ...settings, auth: { ...settings.auth, password: 'wrong' } }),
        /authentication rejected: username\/password mismatch/,
      );
      await assert.rejects(
        ForwardClientConnection.open({ ...settings, auth: { ...settings.auth, sharedKey: 'other' } }),
        /authentication rejected: shared key mismatch/,
      );
    } finally {
      await server.close();
    }
  });

  it('follow the spec formulas', () => {
    const hex = (s: string) => s.length === 128 && /^[0-9a-f]+$/.test(s);
    assert.ok(hex(sharedKeyDigest('salt', 'host', 'nonce', 'key')));
    assert.equal(sharedKeyDigest('salt', 'host', 'nonce', 'key'), sharedKeyDigest('sal', 'thost', 'nonce', 'key'));
    assert.notEqual(sharedKeyDigest('salt', 'host', 'nonce', 'key'), sharedKeyDigest('salt', 'host', 'nonce', 'kez'));
    assert.ok(hex(passwordDigest(Buffer.from([1, 2]), 'u', 'p')));
  });
});
