import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineSplitter, OVERLONG_PREFIX_BYTES } from '../../src/codecs/lines.ts';

interface Overlong {
  prefix: string;
  bytes: number;
}

/** Feeds the chunks, then flushes; returns the lines, the flushed tail and what was reported overlong. */
function split(chunks: (string | Buffer)[], maxLineBytes = 1024) {
  const overlong: Overlong[] = [];
  const splitter = new LineSplitter({ maxLineBytes, onOverlong: (prefix, bytes) => overlong.push({ prefix, bytes }) });
  const lines: string[] = [];
  let maxBuffered = 0;
  for (const chunk of chunks) {
    lines.push(...splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    maxBuffered = Math.max(maxBuffered, splitter.bufferedBytes);
  }
  const tail = splitter.flush();
  return { lines, tail, overlong, maxBuffered };
}

const euro = Buffer.from('€'); // 3 bytes: e2 82 ac
const pile = Buffer.from('💩'); // 4 bytes, a surrogate pair in UTF-16

const cases: { name: string; chunks: (string | Buffer)[]; lines: string[]; tail?: string; max?: number }[] = [
  { name: 'one chunk, several lines', chunks: ['a\nbb\nccc\n'], lines: ['a', 'bb', 'ccc'] },
  { name: 'CRLF endings lose their \\r', chunks: ['a\r\nb\r\nc\n'], lines: ['a', 'b', 'c'] },
  { name: 'a \\r inside a line is kept', chunks: ['a\rb\n'], lines: ['a\rb'] },
  { name: 'CR and LF in different chunks', chunks: ['abc\r', '\ndef\r', '\n'], lines: ['abc', 'def'] },
  { name: 'a line split across chunks', chunks: ['hel', 'lo wo', 'rld\nnext\n'], lines: ['hello world', 'next'] },
  { name: 'a line split across many chunks', chunks: ['a', 'b', 'c', 'd', '\n'], lines: ['abcd'] },
  { name: 'empty lines are returned', chunks: ['\n\na\n\n'], lines: ['', '', 'a', ''] },
  { name: 'a chunk that is only a newline', chunks: ['abc', '\n', '\n'], lines: ['abc', ''] },
  { name: 'unterminated tail comes from flush', chunks: ['a\nb'], lines: ['a'], tail: 'b' },
  { name: 'flush strips a final \\r', chunks: ['a\nb\r'], lines: ['a'], tail: 'b' },
  {
    name: 'a 3-byte character split after its first byte',
    chunks: [
      Buffer.concat([Buffer.from('price '), euro.subarray(0, 1)]),
      Buffer.concat([euro.subarray(1), Buffer.from('5\n')]),
    ],
    lines: ['price €5'],
  },
  {
    name: 'a 4-byte character split in every position',
    chunks: [
      pile.subarray(0, 1),
      pile.subarray(1, 2),
      pile.subarray(2, 3),
      Buffer.concat([pile.subarray(3), Buffer.from('\n')]),
    ],
    lines: ['💩'],
  },
  {
    name: 'a multi-byte character split after complete lines in the same chunk',
    chunks: [
      Buffer.concat([Buffer.from('x\ny'), euro.subarray(0, 2)]),
      Buffer.concat([euro.subarray(2), Buffer.from('\n')]),
    ],
    lines: ['x', 'y€'],
  },
  { name: 'a line of exactly max_line_bytes is kept', chunks: [`${'a'.repeat(8)}\n`], lines: ['a'.repeat(8)], max: 8 },
  {
    name: 'a CRLF line of max_line_bytes with its \\r is kept',
    chunks: [`${'a'.repeat(7)}\r\n`],
    lines: ['a'.repeat(7)],
    max: 8,
  },
];

describe('LineSplitter', () => {
  for (const c of cases) {
    it(c.name, () => {
      const { lines, tail, overlong } = split(c.chunks, c.max);
      assert.deepEqual(lines, c.lines);
      assert.equal(tail, c.tail);
      assert.deepEqual(overlong, []);
    });
  }

  it('reports a line one byte over the limit and keeps the next one', () => {
    const { lines, overlong } = split([`${'a'.repeat(9)}\nok\n`], 8);
    assert.deepEqual(lines, ['ok']);
    assert.deepEqual(overlong, [{ prefix: 'a'.repeat(9), bytes: 9 }]);
  });

  it('counts the \r of CRLF toward the limit', () => {
    const { lines, overlong } = split([`${'a'.repeat(8)}\r\nok\r\n`], 8);
    assert.deepEqual(lines, ['ok']);
    assert.deepEqual(overlong, [{ prefix: `${'a'.repeat(8)}\r`, bytes: 9 }]);
  });

  it('reports an overlong line between short ones in one chunk', () => {
    const { lines, overlong } = split([`a\n${'x'.repeat(50)}\nb\nc\n`], 16);
    assert.deepEqual(lines, ['a', 'b', 'c']);
    assert.deepEqual(overlong, [{ prefix: 'x'.repeat(50), bytes: 50 }]);
  });

  it('skips an overlong line spread over many chunks without buffering it', () => {
    const max = 4096;
    const chunks: string[] = ['before\nstart-'];
    for (let i = 0; i < 200; i++) chunks.push('y'.repeat(1000));
    chunks.push('-end\nafter\n');
    const overlongBytes = 'start-'.length + 200 * 1000 + '-end'.length;
    const overlong: Overlong[] = [];
    const splitter = new LineSplitter({
      maxLineBytes: max,
      onOverlong: (prefix, bytes) => overlong.push({ prefix, bytes }),
    });
    const lines: string[] = [];
    for (const chunk of chunks) {
      lines.push(...splitter.push(Buffer.from(chunk)));
      assert.ok(splitter.bufferedBytes <= max, `buffered ${splitter.bufferedBytes} bytes, limit ${max}`);
    }
    assert.deepEqual(lines, ['before', 'after']);
    assert.equal(overlong.length, 1);
    assert.equal(overlong[0]!.bytes, overlongBytes);
    assert.equal(overlong[0]!.prefix, `start-${'y'.repeat(OVERLONG_PREFIX_BYTES - 6)}`);
    assert.equal(splitter.discarding, false);
  });

  it('cuts the reported prefix at a character boundary', () => {
    // 1023 ASCII bytes then a 3-byte character straddling the 1024-byte cut.
    const line = `${'a'.repeat(1023)}€${'b'.repeat(5000)}`;
    const { overlong } = split([`${line}\n`], 2048);
    assert.equal(overlong[0]!.prefix, 'a'.repeat(1023));
    assert.equal(overlong[0]!.bytes, Buffer.byteLength(line));
  });

  it('an overlong line still open at the end is reported by flush, not returned', () => {
    const { lines, tail, overlong } = split(['ok\n', 'z'.repeat(30), 'z'.repeat(30)], 40);
    assert.deepEqual(lines, ['ok']);
    assert.equal(tail, undefined);
    assert.deepEqual(overlong, [{ prefix: 'z'.repeat(60), bytes: 60 }]);
  });

  it('discardPartial forgets the unterminated line and returns its size', () => {
    const splitter = new LineSplitter({ maxLineBytes: 100 });
    assert.deepEqual(splitter.push(Buffer.from('done\nhalf')), ['done']);
    assert.equal(splitter.discardPartial(), 4);
    assert.equal(splitter.flush(), undefined);
    assert.deepEqual(splitter.push(Buffer.from('new\n')), ['new']);
  });

  it('yields the same lines for any chunking of a text (property)', () => {
    const lineArb = fc.string({ unit: fc.constantFrom('a', 'é', '€', '💩', ' ', '\r', 'z'), maxLength: 30 });
    fc.assert(
      fc.property(
        fc.array(lineArb, { maxLength: 20 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 30 }),
        (lineList, crlf, cuts) => {
          const text = lineList.join(crlf ? '\r\n' : '\n');
          const bytes = Buffer.from(text);
          const offsets = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const o of [...offsets, bytes.length]) {
            chunks.push(bytes.subarray(prev, o));
            prev = o;
          }
          const strip = (l: string) => (l.endsWith('\r') ? l.slice(0, -1) : l);
          const raw = text.split('\n');
          const rawTail = raw.pop()!;
          const { lines, tail, overlong } = split(chunks, 1 << 20);
          assert.deepEqual(lines, raw.map(strip));
          // flush() returns the unterminated bytes (a final \r stripped), undefined when there are none
          assert.equal(tail, rawTail === '' ? undefined : strip(rawTail));
          assert.deepEqual(overlong, []);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('bounds memory by the limit for any chunking, whatever the line lengths (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 10 }),
        (lengths, sizes) => {
          const max = 64;
          const text = lengths.map((n, i) => String.fromCharCode(97 + (i % 26)).repeat(n)).join('\n');
          const bytes = Buffer.from(`${text}\n`);
          const overlong: Overlong[] = [];
          const splitter = new LineSplitter({
            maxLineBytes: max,
            onOverlong: (prefix, n) => overlong.push({ prefix, bytes: n }),
          });
          const lines: string[] = [];
          for (let pos = 0, i = 0; pos < bytes.length; i++) {
            const size = sizes[i % sizes.length]!;
            lines.push(...splitter.push(bytes.subarray(pos, pos + size)));
            assert.ok(splitter.bufferedBytes <= max);
            pos += size;
          }
          const all = text.split('\n');
          assert.deepEqual(
            lines,
            all.filter((l) => l.length <= max),
          );
          assert.deepEqual(
            overlong.map((o) => o.bytes),
            all.filter((l) => l.length > max).map((l) => l.length),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
