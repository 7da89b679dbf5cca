import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { redisSource } from '../../src/sources/redis.ts';
import { tempDir } from '../helpers/context.ts';
import { checkSequence } from '../helpers/fluxo-process.ts';
import { sourceIntoControlledSinks, until } from '../helpers/pipeline.ts';
import { type RedisServer, startRedis } from '../helpers/servers/redis.ts';

async function server(t: TestContext, appendonly = false): Promise<RedisServer> {
  const s = await startRedis(t, { appendonly });
  if (!s) throw new Error('unreachable: skipped');
  return s;
}

/** XADDs `{ message: {"n":…} }` entries (what a redis sink writes), retrying while the server is down. */
async function add(redis: RedisServer, from: number, count: number, key = 'logs'): Promise<void> {
  for (let n = from; n < from + count; n++) {
    for (let attempt = 0; ; attempt++) {
      try {
        await redis.client.sendCommand(['XADD', key, '*', 'message', JSON.stringify({ n })]);
        break;
      } catch (error) {
        if (attempt > 100) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/** How many entries of the group are read and not acknowledged (XPENDING summary). */
async function pending(redis: RedisServer, group = 'agg', key = 'logs'): Promise<number> {
  const reply = (await redis.client.sendCommand(['XPENDING', key, group])) as unknown[];
  return Number(reply[0]);
}

async function pipeline(t: TestContext, options: Record<string, unknown>, dataDir = tempDir(t, 'fluxo-redis-src-')) {
  return sourceIntoControlledSinks(
    t,
    { type: 'redis', key: 'logs', group: 'agg', consumer: 'c1', block: '200ms', ...options },
    [redisSource],
    dataDir,
  );
}

const numbers = (events: Event[]) => events.map((e) => e.n as number);

async function untilAsync(check: () => Promise<boolean>, what: string, maxMs = 10_000): Promise<void> {
  const end = Date.now() + maxMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('redis source', { timeout: 120_000 }, () => {
  it('delivers every entry once, JSON-decoded, with _id <key>:<entry id>; XACKs them all', async (t) => {
    const redis = await server(t);
    await add(redis, 1, 300);
    const p = await pipeline(t, { endpoint: redis.url });
    await until(() => p.out().written.length >= 300, '300 events', 30_000);
    assert.deepEqual(checkSequence(numbers(p.out().written), 300), { missing: [], duplicated: [] });
    const first = p.out().written.find((e) => e.n === 1)!;
    const id = (first.redis as { id: string }).id;
    assert.match(id, /^\d+-\d+$/);
    assert.deepEqual(first.redis, { key: 'logs', id });
    assert.equal(first._id, `logs:${id}`);
    assert.equal(first.source_type, 'redis');
    await untilAsync(async () => (await pending(redis)) === 0, 'every entry acknowledged');
    await add(redis, 301, 5);
    await until(() => p.out().written.length >= 305, 'entries added later', 30_000);
  });

  it('XACKs only after the sink settled; a consumer restarted with its name re-reads what it had not acked', async (t) => {
    const redis = await server(t);
    const dataDir = tempDir(t, 'fluxo-redis-src-');
    const p = await pipeline(t, { endpoint: redis.url }, dataDir);
    p.out().behaviour = { failTimes: 3 };
    await add(redis, 1, 40);
    await until(() => p.out().written.length >= 40, 'delivered after 3 failed attempts', 30_000);
    assert.ok(p.out().attempts >= 4);
    await untilAsync(async () => (await pending(redis)) === 0, 'the 40 acknowledged');
    p.out().behaviour = 'stall';
    const before = p.out().attempts;
    await add(redis, 41, 20);
    await until(() => p.out().attempts > before, 'a write of the new entries');
    await untilAsync(async () => (await pending(redis)) === 20, 'the 20 read');
    assert.equal(await pending(redis), 20, 'the stalled entries are not acknowledged');
    await p.stop(300);
    assert.equal(await pending(redis), 20, 'a batch the pipeline dropped stays pending');
    const q = await pipeline(t, { endpoint: redis.url }, dataDir);
    await until(() => q.out().written.length >= 20, 'the 20 re-read', 30_000);
    const again = q.out().written;
    assert.deepEqual(
      numbers(again).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => 41 + i),
    );
    const firstIds = new Map(p.out().written.map((e) => [e.n, e._id]));
    for (const e of again) if (firstIds.has(e.n)) assert.equal(e._id, firstIds.get(e.n));
    await untilAsync(async () => (await pending(redis)) === 0, 'the 20 acknowledged');
  });

  it('claims with XAUTOCLAIM what a dead consumer read and never acknowledged, after claim_idle', async (t) => {
    const redis = await server(t);
    await add(redis, 1, 30);
    // The dead member: reads 10 entries for itself and goes away without XACK.
    await redis.client.sendCommand(['XGROUP', 'CREATE', 'logs', 'agg', '0', 'MKSTREAM']);
    const stolen = (await redis.client.sendCommand([
      'XREADGROUP',
      'GROUP',
      'agg',
      'dead',
      'COUNT',
      '10',
      'STREAMS',
      'logs',
      '>',
    ])) as Record<string, unknown[]>;
    assert.equal(stolen.logs!.length, 10);
    const p = await pipeline(t, { endpoint: redis.url, consumer: 'alive', claim_idle: '500ms' });
    await until(() => p.out().written.length >= 20, 'the 20 nobody held');
    await until(() => p.out().written.length >= 30, 'the 10 claimed from the dead member', 30_000);
    assert.deepEqual(
      checkSequence(numbers(p.out().written), 30),
      { missing: [], duplicated: [] },
      JSON.stringify(numbers(p.out().written)),
    );
    await untilAsync(async () => (await pending(redis)) === 0, 'every entry acknowledged');
    assert.ok(p.lines.some((l) => l.msg === 'redis source claimed idle entries' && l.entries === 10));
  });

  it('a sink stalled longer than claim_idle: the entries stay with their holder, another member does not take them', async (t) => {
    const redis = await server(t);
    const p = await pipeline(t, { endpoint: redis.url, consumer: 'a', claim_idle: '300ms' });
    p.out().behaviour = 'stall';
    await add(redis, 1, 10);
    await until(() => p.out().attempts >= 1, 'the stalled write');
    const q = await pipeline(t, { endpoint: redis.url, consumer: 'b', claim_idle: '300ms' });
    // Several claim rounds of b pass while a holds the entries.
    await untilAsync(async () => {
      const consumers = (await redis.client.sendCommand(['XINFO', 'CONSUMERS', 'logs', 'agg'])) as unknown[][];
      return consumers.length === 2;
    }, 'b joined the group');
    const end = Date.now() + 1_500;
    while (Date.now() < end) {
      assert.equal(q.out().written.length, 0, 'b took nothing a still holds');
      await new Promise((r) => setTimeout(r, 50));
    }
    p.out().release();
    await until(() => p.out().written.length >= 10, 'a delivers its 10');
    assert.equal(q.out().written.length, 0);
  });

  it('redis-server killed -9 mid-stream (appendonly) and restarted: nothing is lost', async (t) => {
    const redis = await server(t, true);
    await add(redis, 1, 500);
    const p = await pipeline(t, { endpoint: redis.url, count: 50 });
    await until(() => p.out().written.length >= 100, 'some events before the kill', 30_000);
    await redis.kill9();
    await redis.restart();
    await add(redis, 501, 500);
    await until(
      () => checkSequence(numbers(p.out().written), 1000).missing.length === 0,
      'every number after the restart',
      60_000,
    );
    const byN = new Map<number, Set<unknown>>();
    for (const e of p.out().written) byN.set(e.n as number, (byN.get(e.n as number) ?? new Set()).add(e._id));
    for (const ids of byN.values()) assert.equal(ids.size, 1, 'a re-delivered entry keeps its _id');
    await untilAsync(async () => (await pending(redis)) === 0, 'every entry acknowledged', 20_000);
  });

  it('a malformed entry is dead-lettered with the reason and acknowledged; text decoding keeps the fields', async (t) => {
    const redis = await server(t);
    await redis.client.sendCommand(['XADD', 'logs', '*', 'message', 'not json {']);
    await redis.client.sendCommand(['XADD', 'logs', '*', 'other', 'x']);
    await redis.client.sendCommand(['XADD', 'logs', '*', 'message', JSON.stringify({ n: 3, _id: 'up-3' }), 'k', 'v']);
    const p = await pipeline(t, { endpoint: redis.url });
    await until(() => p.out().written.length >= 1 && p.dead().length >= 2, 'the good and the bad', 30_000);
    assert.equal(p.out().written[0]!._id, 'up-3', 'the upstream _id is kept');
    assert.equal(p.out().written[0]!.k, 'v');
    const reasons = p.dead().map((e) => (e._dead_letter as { reason: string }).reason);
    assert.match(reasons[0]!, /^redis source: entry \d+-\d+ of logs field "message" is not valid JSON/);
    assert.match(reasons[1]!, /entry \d+-\d+ of logs has no field "message"/);
    await untilAsync(async () => (await pending(redis)) === 0, 'the malformed entries acknowledged too');
    await p.stop();
    const q = await pipeline(t, { endpoint: redis.url, group: 'raw', decoding: 'text' });
    await until(() => q.out().written.length >= 3, 'three text events', 30_000);
    assert.deepEqual(
      q.out().written.map((e) => e.message ?? e.other),
      ['not json {', 'x', '{"n":3,"_id":"up-3"}'],
    );
  });
});
