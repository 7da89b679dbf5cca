import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  clearFramedLines,
  LineFramer,
  newFramedLines,
  OVERLONG_PREFIX_BYTES,
  type OverlongMode,
} from '../../src/sources/file/line-framer.ts';

interface Framed {
  lines: [string, number][];
  overlong: { prefix: string; offset: number; bytes: number }[];
  invalid: number;
  tooLong: number;
}

/** Feeds `chunks` (the file from `start`) and optionally flushes the partial line. */
function frame(
  chunks: (string | Buffer)[],
  options: { max?: number; mode?: OverlongMode; start?: number; flush?: boolean } = {},
): Framed & { framer: LineFramer } {
  const overlong: Framed['overlong'] = [];
  const framer = new LineFramer(
    {
      maxLineBytes: options.max ?? 1024,
      overlong: options.mode ?? 'drop',
      onOverlong: (prefix, offset, bytes) => overlong.push({ prefix, offset, bytes }),
    },
    options.start ?? 0,
  );
  const out = newFramedLines();
  const lines: [string, number][] = [];
  let invalid = 0;
  let tooLong = 0;
  const collect = () => {
    out.lines.forEach((l, i) => {
      lines.push([l, out.offsets[i]!]);
    });
    invalid += out.invalidUtf8;
    tooLong += out.overlong;
    clearFramedLines(out);
  };
  for (const c of chunks) {
    framer.push(typeof c === 'string' ? Buffer.from(c) : c, out);
    collect();
  }
  if (options.flush) {
    framer.flushPartial(out);
    collect();
  }
  return { lines, overlong, invalid, tooLong, framer };
}

/**
 * The reference: split the whole input at `\n`, offsets by bytes, drop empty lines, strip one `\r`. In split
 * mode an overlong line is cut into pieces of at most `max` bytes at character boundaries, an unterminated
 * one too as far as it is longer than `max` (only that much is ever held).
 */
function reference(input: Buffer, max: number, mode: OverlongMode): [string, number][] {
  const out: [string, number][] = [];
  let pos = 0;
  const pieces = (from: number, to: number): number => {
    let at = from;
    while (to - at > max) {
      let cut = max;
      while (cut > max - 3 && (input[at + cut]! & 0xc0) === 0x80) cut--;
      if ((input[at + cut]! & 0xc0) === 0x80) cut = max;
      out.push([input.toString('utf8', at, at + cut), at]);
      at += cut;
    }
    return at;
  };
  for (;;) {
    const nl = input.indexOf(0x0a, pos);
    if (nl < 0) {
      if (mode === 'split' && input.length - pos > max) pieces(pos, input.length);
      break;
    }
    const length = nl - pos;
    if (length > max) {
      if (mode === 'split') {
        // the last piece loses a trailing \r
        const at = pieces(pos, nl);
        let end = nl;
        if (input[end - 1] === 0x0d) end--;
        if (end > at) out.push([input.toString('utf8', at, end), at]);
      }
    } else if (length > 0) {
      let end = nl;
      if (input[end - 1] === 0x0d) end--;
      if (end > pos) out.push([input.toString('utf8', pos, end), pos]);
    }
    pos = nl + 1;
  }
  return out;
}

const euro = Buffer.from('€'); // e2 82 ac

