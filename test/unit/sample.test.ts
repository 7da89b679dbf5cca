import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashKey } from '../../src/codecs/parsers/key-hash.ts';
import type { Event } from '../../src/core/event.ts';
import { sampleTransform } from '../../src/transforms/sample.ts';
import { componentContext } from '../helpers/context.ts';

function sampler(options: Record<string, unknown>) {
  const t = sampleTransform.build(
    sampleTransform.options.parse(options),
    componentContext('s', '/x', 'transform', 'sample'),
  );
  return (events: Event[]) => {
    const kept: Event[] = [];
    t.process(events, { push: (e) => kept.push(...e), deadLetter: () => assert.fail('no dead letter') });
    return kept;
  };
}

const numbered = (n: number) => Array.from({ length: n }, (_, i) => ({ n: i, request_id: `req-${i % 500}` }) as Event);

describe('sample', () => {
  it('keeps exactly 1 in N by count, across batches', () => {
    const run = sampler({ rate: 10 });
    const kept = [...run(numbered(95)), ...run(numbered(105))];
    assert.equal(kept.length, 20);
    assert.deepEqual(
      kept.slice(0, 3).map((e) => e.n),
      [0, 10, 20],
    );
  });

  it('rate 1 keeps the batch as it is', () => {
    const batch = numbered(5);
    assert.deepEqual(sampler({ rate: 1 })(batch), batch);
  });

  it('by key: all events of one key are kept or dropped together, deterministically', () => {
    const run = sampler({ rate: 4, key_field: 'request_id' });
    const kept = run(numbered(5000));
    const keptKeys = new Set(kept.map((e) => e.request_id));
    for (const e of numbered(5000)) assert.equal(keptKeys.has(e.request_id), hashKey(e.request_id as string) % 4 === 0);
    // about a quarter of the 500 keys, each with all of its 10 events
    assert.ok(keptKeys.size > 90 && keptKeys.size < 160, `kept ${keptKeys.size} keys`);
    assert.equal(kept.length, keptKeys.size * 10);
    assert.deepEqual(
      sampler({ rate: 4, key_field: 'request_id' })(numbered(5000)),
      kept,
      'same decision in another instance',
    );
  });

  it('exclude keeps matching events always; rate_field records what each kept event stands for', () => {
    const run = sampler({ rate: 1000, exclude: 'n % 100 == 0', rate_field: 'sample_rate' });
    const kept = run(numbered(300));
    assert.deepEqual(
      kept.map((e) => [e.n, e.sample_rate]),
      [
        [0, 1],
        [100, 1],
        [200, 1],
        [1, 1000],
      ].sort((a, b) => a[0]! - b[0]!),
    );
  });

  it('the key hash spreads nearby keys evenly', () => {
    const buckets = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) buckets[hashKey(`req-${i}`) % 10]++;
    for (const b of buckets) assert.ok(b > 9_000 && b < 11_000, `bucket ${b}`);
  });
});
