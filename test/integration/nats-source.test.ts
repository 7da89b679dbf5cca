import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Event } from '../../src/core/event.ts';
import { natsSource } from '../../src/sources/nats.ts';
import { tempDir } from '../helpers/context.ts';
import { checkSequence } from '../helpers/fluxo-process.ts';
import { sourceIntoControlledSinks, until } from '../helpers/pipeline.ts';
import { type NatsServer, startNatsServer } from '../helpers/servers/nats.ts';

async function server(t: TestContext): Promise<NatsServer> {
  const s = await startNatsServer(t);
  if (!s) throw new Error('unreachable: skipped');
  return s;
}

/** A test-side client: the stream is created (file storage, survives kill -9) and messages are published. */
async function client(t: TestContext, url: string, stream = 'LOGS') {
  const nc: NatsConnection = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  t.after(() => nc.close());
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const js: JetStreamClient = jetstream(nc);
  if (stream !== '') await jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.>`] });
  /** Publishes `{ n }` for each number; `retry`: until stored, with Nats-Msg-Id `n-<n>` so a retry is stored once. */
  const publish = async (from: number, count: number, retry = false) => {
    for (let n = from; n < from + count; n++) {
      for (let attempt = 0; ; attempt++) {
        try {
          await js.publish(`${stream.toLowerCase()}.app`, JSON.stringify({ n }), retry ? { msgID: `n-${n}` } : {});
          break;
        } catch (error) {
          if (!retry || attempt > 100) throw error;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  };
  return { nc, jsm, js, publish };
}

/** A Topology with the nats source `in`, a controlled sink `out` and a controlled sink on dead_letter. */
async function pipeline(t: TestContext, options: Record<string, unknown>, dataDir = tempDir(t, 'fluxo-nats-src-')) {
  return sourceIntoControlledSinks(
    t,
    { type: 'nats', stream: 'LOGS', durable: 'agg', batch_size: 50, fetch_wait: '1s', ...options },
    [natsSource],
    dataDir,
  );
}

const numbers = (events: Event[]) => events.map((e) => e.n as number);

describe('nats source', { timeout: 120_000 }, () => {
  it('delivers every published message once, with nats fields and _id <stream>:<seq>; acks them all', async (t) => {
    const nats = await server(t);
    const c = await client(t, nats.url);
    await c.publish(1, 300);
    const p = await pipeline(t, { servers: [nats.url] });
    await until(() => p.out().written.length >= 300, '300 events', 30_000);
    const { missing, duplicated } = checkSequence(numbers(p.out().written), 300);
    assert.deepEqual({ missing, duplicated }, { missing: [], duplicated: [] });
    const first = p.out().written.find((e) => e.n === 1)!;
    assert.equal(first._id, 'LOGS:1');
    assert.equal(first.source_type, 'nats');
    assert.deepEqual(first.nats, { stream: 'LOGS', subject: 'logs.app', seq: 1, delivered: 1 });
    let info = await c.jsm.consumers.info('LOGS', 'agg');
    for (let i = 0; i < 200 && (info.num_ack_pending > 0 || info.ack_floor.stream_seq < 300); i++) {
      await new Promise((r) => setTimeout(r, 25));
      info = await c.jsm.consumers.info('LOGS', 'agg');
    }
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.ack_floor.stream_seq, 300);
    assert.equal(info.config.ack_policy, 'explicit');
  });

  it('acks only after the sink settled; a batch the pipeline dropped is nak-ed and redelivered to the next one', async (t) => {
    const nats = await server(t);
    const c = await client(t, nats.url);
    const dataDir = tempDir(t, 'fluxo-nats-src-');
    const p = await pipeline(t, { servers: [nats.url], nak_delay: '100ms' }, dataDir);
    p.out().behaviour = { failTimes: 3 };
    await c.publish(1, 40);
    await until(() => p.out().written.length >= 40, 'delivered after 3 failed attempts', 30_000);
    assert.ok(p.out().attempts >= 4);
    // A stalled sink: delivered to the source, not acknowledged.
    p.out().behaviour = 'stall';
    const before = p.out().attempts;
    await c.publish(41, 20);
    await until(() => p.out().attempts > before, 'a write of the new messages');
    const stalled = await c.jsm.consumers.info('LOGS', 'agg');
    assert.equal(stalled.num_ack_pending, 20, 'the 20 messages in the stalled sink are not acked');
    assert.equal(stalled.ack_floor.stream_seq, 40);
    // The pipeline stops before the sink delivered them: nak, and the next pipeline gets them again.
    await p.stop(300);
    const q = await pipeline(t, { servers: [nats.url] }, dataDir);
    await until(() => q.out().written.length >= 20, 'the 20 redelivered', 30_000);
    const again = q.out().written;
    assert.deepEqual(
      numbers(again).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => 41 + i),
      JSON.stringify(again.map((e) => [e.n, (e.nats as { delivered: number }).delivered])),
    );
    for (const e of again) {
      assert.equal(e._id, `LOGS:${e.n}`, 'a redelivery keeps its _id');
      assert.ok((e.nats as { delivered: number }).delivered >= 2);
    }
    let info = await c.jsm.consumers.info('LOGS', 'agg');
    for (let i = 0; i < 200 && info.num_ack_pending > 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      info = await c.jsm.consumers.info('LOGS', 'agg');
    }
    assert.equal(info.num_ack_pending, 0);
  });

  it('max_ack_pending bounds what the source holds while the sink stalls', async (t) => {
    const nats = await server(t);
    const c = await client(t, nats.url);
    const p = await pipeline(t, { servers: [nats.url], max_ack_pending: 30, batch_size: 10 });
    p.out().behaviour = 'stall';
    await c.publish(1, 100);
    await until(() => p.out().attempts >= 1, 'the first write');
    const consumerInfo = async () => c.jsm.consumers.info('LOGS', 'agg');
    let info = await consumerInfo();
    for (let i = 0; i < 200 && info.num_ack_pending < 30; i++) {
      await new Promise((r) => setTimeout(r, 25));
      info = await consumerInfo();
    }
    assert.equal(info.num_ack_pending, 30);
    assert.equal(info.config.max_ack_pending, 30);
    p.out().release();
    await until(() => p.out().written.length >= 100, 'all 100 after the release', 30_000);
    assert.deepEqual(checkSequence(numbers(p.out().written), 100), { missing: [], duplicated: [] });
  });

  it('nats-server killed -9 mid-stream and restarted with its store: nothing is lost', async (t) => {
    const nats = await server(t);
    const c = await client(t, nats.url);
    await c.publish(1, 500, true);
    const p = await pipeline(t, { servers: [nats.url], ack_wait: '2s', reconnect_wait: '100ms' });
    await until(() => p.out().written.length >= 100, 'some events before the kill', 30_000);
    await nats.kill9();
    await nats.restart();
    await c.publish(501, 500, true);
    await until(
      () => checkSequence(numbers(p.out().written), 1000).missing.length === 0,
      'every number after the restart',
      60_000,
    );
    // Duplicates are possible (acks lost in the kill), each with the _id of its first delivery.
    const byN = new Map<number, Set<unknown>>();
    for (const e of p.out().written) byN.set(e.n as number, (byN.get(e.n as number) ?? new Set()).add(e._id));
    for (const [n, ids] of byN) assert.deepEqual([...ids], [`n-${n}`]);
  });

  it('a malformed message is dead-lettered with the reason and terminated; text decoding keeps the payload', async (t) => {
    const nats = await server(t);
    const c = await client(t, nats.url);
    await c.js.publish('logs.app', 'not json {');
    await c.js.publish('logs.app', '[1,2]');
    await c.js.publish('logs.app', JSON.stringify({ n: 3, _id: 'upstream-3' }), { msgID: 'm-3' });
    await c.js.publish('logs.app', JSON.stringify({ n: 4 }), { msgID: 'm-4' });
    const p = await pipeline(t, { servers: [nats.url] });
    await until(() => p.out().written.length >= 2 && p.dead().length >= 2, 'the good and the bad', 30_000);
    assert.deepEqual(
      p.out().written.map((e) => e._id),
      ['upstream-3', 'm-4'],
      'the upstream _id first, then Nats-Msg-Id',
    );
    const reasons = p.dead().map((e) => (e._dead_letter as { reason: string }).reason);
    assert.match(reasons[0]!, /LOGS:1 on logs\.app is not valid JSON/);
    assert.match(reasons[1]!, /LOGS:2 on logs\.app is JSON but not an object \(an array\)/);
    assert.equal(p.dead()[0]!.message, 'not json {');
    let info = await c.jsm.consumers.info('LOGS', 'agg');
    for (let i = 0; i < 200 && info.num_ack_pending > 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      info = await c.jsm.consumers.info('LOGS', 'agg');
    }
    assert.equal(info.num_ack_pending, 0, 'terminated messages are not pending');
    assert.equal(info.num_pending, 0);
    await p.stop();

    const q = await pipeline(t, { servers: [nats.url], durable: 'raw', decoding: 'text' });
    await until(() => q.out().written.length >= 4, 'four text events', 30_000);
    assert.deepEqual(
      q.out().written.map((e) => e.message),
      ['not json {', '[1,2]', '{"n":3,"_id":"upstream-3"}', '{"n":4}'],
    );
    assert.equal(q.dead().length, 0);
  });

  it('a missing stream is a clear warning naming it, retried until the stream exists', async (t) => {
    const nats = await server(t);
    const p = await pipeline(t, { servers: [nats.url] });
    await until(
      () => p.lines.some((l) => l.code === 'FLUXO_NATS_STREAM_MISSING' && /"LOGS" does not exist/.test(String(l.err))),
      'the warning',
      20_000,
    );
    const c = await client(t, nats.url);
    await c.publish(1, 5);
    await until(() => p.out().written.length >= 5, 'the events once the stream exists', 30_000);
    assert.deepEqual(checkSequence(numbers(p.out().written), 5), { missing: [], duplicated: [] });
  });
});
