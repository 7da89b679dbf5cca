import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBuffer } from '../../src/buffers/memory.ts';
import { Acknowledgement, type Batch } from '../../src/core/ack.ts';
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

  it('lets an oversized batch in alone rather than blocking forever', () => {
    const buf = new MemoryBuffer({ maxEvents: 10, maxBytes: 1e9, whenFull: 'block' });
    assert.equal(buf.push(batch(50)), undefined);
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
