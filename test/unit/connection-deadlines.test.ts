import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConnectionDeadlines,
  type ExpiryReason,
  type TimedConnection,
} from '../../src/core/net/connection-deadlines.ts';
import { recordingSourceContext } from '../helpers/context.ts';

class FakeConnection implements TimedConnection {
  lastReadMs = 0;
  lastFrameMs = 0;
  partialSinceMs = -1;
  waiting = false;
  expired: ExpiryReason | undefined;
  constructor(
    readonly host: string,
    private readonly set: Set<FakeConnection>,
    private readonly onExpire?: () => void,
  ) {}
  expire(reason: ExpiryReason): void {
    this.expired = reason;
    this.set.delete(this);
    this.onExpire?.();
  }
}

function setup(options: { idleTimeoutMs?: number; readTimeoutMs?: number; evictIdleAfterMs?: number } = {}) {
  const rec = recordingSourceContext('d', '/nonexistent', 'socket');
  const set = new Set<FakeConnection>();
  const warned: string[] = [];
  const deadlines = new ConnectionDeadlines<FakeConnection>(
    set,
    {
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      readTimeoutMs: options.readTimeoutMs ?? 0,
      evictIdleAfterMs: options.evictIdleAfterMs ?? 0,
      label: 'test',
      warn: (kind) => warned.push(kind),
    },
    rec.ctx.metrics,
  );
  const add = (host: string, onExpire?: () => void) => {
    const c = new FakeConnection(host, set, onExpire);
    deadlines.opened(c);
    set.add(c);
    return c;
  };
  return { deadlines, set, add, warned };
}

describe('ConnectionDeadlines', () => {
  it('evicts the connection longest without a complete frame, never one waiting for the pipeline', () => {
    const { deadlines, add, warned } = setup();
    const a = add('a');
    const b = add('b');
    const c = add('c');
    a.lastFrameMs = 10;
    b.lastFrameMs = 5;
    b.waiting = true;
    c.lastFrameMs = 20;
    assert.equal(deadlines.evictForNew(), true);
    assert.equal(a.expired, 'evicted');
    assert.equal(b.expired, undefined, 'waiting: not evictable although older');
    assert.deepEqual(warned, ['evicted']);
  });

  it('refuses to evict a connection that completed a frame within evict_idle_after', () => {
    const { deadlines, add } = setup({ evictIdleAfterMs: 60_000 });
    const a = add('a');
    assert.equal(deadlines.evictForNew(), false);
    assert.equal(a.expired, undefined);
  });

  it('a frame completing clears the read deadline; bytes after it start a new one', () => {
    const { deadlines, add } = setup();
    const a = add('a');
    deadlines.received(a);
    assert.equal(a.partialSinceMs, deadlines.now);
    deadlines.framed(a);
    assert.equal(a.partialSinceMs, -1);
    deadlines.framed(a, true);
    assert.equal(a.partialSinceMs, deadlines.now);
  });

  it('the sweep closes an incomplete frame past read_timeout and refreshes waiting connections', async () => {
    const { deadlines, add } = setup({ readTimeoutMs: 40 });
    let done!: () => void;
    const expired = new Promise<void>((resolve) => {
      done = resolve;
    });
    const slow = add('slow', () => done());
    const held = add('held');
    deadlines.received(slow);
    deadlines.received(held);
    held.waiting = true;
    deadlines.start();
    const keepAlive = setInterval(() => {}, 1000); // the sweep timer is unref'd
    await expired;
    clearInterval(keepAlive);
    deadlines.stop();
    assert.equal(slow.expired, 'read_timeout');
    assert.equal(held.expired, undefined);
    assert.ok(held.partialSinceMs > slow.partialSinceMs, 'its clock restarted while it waited');
  });
});
