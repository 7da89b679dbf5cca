import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { AckStatus } from '../../src/core/ack.ts';
import { PermanentError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { redisSink } from '../../src/sinks/redis.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { startRedis } from '../helpers/servers/redis.ts';
import { driven } from '../helpers/sink-driver.ts';

const never = new AbortController().signal;

function events(from: number, count: number, extra: (n: number) => Record<string, unknown> = () => ({})): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: `e-${from + i}`,
    message: `line ${from + i}`,
    timestamp: '2026-12-02T03:00:00.000Z',
    n: from + i,
    ...extra(from + i),
  }));
}

async function build(t: TestContext, options: Record<string, unknown>) {
  const sink = redisSink.build(redisSink.options.parse(options), componentContext('speed', '/tmp'));
  t.after(() => sink.stop());
  await sink.connect!(never);
  return sink;
}

/** The entries of a stream as `{ message, _id }` field maps, in stream order. */
async function entries(client: { xRange: (k: string, a: string, b: string) => Promise<unknown> }, key: string) {
  const list = (await client.xRange(key, '-', '+')) as { id: string; message: Record<string, string> }[];
  return list.map((e) => e.message);
}

describe('redis sink', { timeout: 120_000 }, () => {
  it('XADDs each event in order, the encoded event in `message` and its `_id` beside it', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    const sink = await build(t, { endpoint: redis.url, key: 'logs' });
    const batch = events(1, 50);
    await driven(sink).write(batch, never);
    const got = await entries(redis.client, 'logs');
    assert.equal(got.length, 50);
    got.forEach((fields, i) => {
      assert.deepEqual(Object.keys(fields), ['message', '_id']);
      assert.equal(fields._id, batch[i]!._id);
      assert.deepEqual(JSON.parse(fields.message!), batch[i]);
    });
    await sink.healthcheck!(never);
  });

  it('routes by the key template to several streams; text encoding and another field name', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    const sink = await build(t, {
      endpoint: redis.url,
      key: 'logs:{{ app }}:%Y',
      encoding: 'text',
      message_field: 'line',
    });
    const batch = events(1, 9, (n) => ({ app: ['web', 'api', 'db'][n % 3] }));
    await driven(sink).write(batch, never);
    for (const app of ['web', 'api', 'db']) {
      const got = await entries(redis.client, `logs:${app}:2026`);
      const want = batch.filter((e) => e.app === app);
      assert.deepEqual(
        got.map((f) => f.line),
        want.map((e) => e.message),
      );
    }
  });

  it('an event without the template field is dead-lettered, the rest delivered', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    const sink = await build(t, { endpoint: redis.url, key: 'logs:{{ app }}' });
    const batch = events(1, 3, (n) => (n === 2 ? {} : { app: 'web' }));
    await assert.rejects(driven(sink).write(batch, never), (error: unknown) => {
      assert.ok(error instanceof PermanentError);
      assert.deepEqual(
        error.events?.map((e) => e._id),
        ['e-2'],
      );
      assert.match(error.reason, /no field app/);
      return true;
    });
    assert.equal((await entries(redis.client, 'logs:web')).length, 2);
  });

  it('MAXLEN ~ trims each stream to about max_len entries', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    // Approximate trimming removes whole macro nodes (100 entries by default): make them small to see it.
    await redis.client.configSet('stream-node-max-entries', '10');
    const sink = await build(t, { endpoint: redis.url, key: 'logs', max_len: 50 });
    for (let i = 0; i < 10; i++) await driven(sink).write(events(1 + i * 50, 50), never);
    const length = await redis.client.xLen('logs');
    assert.ok(length >= 50 && length < 70, `stream length ${length}, expected about 50`);
    const got = await entries(redis.client, 'logs');
    assert.equal(got.at(-1)!._id, 'e-500', 'the newest entries are kept');
  });

  it('dedupe: the same batch sent twice yields one entry per _id; markers expire with their ttl', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    const sink = await build(t, { endpoint: redis.url, key: 'logs', dedupe: { ttl: '1h' } });
    const batch = events(1, 20);
    await driven(sink).write(batch, never);
    await driven(sink).write([...batch], never);
    await driven(sink).write(events(11, 20), never);
    const ids = (await entries(redis.client, 'logs')).map((f) => f._id);
    assert.deepEqual(
      ids,
      events(1, 30).map((e) => e._id),
    );
    const ttl = await redis.client.pTTL('fluxo:dedupe:logs:e-1');
    assert.ok(ttl > 3_500_000 && ttl <= 3_600_000, `marker ttl ${ttl}`);

    const plain = await build(t, { endpoint: redis.url, key: 'plain', dedupe: { enabled: false } });
    await driven(plain).write(batch, never);
    await driven(plain).write([...batch], never);
    assert.equal(await redis.client.xLen('plain'), 40, 'without dedupe a resend adds again');
  });

  it('list mode: RPUSH keeps arrival order, LPUSH prepends; dedupe applies to lists too', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    const rpush = await build(t, { endpoint: redis.url, data_type: 'list', key: 'q' });
    const batch = events(1, 5);
    await driven(rpush).write(batch, never);
    await driven(rpush).write([...batch], never);
    const list = await redis.client.lRange('q', 0, -1);
    assert.deepEqual(
      list.map((l) => (JSON.parse(l) as Event)._id),
      batch.map((e) => e._id),
    );
    const lpush = await build(t, { endpoint: redis.url, data_type: 'list', key: 'stack', method: 'lpush' });
    await driven(lpush).write(batch, never);
    assert.deepEqual(
      (await redis.client.lRange('stack', 0, -1)).map((l) => (JSON.parse(l) as Event)._id),
      batch.map((e) => e._id).reverse(),
    );
  });

  it('channel mode: a connected subscriber receives every event (best-effort, no dedupe)', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    const subscriber = redis.client.duplicate();
    subscriber.on('error', () => {});
    await subscriber.connect();
    t.after(() => subscriber.destroy());
    const heard: string[] = [];
    await subscriber.subscribe('live', (message) => {
      heard.push((JSON.parse(message) as Event)._id as string);
    });
    const sink = await build(t, { endpoint: redis.url, data_type: 'channel', key: 'live' });
    const batch = events(1, 10);
    await driven(sink).write(batch, never);
    await until(() => heard.length === 10, 'the subscriber heard every event');
    assert.deepEqual(
      heard,
      batch.map((e) => e._id),
    );
    assert.throws(
      () => redisSink.options.parse({ endpoint: redis.url, data_type: 'channel', key: 'x', dedupe: { enabled: true } }),
      /dedupe is for stream and list/,
    );
  });

  it('a WRONGTYPE key dead-letters that event only; its dedupe marker is removed again', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    await redis.client.set('logs:db', 'a string, not a stream');
    const sink = await build(t, { endpoint: redis.url, key: 'logs:{{ app }}' });
    const batch = events(1, 4, (n) => ({ app: n === 3 ? 'db' : 'web' }));
    await assert.rejects(driven(sink).write(batch, never), (error: unknown) => {
      assert.ok(error instanceof PermanentError);
      assert.deepEqual(
        error.events?.map((e) => e._id),
        ['e-3'],
      );
      assert.match(error.reason, /WRONGTYPE/);
      return true;
    });
    assert.deepEqual(
      (await entries(redis.client, 'logs:web')).map((f) => f._id),
      ['e-1', 'e-2', 'e-4'],
    );
    assert.equal(await redis.client.exists('fluxo:dedupe:logs:db:e-3'), 0, 'the marker of the failed write stays');
  });

  it('dedupe writes up to SCRIPT_EVENTS events per script call, in order, with events without _id between calls', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    await redis.client.set('logs:db', 'a string, not a stream');
    const sink = await build(t, {
      endpoint: redis.url,
      key: 'logs:{{ app }}',
      max_len: 100_000,
      dedupe: { prefix: 'dédup:' },
    });
    // 700 events: #300 has no _id (a plain XADD between two script calls), #450 goes to a key of another type;
    // multi-byte text in some (the script cuts the lines out of one argument by byte lengths).
    const batch = events(1, 700, (n) => ({ app: n === 450 ? 'db' : 'web', text: n % 7 === 0 ? 'é ✓ 😀' : '' }));
    delete batch[299]!._id;
    const evalsha = async () => {
      const stats = await redis.client.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    };
    const before = await evalsha();
    await assert.rejects(driven(sink).write(batch, never), (error: unknown) => {
      assert.ok(error instanceof PermanentError);
      assert.deepEqual(
        error.events?.map((e) => e.n),
        [450],
      );
      assert.match(error.reason, /redis XADD: WRONGTYPE/);
      return true;
    });
    // 299 events before the one without _id: 2 calls (256 + 43); 400 after it: 2 calls (256 + 144).
    assert.equal((await evalsha()) - before, 4, 'script calls');
    const expected = batch.filter((e) => e.n !== 450);
    const got = await entries(redis.client, 'logs:web');
    assert.deepEqual(
      got.map((f) => JSON.parse(f.message!) as Event),
      expected,
    );
    assert.deepEqual(
      got.filter((f) => !f.message!.endsWith('}')),
      [],
      'each message is exactly its line',
    );
    assert.deepEqual(
      got.map((f) => f._id),
      expected.map((e) => e._id),
    );
    assert.equal(await redis.client.exists('dédup:logs:web:e-1'), 1, "a written event's marker");
    assert.equal(await redis.client.exists('dédup:logs:db:e-450'), 0, 'the failed write left its marker');
    // A resend: only the event without _id (no marker) and the one whose write failed are written again.
    await assert.rejects(driven(sink).write([...batch], never), PermanentError);
    assert.equal(await redis.client.xLen('logs:web'), 700);
  });

  it('a server down at connect is a retryable error; a bad endpoint fails validation', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    await redis.kill9();
    const sink = redisSink.build(
      redisSink.options.parse({ endpoint: redis.url, key: 'logs' }),
      componentContext('speed', '/tmp'),
    );
    t.after(() => sink.stop());
    await assert.rejects(sink.connect!(never), /ECONNREFUSED/);
    await redis.restart();
    await sink.connect!(never);
    await driven(sink).write(events(1, 2), never);
    assert.equal(await redis.client.xLen('logs'), 2);
    assert.throws(() => redisSink.options.parse({ endpoint: 'http://x', key: 'k' }), /redis:\/\//);
    assert.throws(() => redisSink.options.parse({ endpoint: 'redis://x', key: 'k', max_len: 5, max_age: '1h' }));
  });

  // The server is killed with SIGKILL mid-stream and restarted 2 s later. With appendonly + appendfsync always
  // every acknowledged write, dedupe markers included, survives the kill, so each _id is in the stream exactly
  // once. (Without persistence the markers would be lost with the entries, and only "at least once, duplicates
  // carry the same _id" would hold: the batch layer drops those by _id.)
  it('kill -9 of redis mid-stream and a restart: every event arrives, each exactly once', async (t) => {
    const redis = await startRedis(t, { appendonly: true });
    if (!redis) return;
    const dataDir = tempDir(t);
    const config = {
      sources: { in: { type: 'manual' } },
      sinks: {
        out: {
          type: 'redis',
          inputs: ['in'],
          endpoint: redis.url,
          key: 'logs',
          retry: { initial_backoff: '50ms', max_backoff: '500ms' },
          batch: { max_events: 50, timeout: '5ms' },
        },
      },
    };
    const p = testPipeline(stringify(config), dataDir, [redisSink]);
    t.after(() => p.topology.stop(2000));
    await p.topology.start();
    const source = p.source('in');
    const total = 3000;
    const statuses: (AckStatus | undefined)[] = [];
    let killed = false;
    for (let b = 0; b < total / 50; b++) {
      const at = statuses.length;
      statuses.push(undefined);
      await source.ctx!.emit(events(1 + b * 50, 50), {
        onSettled: (s) => {
          statuses[at] = s;
        },
      });
      if (b === 20 && !killed) {
        killed = true;
        await redis.kill9();
        setTimeout(() => void redis.restart(), 2_000);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await until(() => statuses.every((s) => s !== undefined), 'every batch settled', 60_000);
    assert.ok(statuses.every((s) => s === 'delivered'));
    const ids = (await entries(redis.client, 'logs')).map((f) => f._id);
    const counts = new Map<string, number>();
    for (const id of ids) counts.set(id!, (counts.get(id!) ?? 0) + 1);
    const missing = events(1, total).filter((e) => !counts.has(e._id as string));
    assert.deepEqual(
      missing.map((e) => e._id),
      [],
      'lost events',
    );
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'duplicates despite dedupe');
    const retries = p.metrics.registry.getSingleMetric('fluxo_sink_retries_total');
    const retried = retries ? (await retries.get()).values.reduce((sum, v) => sum + v.value, 0) : 0;
    assert.ok(retried >= 1, 'the kill did not fail a write: it was not mid-stream');
  });
});
