import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { SenderFactory } from '../../src/cli/simulate/sender.ts';
import { forwardSender } from '../../src/cli/simulate/senders/forward.ts';
import { otlpSender } from '../../src/cli/simulate/senders/otlp.ts';
import { SimulationCounters } from '../../src/cli/simulate/stats.ts';
import { forwardSource } from '../../src/sources/forward.ts';
import { otlpSource } from '../../src/sources/otlp.ts';
import { eventually, portOf, settlingContext } from './fixtures/forward-helpers.ts';

/** Plays `servers` web servers writing `perServer` numbered lines each, through a sender, then closes them. */
async function play(factory: SenderFactory, port: number, servers: number, perServer: number) {
  const counters = new SimulationCounters();
  const sender = factory({ host: '127.0.0.1', port, servers, flushIntervalMs: 20, runId: 'r1' }, counters);
  const sims = await Promise.all(Array.from({ length: servers }, (_, i) => sender.connect(i, `web-${i + 1}`)));
  let seq = 0;
  for (let round = 0; round < perServer / 10; round++) {
    for (const sim of sims) {
      const lines = Array.from({ length: 10 }, () => `GET /?run=r1&seq=${++seq} HTTP/1.1`);
      sim.send({ lines, at: Date.now() });
    }
    await new Promise((r) => setImmediate(r));
  }
  counters.generated = seq;
  await Promise.all(sims.map((s) => s.close(Date.now() + 20_000)));
  return { counters, sender, total: seq };
}

function sequences(events: Record<string, unknown>[]): number[] {
  return events.map((e) => Number(/seq=(\d+)/.exec(String(e.message))![1])).sort((a, b) => a - b);
}

async function startForward(t: TestContext, mode: 'auto' | 'manual' = 'auto') {
  const rec = settlingContext('fwd', mode);
  const source = forwardSource.build(forwardSource.options.parse({ address: '127.0.0.1:0' }), rec.ctx);
  await source.start();
  t.after(async () => {
    rec.settle('failed');
    await source.stop();
  });
  return { rec, port: portOf(source.endpoint!()!) };
}

describe('fluxo simulate senders: forward and otlp', { timeout: 60_000 }, () => {
  it('forward: every line arrives once, acknowledged, with the server name as host', async (t) => {
    const { rec, port } = await startForward(t);
    const { counters, sender, total } = await play(forwardSender, port, 5, 200);
    assert.equal(sender.acknowledgement, 'forward ack');
    assert.equal(counters.sentLines, total);
    assert.equal(counters.acknowledgedLines, total);
    assert.equal(counters.errors, 0);
    const events = rec.events();
    assert.deepEqual(
      sequences(events),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.deepEqual(new Set(events.map((e) => e.host)), new Set(['web-1', 'web-2', 'web-3', 'web-4', 'web-5']));
    assert.equal(events[0]!.tag, 'web.access');
  });

  it('forward: a chunk not acknowledged is resent with the same id after the connection drops', async (t) => {
    const { rec, port } = await startForward(t, 'manual');
    const counters = new SimulationCounters();
    const sender = forwardSender({ host: '127.0.0.1', port, servers: 1, flushIntervalMs: 10, runId: 'r' }, counters);
    const sim = await sender.connect(0, 'web-1');
    sim.send({ lines: ['GET /?run=r&seq=1 HTTP/1.1'], at: Date.now() });
    await rec.waitForEvents(1);
    await eventually(() => rec.unsettled === 1, 'waiting for settlement');
    rec.settle('failed'); // the source closes the connection without an ack
    await rec.waitForEvents(2);
    await eventually(() => rec.unsettled === 1, 'the resent chunk waits');
    rec.settle('delivered');
    await sim.close(Date.now() + 10_000);
    const [first, second] = rec.events();
    assert.equal(first!._id, second!._id, 'the same chunk id, so the same event id');
    assert.equal(counters.acknowledgedLines, 1);
    assert.ok(counters.errorReasons.size > 0);
  });

  it('otlp: every line arrives once, acknowledged, with host.name as host', async (t) => {
    const rec = settlingContext('otel');
    const source = otlpSource.build(otlpSource.options.parse({ address: '127.0.0.1:0' }), rec.ctx);
    await source.start();
    t.after(() => source.stop());
    const port = portOf(source.endpoint!()!.replace('/v1/logs', ''));
    const { counters, sender, total } = await play(otlpSender, port, 4, 100);
    assert.equal(sender.acknowledgement, 'OTLP 200 response');
    assert.equal(counters.acknowledgedLines, total);
    assert.equal(counters.errors, 0);
    const events = rec.events();
    assert.deepEqual(
      sequences(events),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.deepEqual(new Set(events.map((e) => e.host)), new Set(['web-1', 'web-2', 'web-3', 'web-4']));
    assert.equal(events[0]!.severity_text, 'INFO');
  });
});
