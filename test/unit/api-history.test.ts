import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricsHistory } from '../../src/api/history.ts';
import type { ComponentSnapshot, PipelineSnapshot } from '../../src/api/snapshot.ts';
import { quantileMs } from '../../src/api/snapshot.ts';

function component(id: string, inPerS: number, fill?: number): ComponentSnapshot {
  return {
    id,
    kind: fill === undefined ? 'source' : 'sink',
    type: 'x',
    in_per_s: inPerS,
    out_per_s: inPerS,
    received_total: 0,
    sent_total: 0,
    errors_total: 0,
    errors_per_s: 0,
    error_types: {},
    retries_total: 0,
    dead_lettered_total: 0,
    discarded_total: 0,
    ...(fill === undefined
      ? {}
      : {
          buffer: {
            type: 'memory',
            when_full: 'block',
            events: 0,
            bytes: 0,
            max_events: 10,
            max_bytes: null,
            fill,
            dropped_total: 0,
          },
          latency_p50_ms: 1,
          latency_p99_ms: 2,
        }),
  };
}

const snapshot = (at: number, components: ComponentSnapshot[]): PipelineSnapshot => ({
  at,
  interval_ms: 1000,
  state: 'running',
  components,
  edges: [],
  ledger: [],
});

describe('MetricsHistory', () => {
  it('keeps the last `capacity` samples, oldest first, however many were pushed', () => {
    const h = new MetricsHistory(5);
    for (let i = 1; i <= 12; i++) h.push(snapshot(i, [component('a', i)]));
    assert.equal(h.size, 5);
    const d = h.dump();
    assert.deepEqual(d.at, [8, 9, 10, 11, 12]);
    assert.deepEqual(d.series.a!.in_per_s, [8, 9, 10, 11, 12]);
    assert.deepEqual(d.series.a!.fill, [null, null, null, null, null], 'a source has no buffer');
  });

  it('aligns a component that came or went (reload) with nulls', () => {
    const h = new MetricsHistory(10);
    h.push(snapshot(1, [component('a', 1)]));
    h.push(snapshot(2, [component('a', 2), component('s', 5, 0.5)]));
    h.push(snapshot(3, [component('s', 6, 0.75)]));
    const d = h.dump();
    assert.deepEqual(d.at, [1, 2, 3]);
    assert.deepEqual(d.series.a!.in_per_s, [1, 2, null]);
    assert.deepEqual(d.series.s!.fill, [null, 0.5, 0.75]);
    assert.deepEqual(d.series.s!.latency_p99_ms, [null, 2, 2]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    assert.throws(() => new MetricsHistory(0), RangeError);
    assert.throws(() => new MetricsHistory(1.5), RangeError);
  });
});

describe('quantileMs', () => {
  const bounds = [0.001, 0.01, 0.1, Number.POSITIVE_INFINITY];
  it('interpolates inside the bucket like histogram_quantile', () => {
    // 10 in (0, 1 ms], 10 in (1, 10 ms]: the median is the top of the first bucket, p75 half-way through the second.
    assert.equal(quantileMs(bounds, [10, 20, 20, 20], 0.5), 1);
    assert.equal(quantileMs(bounds, [10, 20, 20, 20], 0.75), 5.5);
  });
  it('answers the last finite bound past it, and null without samples', () => {
    assert.equal(quantileMs(bounds, [0, 0, 0, 5], 0.99), 100);
    assert.equal(quantileMs(bounds, [0, 0, 0, 0], 0.5), null);
  });
});
