import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Event } from '../../src/core/event.ts';
import { type EncodingCodec, encodeEvents } from '../../src/core/sink/encoding.ts';

/** The obvious encoding, a string rope of one line per event: what the kit's buffer writer must equal. */
function encodeLines(events: readonly Event[], encoding: 'json' | 'text', rejected: Event[]): string {
  let out = '';
  for (const event of events) {
    try {
      const m = event.message;
      out += `${encoding === 'json' ? JSON.stringify(event) : typeof m === 'string' ? m : m == null ? '' : JSON.stringify(m)}\n`;
    } catch {
      rejected.push(event);
    }
  }
  return out;
}

/** The kit's encoder, in the shape of the old codecs/ndjson.ts encodeLinesToBuffer. */
function encodeLinesToBuffer(events: readonly Event[], encoding: 'json' | 'text', rejected: Event[]): Buffer {
  const codec: EncodingCodec = encoding === 'json' ? 'ndjson' : 'text';
  const indices: number[] = [];
  const lines = encodeEvents(events, { codec }, indices);
  for (const i of indices) rejected.push(events[i]!);
  return lines.bytes;
}

describe("ndjson encoding (the sink kit's line encoder)", () => {
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