describe('file source: line framing with byte offsets', () => {
  const cases: { name: string; chunks: (string | Buffer)[]; lines: [string, number][]; flush?: boolean }[] = [
    {
      name: 'lines and their offsets',
      chunks: ['a\nbb\nccc\n'],
      lines: [
        ['a', 0],
        ['bb', 2],
        ['ccc', 5],
      ],
    },
    {
      name: 'CRLF loses its \\r; offsets count it',
      chunks: ['ab\r\ncd\r\n'],
      lines: [
        ['ab', 0],
        ['cd', 4],
      ],
    },
    { name: 'a \\r inside a line stays', chunks: ['a\rb\n'], lines: [['a\rb', 0]] },
    {
      name: 'CR and LF in different chunks',
      chunks: ['abc\r', '\nd\n'],
      lines: [
        ['abc', 0],
        ['d', 5],
      ],
    },
    {
      name: 'empty lines make no event but count',
      chunks: ['\n\na\n\r\nb\n'],
      lines: [
        ['a', 2],
        ['b', 6],
      ],
    },
    {
      name: 'a line across chunks',
      chunks: ['hel', 'lo\nwor', 'ld\n'],
      lines: [
        ['hello', 0],
        ['world', 6],
      ],
    },
    { name: 'a partial line is held', chunks: ['a\nbc'], lines: [['a', 0]] },
    {
      name: 'a held partial line is flushed',
      chunks: ['a\nbc\r'],
      lines: [
        ['a', 0],
        ['bc', 2],
      ],
      flush: true,
    },
    {
      name: 'non-ASCII lines: offsets in bytes, not characters',
      chunks: ['é\n€€\nx\n'],
      lines: [
        ['é', 0],
        ['€€', 3],
        ['x', 10],
      ],
    },
    {
      name: 'a character split across chunks',
      chunks: [
        Buffer.concat([Buffer.from('a\n'), euro.subarray(0, 1)]),
        Buffer.concat([euro.subarray(1), Buffer.from('\n')]),
      ],
      lines: [
        ['a', 0],
        ['€', 2],
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(frame(c.chunks, { flush: c.flush }).lines, c.lines);
    });
  }

  it('offsets start where the file is resumed', () => {
    assert.deepEqual(frame(['x\nyy\n'], { start: 1000 }).lines, [
      ['x', 1000],
      ['yy', 1002],
    ]);
  });

  it('safeOffset stops before a held partial line; position is past it', () => {
    const { framer } = frame(['one\ntw']);
    assert.equal(framer.position, 6);
    assert.equal(framer.safeOffset, 4);
    assert.equal(framer.holding, true);
  });

  it('invalid UTF-8 becomes U+FFFD and each such line is counted', () => {
    const input = Buffer.concat([Buffer.from('ok\nbad '), Buffer.from([0xff, 0xfe]), Buffer.from('\nfine\n')]);
    const r = frame([input]);
    assert.deepEqual(r.lines, [
      ['ok', 0],
      ['bad \ufffd\ufffd', 3],
      ['fine', 10],
    ]);
    assert.equal(r.invalid, 1);
  });

  it('drop: an overlong line is reported with its first KiB, offset and size; the next lines go on', () => {
    const long = 'x'.repeat(3000);
    const r = frame([`a\n${long}\nb\n`], { max: 2000 });
    assert.deepEqual(r.lines, [
      ['a', 0],
      ['b', 3003],
    ]);
    assert.deepEqual(r.overlong, [{ prefix: 'x'.repeat(OVERLONG_PREFIX_BYTES), offset: 2, bytes: 3000 }]);
    assert.equal(r.tooLong, 1);
  });

  it('drop: an overlong line spread over many chunks is skipped holding at most the limit', () => {
    const chunks = ['a\n', ...Array.from({ length: 50 }, () => 'y'.repeat(1000)), '\nb\n'];
    const r = frame(chunks, { max: 4096 });
    assert.deepEqual(r.lines, [
      ['a', 0],
      ['b', 50_003],
    ]);
    assert.equal(r.overlong.length, 1);
    assert.equal(r.overlong[0]!.bytes, 50_000);
    assert.equal(r.overlong[0]!.offset, 2);
  });

  it('split: an overlong line becomes pieces of at most the limit, never cutting a character', () => {
    const line = `${'a'.repeat(9)}€${'b'.repeat(5)}`; // 9 + 3 + 5 = 17 bytes; limit 10 must not cut the €
    const r = frame([`${line}\nz\n`], { max: 10, mode: 'split' });
    assert.deepEqual(r.lines, [
      ['a'.repeat(9), 0],
      [`€${'b'.repeat(5)}`, 9],
      ['z', 18],
    ]);
    assert.equal(r.tooLong, 1);
  });

  it('split: a 10 MiB line in 64 KiB chunks with a 1 MiB limit: ten pieces, the whole line, bounded memory', () => {
    const total = 10 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'q');
    const chunks: Buffer[] = [];
    for (let i = 0; i < total / chunk.length; i++) chunks.push(chunk);
    chunks.push(Buffer.from('\nafter\n'));
    const r = frame(chunks, { max: 1024 * 1024, mode: 'split' });
    const pieces = r.lines.slice(0, -1);
    assert.equal(pieces.length, 10);
    assert.ok(pieces.every(([p]) => p.length === 1024 * 1024));
    assert.deepEqual(
      pieces.map(([, o]) => o),
      Array.from({ length: 10 }, (_, i) => i * 1024 * 1024),
    );
    assert.deepEqual(r.lines.at(-1), ['after', total + 1]);
    assert.equal(r.tooLong, 1, 'one overlong line, counted once');
  });

  it('a 300 KiB chunk (decoded in slices): ASCII and UTF-8 lines, a line across slices, one longer than a slice', () => {
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++)
      lines.push(i % 7 === 0 ? `é ${i} ${'x'.repeat(i % 90)}` : `line ${i} ${'y'.repeat(i % 80)}`);
    lines.push('z'.repeat(100 * 1024)); // longer than a 64 KiB slice, shorter than the limit
    for (let i = 0; i < 500; i++) lines.push(`tail ${i}`);
    const input = Buffer.from(`${lines.join('\n')}\n`);
    assert.ok(input.length > 256 * 1024);
    const r = frame([input], { max: 200 * 1024 });
    assert.deepEqual(r.lines, reference(input, 200 * 1024, 'drop'));
    assert.equal(r.lines.length, lines.length);
  });

  it('skipToNextLine: reading from the end of a file that ends mid-line starts at the next line', () => {
    const framer = new LineFramer(
      { maxLineBytes: 100, overlong: 'drop', onOverlong: () => assert.fail('reported') },
      50,
    );
    framer.skipToNextLine();
    assert.equal(framer.safeOffset, 50);
    const out = newFramedLines();
    framer.push(Buffer.from('rest of line\nnext\n'), out);
    assert.deepEqual(out.lines, ['next']);
    assert.deepEqual(out.offsets, [63]);
  });

  it('any chunking gives the same lines and offsets as splitting the whole file (property)', () => {
    const piece = fc.oneof(
      fc.constantFrom('\n', '\r\n', '\r', 'a', 'é', '€', '💩', ' '),
      fc.string({ maxLength: 8 }),
      fc.constant(Buffer.from([0xff])),
      fc.constant(euro.subarray(0, 2)),
    );
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 4, max: 24 }),
        fc.constantFrom<OverlongMode>('drop', 'split'),
        (pieces, sizes, max, mode) => {
          const input = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < input.length; i++) {
            const n = sizes[i % sizes.length]!;
            chunks.push(input.subarray(at, at + n));
            at += n;
          }
          const r = frame(chunks, { max, mode });
          assert.deepEqual(r.lines, reference(input, max, mode));
          const lastNl = input.lastIndexOf(0x0a);
          assert.equal(r.framer.position, input.length);
          if (!r.framer.holding) assert.equal(r.framer.safeOffset, input.length);
          else assert.ok(r.framer.safeOffset >= lastNl + 1 || mode === 'split');
        },
      ),
      { numRuns: 500 },
    );
  });
});
