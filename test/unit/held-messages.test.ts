import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeldMessages } from '../../src/core/held-messages.ts';
import { settledWithin } from '../../src/core/retry.ts';

describe('HeldMessages', () => {
  it('counts messages, not items, when told: a batch of offset ranges holds the messages it spans', () => {
    const held = new HeldMessages<string>(100);
    const a = held.hold(['p0:0-40', 'p1:0-20'], 60);
    const b = held.hold(['x', 'y']);
    assert.equal(held.count, 62);
    assert.equal(held.room(), 38);
    assert.equal(held.settle(a), true);
    assert.equal(held.settle(a), false, 'a batch settles once');
    held.release(a);
    assert.equal(held.count, 2);
    held.release(b);
    assert.equal(held.count, 0);
  });

  it('waitForRoom waits while full and resolves on a release; nextRelease resolves on a release or its time', async () => {
    const held = new HeldMessages<number>(2);
    const batch = held.hold([1, 2]);
    let roomy = false;
    const waiting = held.waitForRoom(new AbortController().signal).then(() => (roomy = true));
    const next = held.nextRelease(60_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(roomy, false, 'full: no room yet');
    held.release(batch);
    await waiting;
    await next;
    assert.equal(roomy, true);
    const started = process.hrtime.bigint();
    // nextRelease's own timer does not hold the process open (a source's sockets do): this one does.
    const keepAlive = setTimeout(() => {}, 1_000);
    await held.nextRelease(20);
    clearTimeout(keepAlive);
    assert.ok(process.hrtime.bigint() - started >= 15_000_000n, 'without a release it waits for its time');
  });
});

describe('HeldMessages.closeWhenReleased', () => {
  it('closes at stop when nothing is held, else once the last held message is released, once', async () => {
    let closes = 0;
    const idle = new HeldMessages<string>(10);
    await idle.closeWhenReleased(async () => {
      closes++;
    });
    assert.equal(closes, 1);

    closes = 0;
    const busy = new HeldMessages<string>(10);
    const early = busy.hold(['a']);
    busy.release(early);
    assert.equal(closes, 0, 'not stopping: a release does not close');
    const a = busy.hold(['a', 'b']);
    const b = busy.hold(['c']);
    await busy.closeWhenReleased(async () => {
      closes++;
    });
    assert.equal(closes, 0, 'held messages still need the connection');
    busy.release(a);
    assert.equal(closes, 0);
    busy.release(b);
    assert.equal(closes, 1);
    busy.release(busy.hold(['d']));
    assert.equal(closes, 1, 'closed once');
  });

  it('closes after its grace period when held messages never settle', async () => {
    let closed = false;
    const held = new HeldMessages<string>(10);
    held.hold(['a', 'b']);
    await held.closeWhenReleased(async () => {
      closed = true;
    }, 20);
    assert.equal(closed, false);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(closed, true);
  });
});

describe('HeldMessages.emit', () => {
  it("settles the batch with the pipeline's status, and as failed when a stopping pipeline rejects the emit", async () => {
    const held = new HeldMessages<string>(10);
    const settled: string[] = [];
    const logger = { debug: () => {} };
    const accepting = {
      id: 'src',
      logger,
      emit: async (_events: unknown[], options: { onSettled: (s: 'delivered' | 'failed') => void }) =>
        options.onSettled('delivered'),
    };
    const stopping = { id: 'src', logger, emit: async () => Promise.reject(new Error('pipeline stopping')) };
    const settle = (batch: { items: readonly string[] }, status: string) => settled.push(`${batch.items}:${status}`);
    await held.emit(accepting as never, [{}], 10, held.hold(['a']), settle);
    await held.emit(stopping as never, [{}], 10, held.hold(['b']), settle);
    assert.deepEqual(settled, ['a:delivered', 'b:failed']);
  });
});

describe('settledWithin', () => {
  it('true when the work fulfils in time, false when it rejects or outlasts the time', async () => {
    assert.equal(await settledWithin(Promise.resolve(1), 1_000), true);
    assert.equal(await settledWithin(Promise.reject(new Error('refused')), 1_000), false);
    assert.equal(await settledWithin(new Promise(() => {}), 20), false);
  });
});
