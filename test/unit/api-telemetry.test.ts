import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PipelineTelemetry } from '../../src/api/telemetry.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';

/** A pipeline src → t (route with output `errors`) → k (sink), read through real metrics. */
function pipeline() {
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  const src = metrics.forComponent('src', 'source', 'generator');
  const t = metrics.forComponent('t', 'transform', 'route');
  const k = metrics.forComponent('k', 'sink', 'http');
  const acked = src.counter('fluxo_source_acknowledged_events_total', 'acked');
  k.bufferMaxEvents.set(1000);
  let now = 1_000_000;
  let oldest: number | undefined;
  const telemetry = new PipelineTelemetry(
    {
      registry: metrics.registry,
      graph: () => [
        { id: 'src', kind: 'source', type: 'generator', inputs: [] },
        { id: 't', kind: 'transform', type: 'route', inputs: ['src'] },
        {
          id: 'k',
          kind: 'sink',
          type: 'http',
          inputs: ['t.errors'],
          buffer: { type: 'memory', max_events: 1000, max_bytes: 1 << 20, when_full: 'block' },
        },
      ],
      oldestUnsettled: () => new Map(oldest === undefined ? [] : [['src', oldest]]),
      state: () => 'running',
    },
    { clock: () => now },
  );
  const advance = (ms: number) => {
    now += ms;
  };
  return { telemetry, src, t, k, acked, advance, at: () => now, setOldest: (v: number | undefined) => (oldest = v) };
}

