import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { zstdCodec } from '../../src/codecs/zstd.ts';

/** 3 MiB of `i % 251`, compressed by node:zlib (Node 26) without the frame's content size, as streaming compressors write. */
const NO_SIZE_FRAME = Buffer.from(
  'KLUv/QBYLAgAtA8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKTlJWWl5iZmpucnZ6foKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr/AwcLDxMXGx8jJysvMzc7P0NHS09TV1tfY2drb3N3e3+Dh4uPk5ebn6Onq6+zt7u/w8fLz9PX29/j5+gEAe4F/f26kTAAACDIBAPz/ORACTAAACGQBAPz/ORACTAAACJYBAPz/ORACTAAACMgBAPz/ORACTAAACPoBAPz/ORACTAAACDEBAPz/ORACTAAACGMBAPz/ORACTAAACJUBAPz/ORACTAAACMcBAPz/ORACTAAACPkBAPz/ORACTAAACDABAPz/ORACTAAACGIBAPz/ORACTAAACJQBAPz/ORACTAAACMYBAPz/ORACTAAACPgBAPz/ORACTAAACC8BAPz/ORACTAAACGEBAPz/ORACTAAACJMBAPz/ORACTAAACMUBAPz/ORACTAAACPcBAPz/ORACTAAACC4BAPz/ORACTAAACGABAPz/ORACTQAACJIBAPz/ORAC',
  'base64',
);
const expected = () => Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => i % 251));

describe('zstdCodec (node:zlib, or WebAssembly before Node 22.15)', () => {
  it('round-trips, and its frames say their size', async () => {
    const { compress, decompress } = await zstdCodec(3);
    const data = Buffer.from('a line of a log, '.repeat(10_000));
    const frame = compress(data);
    assert.equal(Buffer.from(frame).readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
    assert.ok(frame.length < data.length / 10);
    assert.ok(Buffer.from(decompress(frame)).equals(data));
  });

  it('decompresses a frame without its content size, larger than the first buffer it tries (1 MiB)', async () => {
    assert.equal(NO_SIZE_FRAME[4]! >> 5, 0, 'the fixture has no content size and is not single-segment');
    const { decompress } = await zstdCodec(3);
    assert.ok(Buffer.from(decompress(NO_SIZE_FRAME)).equals(expected()));
  });

  it('what is not a zstd frame is an error at once', async () => {
    const { decompress } = await zstdCodec(3);
    const damaged = Buffer.from(NO_SIZE_FRAME);
    damaged[0]! ^= 0xff;
    assert.throws(() => decompress(damaged));
    assert.throws(() => decompress(Buffer.from('{"n":1}')));
  });
});
