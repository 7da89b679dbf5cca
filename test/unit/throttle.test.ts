import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { DROPPED_OUTPUT, TokenBuckets, throttleTransform } from '../../src/transforms/throttle.ts';
import { componentContext } from '../helpers/context.ts';

function throttler(options: Record<string, unknown>) {
  const ctx = componentContext('t', '/x', 'transform', 'throttle');
  const parsed = throttleTransform.options.parse(options);
  const t = throttleTransform.build(parsed, ctx);
  const run = (events: Event[]) => {
    const outputs = new Map<string, Event[]>();
    t.process(events, {
      push: (e, o = '') => outputs.set(o, [...(outputs.get(o) ?? []), ...e]),
      deadLetter: () => assert.fail('no dead letter'),
    });
    return outputs;
  };
  return {
    run,
    transform: t,
    declared: throttleTransform.outputs!(parsed),
    metrics: () => ctx.pipelineMetrics.registry.metrics(),
  };
}

const burst = (n: number, host = 'h') => Array.from({ length: n }, (_, i) => ({ host, n: i }) as Event);

describe('throttle', () => {
  it('token bucket: a burst up to the threshold, then the refill rate', () => {
    const b = new TokenBuckets(10, 1000, 100);
    let passed = 0;
    for (let i = 0; i < 25; i++) if (b.allow('k', 0)) passed++;
    assert.equal(passed, 10);
    assert.equal(b.allow('k', 50), false, 'half a token after 50 ms');
    assert.equal(b.allow('k', 100), true, 'one token after 100 ms');
    assert.equal(b.allow('k', 150), false);
    let later = 0;
    for (let i = 0; i < 25; i++) if (b.allow('k', 60_000)) later++;
    assert.equal(later, 10, 'refill never exceeds the threshold');
  });

  it('keys have separate budgets; the key map is a bounded LRU', () => {
    const b = new TokenBuckets(1, 1000, 2);
    assert.equal(b.allow('a', 0), true);
    assert.equal(b.allow('b', 0), true);
    assert.equal(b.allow('a', 0), false);
    assert.equal(b.allow('c', 0), true, 'c evicts b');
    assert.equal(b.size, 2);
    assert.equal(b.allow('b', 0), true, 'b starts over with a full bucket');
  });

  it('drops what exceeds the threshold per key within one batch, counted', async () => {
    const { run, declared, transform, metrics } = throttler({ threshold: 3, window: '1m', key_field: 'host' });
    assert.deepEqual(declared, []);
    assert.equal(transform.outputs, undefined);
    const out = run([...burst(5, 'a'), ...burst(2, 'b')]);
    assert.deepEqual([...out.keys()], ['']);
    assert.deepEqual(
      out.get('')!.map((e) => `${e.host}${e.n}`),
      ['a0', 'a1', 'a2', 'b0', 'b1'],
    );
    assert.match(await metrics(), /fluxo_throttled_events_total\{[^}]*\} 2/);
  });

  it('reroute_dropped sends throttled events to <id>.dropped; exclude is never throttled', () => {
    const { run, declared, transform } = throttler({
      threshold: 1,
      window: '1h',
      reroute_dropped: true,
      exclude: 'n == 3',
    });
    assert.deepEqual(declared, [DROPPED_OUTPUT]);
    assert.deepEqual(transform.outputs, [DROPPED_OUTPUT]);
    const out = run(burst(4));
    assert.deepEqual(
      out.get('')!.map((e) => e.n),
      [0, 3],
    );
    assert.deepEqual(
      out.get(DROPPED_OUTPUT)!.map((e) => e.n),
      [1, 2],
    );
  });

  it('passes the batch itself when nothing is throttled', () => {
    const t = throttleTransform.build(
      throttleTransform.options.parse({ threshold: 10 }),
      componentContext('t', '/x', 'transform'),
    );
    const batch = burst(3);
    const pushed: Event[][] = [];
    t.process(batch, { push: (e) => pushed.push(e), deadLetter: () => assert.fail('no dead letter') });
    assert.equal(pushed[0], batch);
  });
});
