import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AckStatus } from '../../src/core/ack.ts';
import { type BatchedOutcome, emitInBatches, PendingEmits } from '../../src/core/batched-emit.ts';
import type { EmitOptions } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';

/** A pipeline stand-in that takes each emit when the test says so, and settles it when the test says so. */
function fakePipeline() {
  const taken: { events: Event[]; options: EmitOptions; take: () => void; refuse: (e: Error) => void }[] = [];
  let stopping = false;
  return {
    taken,
    stop: () => {
      stopping = true;
    },
    target: {
      emit(events: Event[], options?: EmitOptions) {
        return new Promise<void>((take, refuse) => {
          taken.push({ events, options: options ?? {}, take, refuse });
        });
      },
      stopping: () => stopping,
    },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const events = (n: number): Event[] => Array.from({ length: n }, (_, i) => ({ message: `e${i}` }));

describe('emitInBatches', () => {
  it('emits one batch at a time, in order, and answers delivered once every batch settled', async () => {
    const p = fakePipeline();
    const pending = new PendingEmits();
    const outcomes: BatchedOutcome[] = [];
    emitInBatches(p.target, pending, events(25), { wireBytes: 2500, maxEvents: 10 }, (o) => outcomes.push(o));
    assert.equal(p.taken.length, 1, 'the second batch waits until the first was taken');
    p.taken[0]!.take();
    await tick();
    p.taken[1]!.take();
    await tick();
    p.taken[2]!.take();
    await tick();
    assert.deepEqual(
      p.taken.map((t) => t.events.map((e) => e.message)[0]),
      ['e0', 'e10', 'e20'],
    );
    assert.deepEqual(
      p.taken.map((t) => t.events.length),
      [10, 10, 5],
    );
    assert.deepEqual(
      p.taken.map((t) => t.options.bytes),
      [1000, 1000, 500],
    );
    assert.deepEqual(outcomes, [], 'nothing settled yet');
    for (const t of p.taken) t.options.onSettled?.('delivered' as AckStatus);
    assert.deepEqual(outcomes, ['delivered']);
  });

  it('keeps the request pending between two of its batches, so stop() cannot slip in between', async () => {
    const p = fakePipeline();
    const pending = new PendingEmits();
    emitInBatches(p.target, pending, events(20), { wireBytes: 0, maxEvents: 10 }, () => {});
    let idle = false;
    void pending.idle().then(() => {
      idle = true;
    });
    p.taken[0]!.take();
    await tick();
    await tick();
    assert.equal(idle, false, 'the second batch was registered before the first was marked taken');
    assert.equal(pending.size, 1);
    p.taken[1]!.take();
    await tick();
    assert.equal(idle, true);
    assert.equal(pending.oldestWaitMs(), 0);
  });

  it('answers failed when a batch failed in a sink', async () => {
    const p = fakePipeline();
    const outcomes: BatchedOutcome[] = [];
    emitInBatches(p.target, new PendingEmits(), events(15), { wireBytes: 0, maxEvents: 10 }, (o) => outcomes.push(o));
    p.taken[0]!.take();
    await tick();
    p.taken[1]!.take();
    await tick();
    p.taken[0]!.options.onSettled?.('failed');
    p.taken[1]!.options.onSettled?.('delivered');
    assert.deepEqual(outcomes, ['failed']);
  });

  it('emits nothing more once the source stops, and answers not_emitted after the emitted batches settled', async () => {
    const p = fakePipeline();
    const outcomes: BatchedOutcome[] = [];
    emitInBatches(p.target, new PendingEmits(), events(30), { wireBytes: 0, maxEvents: 10 }, (o) => outcomes.push(o));
    p.stop();
    p.taken[0]!.take();
    await tick();
    assert.equal(p.taken.length, 1, 'no batch is emitted after stop');
    assert.deepEqual(outcomes, [], 'the emitted batch has not settled yet');
    p.taken[0]!.options.onSettled?.('delivered');
    assert.deepEqual(outcomes, ['not_emitted']);
  });

  it('a refused batch (the pipeline stopping) ends the request as not_emitted, and the pending count drops', async () => {
    const p = fakePipeline();
    const pending = new PendingEmits();
    const outcomes: BatchedOutcome[] = [];
    emitInBatches(p.target, pending, events(20), { wireBytes: 0, maxEvents: 10 }, (o) => outcomes.push(o));
    p.taken[0]!.take();
    await tick();
    p.taken[1]!.refuse(new Error('stopping'));
    await tick();
    assert.equal(pending.size, 0);
    assert.deepEqual(outcomes, []);
    p.taken[0]!.options.onSettled?.('delivered');
    assert.deepEqual(outcomes, ['not_emitted']);
  });

  it('an empty request is delivered at once without an emit', () => {
    const p = fakePipeline();
    const outcomes: BatchedOutcome[] = [];
    emitInBatches(p.target, new PendingEmits(), [], { wireBytes: 0, maxEvents: 10 }, (o) => outcomes.push(o));
    assert.deepEqual(outcomes, ['delivered']);
    assert.equal(p.taken.length, 0);
  });
});
