import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Acknowledgement } from '../../src/core/ack.ts';
import { EventIdGenerator } from '../../src/core/event.ts';

describe('Acknowledgement', () => {
  it('fires once, when the last share is released', () => {
    const calls: string[] = [];
    const ack = new Acknowledgement((s) => calls.push(s));
    ack.retain(2);
    ack.release();
    ack.release();
    assert.deepEqual(calls, []);
    ack.release();
    assert.deepEqual(calls, ['delivered']);
    assert.equal(ack.settled, true);
  });

  it('reports failed when any share failed', () => {
    const calls: string[] = [];
    const ack = new Acknowledgement((s) => calls.push(s));
    ack.retain();
    ack.release('failed');
    ack.release('delivered');
    assert.deepEqual(calls, ['failed']);
  });

  it('refuses a double release instead of acknowledging early', () => {
    const ack = new Acknowledgement(undefined);
    ack.release();
    assert.throws(() => ack.release(), /released twice/);
    assert.throws(() => ack.retain(), /settled/);
  });
});

describe('EventIdGenerator', () => {
  it('makes unique, time-ordered UUIDv7 strings', () => {
    const ids = new EventIdGenerator();
    const seen = new Set<string>();
    let prev = '';
    for (let i = 0; i < 50_000; i++) {
      const id = ids.next(1_700_000_000_000 + Math.floor(i / 1000));
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.ok(!seen.has(id), `duplicate id ${id}`);
      seen.add(id);
      if (i % 1000 === 0) {
        assert.ok(id.slice(0, 13) >= prev.slice(0, 13), 'time prefix must not go backwards');
        prev = id;
      }
    }
  });
});