describe('PipelineTelemetry snapshots', () => {
  it('rates, buffer fill, latency, edges and the loss ledger, from the metrics registry', async () => {
    const p = pipeline();
    await p.telemetry.sample();
    p.advance(2000);
    p.src.receivedEvents.inc(400);
    p.src.sentEvents.inc(400);
    p.t.receivedEvents.inc(400);
    p.t.sentEventsFor('errors').inc(100);
    p.t.discarded('filtered', 300);
    p.k.receivedEvents.inc(100);
    p.k.sentEvents.inc(60);
    p.k.bufferEvents.set(250);
    p.k.bufferBytes.set(1000);
    p.k.error('timeout', 3);
    p.k.retries.inc(3);
    p.k.deadLettered.inc(10);
    for (let i = 0; i < 60; i++) p.k.latency.observe(0.02);
    p.acked.inc(350);
    p.setOldest(p.at() - 1500);
    const s = await p.telemetry.sample();

    assert.equal(s.state, 'running');
    assert.equal(s.at, p.at());
    const by = new Map(s.components.map((c) => [c.id, c]));
    assert.deepEqual([...by.keys()], ['src', 't', 'k', 'dead_letter']);
    const src = by.get('src')!;
    assert.equal(src.out_per_s, 200);
    assert.equal(src.oldest_unacked_ms, 1500);
    const k = by.get('k')!;
    assert.equal(k.in_per_s, 50);
    assert.equal(k.out_per_s, 30);
    assert.equal(k.errors_total, 3);
    assert.deepEqual(k.error_types, { timeout: 3 });
    assert.equal(k.retries_total, 3);
    assert.deepEqual(k.buffer, {
      type: 'memory',
      when_full: 'block',
      events: 250,
      bytes: 1000,
      max_events: 1000,
      max_bytes: 1 << 20,
      fill: 0.25,
      dropped_total: 0,
    });
    assert.ok(k.latency_p50_ms! > 10 && k.latency_p50_ms! <= 25, `p50 ${k.latency_p50_ms} in the 10–25 ms bucket`);
    assert.equal(k.stalled, false);
    assert.equal(by.get('dead_letter')!.received_total, 10);

    assert.deepEqual(
      s.edges.map((e) => [e.from, e.to, e.output, e.per_s]),
      [
        ['src', 't', '', 200],
        ['t', 'k', 'errors', 50],
        ['k', 'dead_letter', 'dead_letter', 5],
      ],
    );
    assert.deepEqual(s.ledger, [
      {
        source: 'src',
        accepted: 400,
        acknowledged: 350,
        in_flight: 50,
        not_acknowledged: 0,
        dead_lettered: 10,
        dropped: 0,
        drops: { buffer_full: 0, throttled: 0, udp_backlog: 0, udp_kernel: 0, partial: 0 },
        shared: false,
      },
    ]);
    // The SSE payload is this object as JSON: it survives the round trip unchanged.
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  });

  it('splits the ledger’s drops by cause: buffer full, throttle (unless rerouted and read), UDP backlog, partial lines', async () => {
    const metrics = new PipelineMetrics({ defaultMetrics: false });
    const udp = metrics.forComponent('udp', 'source', 'socket');
    const tcp = metrics.forComponent('tcp', 'source', 'socket');
    const calm = metrics.forComponent('calm', 'transform', 'throttle');
    const kept = metrics.forComponent('kept', 'transform', 'throttle');
    const k = metrics.forComponent('k', 'sink', 'http');
    const telemetry = new PipelineTelemetry({
      registry: metrics.registry,
      graph: () => [
        // Not a UDP endpoint on this machine: the kernel column stays 0 whatever /proc says.
        { id: 'udp', kind: 'source', type: 'socket', inputs: [] },
        { id: 'tcp', kind: 'source', type: 'socket', inputs: [] },
        { id: 'calm', kind: 'transform', type: 'throttle', inputs: ['udp'] },
        { id: 'kept', kind: 'transform', type: 'throttle', inputs: ['tcp'] },
        {
          id: 'k',
          kind: 'sink',
          type: 'http',
          inputs: ['calm'],
          buffer: { type: 'memory', max_events: 10, when_full: 'drop_newest' },
        },
        { id: 'side', kind: 'sink', type: 'blackhole', inputs: ['kept', 'kept.dropped'] },
      ],
      oldestUnsettled: () => new Map(),
      state: () => 'running',
    });
    k.bufferDropped.inc(7);
    calm.counter('fluxo_throttled_events_total', 'throttled').inc(5);
    kept.counter('fluxo_throttled_events_total', 'throttled').inc(11);
    udp.counter('fluxo_socket_udp_datagrams_dropped_total', 'udp').inc(3);
    tcp.counter('fluxo_socket_partial_lines_dropped_total', 'partial').inc(2);
    const s = await telemetry.sample();
    const row = (id: string) => s.ledger.find((l) => l.source === id)!;
    assert.deepEqual(row('udp').drops, { buffer_full: 7, throttled: 5, udp_backlog: 3, udp_kernel: 0, partial: 0 });
    assert.equal(row('udp').dropped, 15);
    // kept's over-budget events went to kept.dropped, which a sink reads: not lost.
    assert.deepEqual(row('tcp').drops, { buffer_full: 0, throttled: 0, udp_backlog: 0, udp_kernel: 0, partial: 2 });
    assert.equal(row('tcp').dropped, 2);
  });

  it('marks a sink stalled once it has held events without delivering any for 3 s, and clears it on delivery', async () => {
    const p = pipeline();
    p.k.bufferEvents.set(10);
    await p.telemetry.sample();
    for (let i = 0; i < 2; i++) {
      p.advance(1000);
      assert.equal((await p.telemetry.sample()).components.find((c) => c.id === 'k')!.stalled, false);
    }
    p.advance(1000);
    p.advance(1000);
    assert.equal((await p.telemetry.sample()).components.find((c) => c.id === 'k')!.stalled, true);
    p.advance(1000);
    p.k.sentEvents.inc(5);
    assert.equal((await p.telemetry.sample()).components.find((c) => c.id === 'k')!.stalled, false);
  });

  it('keeps every sample in the history ring and hands each to subscribers once, as JSON', async () => {
    const p = pipeline();
    const seen: string[] = [];
    const remove = p.telemetry.subscribe((_s, json) => seen.push(json));
    await p.telemetry.sample();
    p.advance(1000);
    await p.telemetry.sample();
    remove();
    p.advance(1000);
    await p.telemetry.sample();
    assert.equal(seen.length, 2);
    assert.equal((JSON.parse(seen[1]!) as { at: number }).at, 1_001_000);
    assert.equal(p.telemetry.history.size, 3);
  });
});
