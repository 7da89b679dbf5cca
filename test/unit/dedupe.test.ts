import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { dedupeKey, dedupeTransform, SeenEvents } from '../../src/transforms/dedupe.ts';
import { componentContext } from '../helpers/context.ts';

function deduper(options: Record<string, unknown>) {
  const ctx = componentContext('d', '/x', 'transform', 'dedupe');
  const t = dedupeTransform.build(dedupeTransform.options.parse(options), ctx);
  const run = (events: Event[]) => {
    const kept: Event[][] = [];
    t.process(events, { push: (e) => kept.push(e), deadLetter: () => assert.fail('no dead letter') });
    assert.equal(kept.length, 1);
    return kept[0]!;
  };
  return { run, metrics: () => ctx.pipelineMetrics.registry.metrics() };
}

describe('dedupe', () => {
  it('drops events whose `_id` was seen (the default), within and across batches, counted', async () => {
    const { run, metrics } = deduper({});
    const batch = [{ _id: 'a', n: 1 }, { _id: 'b' }, { _id: 'a', n: 2 }];
    assert.deepEqual(run(batch), [batch[0], batch[1]]);
    assert.deepEqual(run([{ _id: 'b' }, { _id: 'c' }]), [{ _id: 'c' }]);
    assert.match(await metrics(), /fluxo_dedupe_duplicates_total\{[^}]*\} 2/);
  });

  it('returns the batch itself when nothing is a duplicate', () => {
    const batch = [{ _id: 'x' }, { _id: 'y' }];
    assert.equal(deduper({}).run(batch), batch);
  });

  it('compares listed fields, nested ones too; missing differs from null; types matter', () => {
    const { run } = deduper({ fields: ['host', 'req.id'] });
    const kept = run([
      { host: 'a', req: { id: 1 } },
      { host: 'a', req: { id: 1 }, other: 'ignored' },
      { host: 'a', req: { id: '1' } },
      { host: 'a' },
      { host: 'a', req: { id: null } },
      { host: 'a', req: null }, // req.id is missing here too: a duplicate of { host: 'a' }
    ]);
    assert.equal(kept.length, 4);
    assert.notEqual(dedupeKey({ a: undefined }, [['a']], undefined), dedupeKey({ a: null }, [['a']], undefined));
  });

  it('ignore_fields compares everything else, whatever the key order', () => {
    const { run } = deduper({ ignore_fields: ['_id', 'timestamp'] });
    const kept = run([
      { _id: 1, timestamp: 't1', message: 'm', host: 'h' },
      { host: 'h', message: 'm', _id: 2, timestamp: 't2' },
      { _id: 3, message: 'm', host: 'other' },
    ]);
    assert.deepEqual(
      kept.map((e) => e._id),
      [1, 3],
    );
  });

  it('the window is a bounded LRU with an optional time to live', () => {
    const seen = new SeenEvents(2, 1000);
    assert.equal(seen.check('a', 0), false);
    assert.equal(seen.check('b', 0), false);
    assert.equal(seen.check('a', 10), true, 'a is now the most recent');
    assert.equal(seen.check('c', 20), false, 'c evicts b, the least recently seen');
    assert.equal(seen.size, 2);
    assert.equal(seen.check('b', 30), false, 'b was forgotten');
    assert.equal(seen.check('b', 1029), true, 'within the ttl of its last sighting');
    assert.equal(seen.check('b', 2100), false, 'past the ttl');
    const { run } = deduper({ cache: { max_events: 3 } });
    run([{ _id: 1 }, { _id: 2 }, { _id: 3 }, { _id: 4 }]);
    assert.deepEqual(run([{ _id: 1 }, { _id: 4 }]), [{ _id: 1 }]);
  });
});
