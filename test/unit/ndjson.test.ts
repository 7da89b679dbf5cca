import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeLines, encodeLinesToBuffer } from '../../src/codecs/ndjson.ts';
import type { Event } from '../../src/core/event.ts';

describe('ndjson encoding', () => {
  it('encodeLinesToBuffer produces exactly the UTF-8 bytes of encodeLines, for any events', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            message: fc.oneof(
              fc.string(),
              fc.string({ unit: 'grapheme' }),
              fc.string({ unit: 'binary' }),
              fc.integer(),
            ),
            n: fc.integer(),
          }),
        ),
        fc.constantFrom('json' as const, 'text' as const),
        (events, encoding) => {
          const a: Event[] = [];
          const b: Event[] = [];
          assert.deepEqual(encodeLinesToBuffer(events, encoding, a), Buffer.from(encodeLines(events, encoding, b)));
          assert.equal(a.length, b.length);
        },
      ),
    );
  });

  it('grows past its scratch size and leaves out events that cannot be encoded', () => {
    const big = 'é'.repeat(700_000);
    const cyclic: Event = { message: 'x' };
    cyclic.self = cyclic;
    const rejected: Event[] = [];
    const out = encodeLinesToBuffer([{ message: big }, cyclic, { message: 'end' }], 'json', rejected);
    assert.deepEqual(rejected, [cyclic]);
    const lines = out.toString('utf8').split('\n');
    assert.equal(JSON.parse(lines[0]!).message, big);
    assert.equal(JSON.parse(lines[1]!).message, 'end');
    assert.equal(lines[2], '');
  });
});
