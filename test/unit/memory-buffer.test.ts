import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBuffer } from '../../src/buffers/memory.ts';
import { Acknowledgement, type Batch, splitBatch } from '../../src/core/ack.ts';
import { BufferClosedError } from '../../src/core/sink/buffer.ts';
import { numbered } from '../helpers/components.ts';
import { componentContext } from '../helpers/context.ts';

function batch(n: number, statuses: string[] = []): Batch {
  return { events: numbered(0, n), ack: new Acknowledgement((s) => statuses.push(s)), bytes: n * 100 };
}

describe('MemoryBuffer', () => {
  it('accepts up to its limits at once and blocks beyond them', async () => {
    const buf = new MemoryBuffer({ maxEvents: 10, maxBytes: 1e9, whenFull: 'block' });
    assert.equal(buf.push(batch(6)), undefined);
    assert.equal(buf.push(batch(4)), undefined);
    let accepted = false;
    const p = buf.push(batch(1))!.then(() => {
      accepted = true;
    });
    assert.ok(p, 'a full buffer returns a promise');
    await new Promise((r) => setImmediate(r));
    assert.equal(accepted, false);
    const taken = (await buf.take(100))!;
    assert.equal(taken.length, 2);
    assert.equal(buf.events, 10, 'events being written still count');
    buf.done(taken);
    await p;
    assert.equal(accepted, true);
    assert.equal(buf.events, 1);
  });

  it('limits by bytes too', () => {
    const buf = new MemoryBuffer({ maxEvents: 1000, maxBytes: 500, whenFull: 'block' });
    assert.equal(buf.push(batch(5)), undefined);
    assert.ok(buf.push(batch(1)) instanceof Promise);
  });

  it('an oversized batch comes in as pieces within the limits: the first at once, the rest as room returns', async () => {
    const buf = new MemoryBuffer({ maxEvents: 10, maxBytes: 1e9, whenFull: 'block' });
    const statuses: string[] = [];
    const waiting = buf.push(batch(50, statuses));
    assert.ok(waiting instanceof Promise, 'the pieces that do not fit wait');
    assert.equal(buf.events, 10);
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      const taken = (await buf.take(1000))!;
      for (const b of taken) for (const e of b.events) seen.push(e.n as number);
      assert.ok(buf.events <= 10, `${buf.events} events held`);
      buf.done(taken);
      for (const b of taken) b.ack.release('delivered');
    }
    await waiting;
    assert.deepEqual(seen, [...Array(50).keys()]);
    assert.deepEqual(statuses, ['delivered']);
  });

  it('a 50,000-event batch into max_events 1,000: never more than the limit held, each event once, one ack', async () => {
    const buf = new MemoryBuffer({ maxEvents: 1000, maxBytes: 1e12, whenFull: 'block' });
    const statuses: string[] = [];
    const n = 50_000;
    let pushed = false;
    const waiting = buf.push(batch(n, statuses));
    void waiting?.then(() => {
      pushed = true;
    });
    let count = 0;
    let next = 0;
    let maxHeld = buf.events;
    while (count < n) {
      const taken = (await buf.take(300))!;
      maxHeld = Math.max(maxHeld, buf.events);
      for (const b of taken) {
        for (const e of b.events) assert.equal(e.n, next++, 'in order, once each');
        count += b.events.length;
      }
      assert.deepEqual(statuses, [], 'not settled before every piece is delivered');
      buf.done(taken);
      maxHeld = Math.max(maxHeld, buf.events);
      for (const b of taken) b.ack.release('delivered');
    }
    await waiting;
    assert.ok(pushed || waiting === undefined);
    assert.ok(maxHeld <= 1000, `held ${maxHeld} events at most`);
    assert.equal(buf.events, 0);
    assert.equal(buf.poll(10).length, 0, 'nothing comes out twice');
    assert.deepEqual(statuses, ['delivered']);
  });

  it('splitBatch: pieces within both limits, in order, one share each, settled once', () => {
    const statuses: string[] = [];
    // 10 events of 100 bytes at 170 bytes a piece: 10 pieces of one event (never 5 pieces of 200 bytes).
    const b = batch(10, statuses);
    const pieces = splitBatch(b, 1000, 170);
    assert.deepEqual(
      pieces.map((p) => [p.events.length, p.bytes]),
      Array.from({ length: 10 }, () => [1, 100]),
    );
    assert.equal(b.ack.pending, 10);
    for (const p of pieces.slice(0, 9)) p.ack.release('delivered');
    assert.deepEqual(statuses, []);
    pieces[9]!.ack.release('delivered');
    assert.deepEqual(statuses, ['delivered']);
    const uneven = splitBatch(batch(10), 4, 1e9);
    assert.deepEqual(
      uneven.map((p) => p.events.length),
      [4, 4, 2],
    );
    assert.equal(uneven[0]!.ack.pending, 3);
    const within = batch(10);
    assert.deepEqual(splitBatch(within, 10, 1000), [within]);
  });

  it('max_bytes bounds the pieces too', () => {
    const buf = new MemoryBuffer({ maxEvents: 1e6, maxBytes: 1000, whenFull: 'block' });
    // 100 events of 100 bytes: pieces of 10 events.
    buf.push(batch(100));
    assert.equal(buf.events, 10);
    assert.ok(buf.bytes <= 1000);
  });

  it('drop_newest acts per piece: what fits is kept, the other pieces dropped and counted, one ack', async () => {
    const ctx = componentContext('s', '/tmp');
    const statuses: string[] = [];
    const buf = new MemoryBuffer({ maxEvents: 1000, maxBytes: 1e12, whenFull: 'drop_newest' }, ctx.metrics);
    assert.equal(buf.push(batch(50_000, statuses)), undefined);
    assert.equal(buf.events, 1000);
    assert.deepEqual(statuses, [], 'the kept piece is not delivered yet');
    const text = await ctx.pipelineMetrics.registry.getSingleMetricAsString('fluxo_buffer_dropped_events_total');
    assert.match(text, /fluxo_buffer_dropped_events_total\{[^}]*component_id="s"[^}]*\} 49000/);
    const taken = buf.poll(1000);
    assert.deepEqual(
      taken.flatMap((b) => b.events.map((e) => e.n)),
      [...Array(1000).keys()],
    );
    buf.done(taken);
    for (const b of taken) b.ack.release('delivered');
    assert.deepEqual(statuses, ['delivered'], 'settles once: the kept piece delivered, the dropped ones settled');
  });

  it('close while pieces wait: their shares fail, the source is not acknowledged', async () => {
    const buf = new MemoryBuffer({ maxEvents: 10, maxBytes: 1e9, whenFull: 'block' });
    const statuses: string[] = [];
    const waiting = buf.push(batch(35, statuses))!;
    buf.close();
    await assert.rejects(waiting, BufferClosedError);
    const taken = (await buf.take(100))!;
    buf.done(taken);
    for (const b of taken) b.ack.release('delivered');
    assert.deepEqual(statuses, ['failed']);
  });

  it('drop_newest drops, counts and settles the share', async () => {
    const ctx = componentContext('s', '/tmp');
    const statuses: string[] = [];
    const buf = new MemoryBuffer({ maxEvents: 10, maxBytes: 1e9, whenFull: 'drop_newest' }, ctx.metrics);
    buf.push(batch(10));
    assert.equal(buf.push(batch(3, statuses)), undefined);
    assert.deepEqual(statuses, ['delivered']);
    const text = await ctx.pipelineMetrics.registry.getSingleMetricAsString('fluxo_buffer_dropped_events_total');
    assert.match(text, /fluxo_buffer_dropped_events_total\{[^}]*component_id="s"[^}]*\} 3/);
  });

  it('merges queued batches up to maxEvents per take', async () => {
    const buf = new MemoryBuffer({ maxEvents: 1000, maxBytes: 1e9, whenFull: 'block' });
    for (let i = 0; i < 5; i++) buf.push(batch(10));
    const first = (await buf.take(25))!;
    assert.equal(first.length, 2);
    const rest = (await buf.take(1000))!;
    assert.equal(rest.length, 3);
  });

  it('close rejects waiting pushes with their shares failed; take returns null when empty', async () => {
    const buf = new MemoryBuffer({ maxEvents: 1, maxBytes: 1e9, whenFull: 'block' });
    buf.push(batch(1));
    const statuses: string[] = [];
    const waiting = buf.push(batch(1, statuses))!;
    buf.close();
    await assert.rejects(waiting, BufferClosedError);
    assert.deepEqual(statuses, ['failed']);
    const taken = (await buf.take(10))!;
    assert.equal(taken.length, 1);
    buf.done(taken);
    assert.equal(await buf.take(10), null);
  });

  it('abort fails everything still queued', async () => {
    const buf = new MemoryBuffer({ maxEvents: 100, maxBytes: 1e9, whenFull: 'block' });
    const statuses: string[] = [];
    buf.push(batch(3, statuses));
    buf.push(batch(3, statuses));
    buf.abort();
    assert.deepEqual(statuses, ['failed', 'failed']);
    assert.equal(buf.events, 0);
    assert.equal(await buf.take(10), null);
  });
});
