import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { Event } from '../../src/core/event.ts';
import { murmur2, partitionOf } from '../../src/sinks/kafka/produce.ts';
import { kafkaSink } from '../../src/sinks/kafka.ts';
import { tempDir } from '../helpers/context.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import {
  type KafkaMessage,
  type KafkaMockCluster,
  producedCodecs,
  resentRecordValues,
  startKafkaMock,
} from '../helpers/servers/kafka.ts';

const NOT_LEADER_OR_FOLLOWER = 6;
const REQUEST_TIMED_OUT = 7;
const MESSAGE_TOO_LARGE = 10;
const PRODUCE = 0;

function numbered(from: number, count: number, extra: (n: number) => Record<string, unknown> = () => ({})): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: `n-${from + i}`,
    message: `event ${from + i}`,
    timestamp: new Date(Date.UTC(2026, 11, 2, 3, 0, 0)).toISOString(),
    n: from + i,
    ...extra(from + i),
  }));
}

/** Manual sources `in0`…, the kafka sink `out` reading them all, and a controlled sink reading dead_letter. */
async function pipeline(t: TestContext, options: Record<string, unknown>, senders = 1) {
  // Loaded before the pipeline starts, so the waits below never include the client's load time.
  await import('@platformatic/kafka');
  const dataDir = tempDir(t, 'fluxo-kafka-sink-');
  const sources = Object.fromEntries(Array.from({ length: senders }, (_, i) => [`in${i}`, { type: 'manual' }]));
  const config = {
    sources,
    sinks: {
      out: {
        type: 'kafka',
        inputs: Object.keys(sources),
        request_timeout: '2s',
        connect_timeout: '1s',
        ...options,
        retry: { initial_backoff: '20ms', max_backoff: '200ms' },
      },
      dead: { type: 'controlled', inputs: ['dead_letter'] },
    },
  };
  const p = testPipeline(stringify(config), dataDir, [kafkaSink]);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await p.topology.stop(2000);
  });
  await p.topology.start();
  return {
    ...p,
    sender: (i: number) => p.source(`in${i}`),
    acks: () => Object.keys(sources).flatMap((id) => p.source(id).acks),
    dead: () => p.sink('dead').written,
    stop: async () => {
      stopped = true;
      return p.topology.stop(10_000);
    },
  };
}

const bodies = (messages: KafkaMessage[]) => messages.map((m) => JSON.parse(m.value!.toString()) as Event);

/**
 * Every number from..from+count-1 in the topic once. `resent`: record values the producer re-sent with the same
 * producer id and sequence (resentRecordValues), which may stand more than once on the mock.
 */
function assertEachOnce(messages: KafkaMessage[], from: number, count: number, resent = new Set<string>()): void {
  const seen = new Map<number, number>();
  for (const e of bodies(messages)) seen.set(e.n as number, (seen.get(e.n as number) ?? 0) + 1);
  const byValue = new Map(
    messages.map((m) => [(JSON.parse(m.value!.toString()) as Event).n as number, m.value!.toString()]),
  );
  const missing: number[] = [];
  const twice: number[] = [];
  let excused = 0;
  for (let n = from; n < from + count; n++) {
    const c = seen.get(n) ?? 0;
    if (c === 0) missing.push(n);
    else if (c > 1 && resent.has(byValue.get(n)!)) excused += c - 1;
    else if (c > 1) twice.push(n);
  }
  assert.deepEqual(missing, [], `missing ${missing.length}: ${missing.slice(0, 20).join(',')}`);
  assert.deepEqual(twice, [], `more than once: ${twice.slice(0, 20).join(',')}`);
  assert.equal(messages.length, count + excused, 'messages in the topic');
}

async function cluster(t: TestContext, topic: string, partitions: number): Promise<KafkaMockCluster | undefined> {
  const c = await startKafkaMock(t, 3);
  if (!c) return undefined;
  await c.createTopic(topic, partitions, 3);
  // Leaders spread over the brokers, so one write is several produce requests.
  for (let p = 0; p < partitions; p++) await c.leader(topic, p, 1 + (p % 3));
  return c;
}

/** Four senders emit `batches` batches of `size` numbered events each, concurrently, with a hook after each round. */
async function sendFromFour(
  p: Awaited<ReturnType<typeof pipeline>>,
  batches: number,
  size: number,
  between: (round: number) => Promise<void> = async () => {},
): Promise<number> {
  let n = 1;
  for (let round = 0; round < batches; round++) {
    const sends: Promise<void>[] = [];
    for (let s = 0; s < 4; s++) {
      sends.push(p.sender(s).emit(numbered(n, size)));
      n += size;
    }
    await Promise.all(sends);
    await between(round);
  }
  return n - 1;
}

describe('kafka sink', { timeout: 120_000 }, () => {
  it("partitions keys as the Java client does (murmur2 of Kafka's own test vectors)", () => {
    const vectors: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of vectors) assert.equal(murmur2(Buffer.from(key)), hash, key);
    assert.equal(partitionOf(Buffer.from('foobar'), 7), (-790332482 & 0x7fffffff) % 7);
  });

  it('delivers every number from four senders exactly once, settling each batch delivered', async (t) => {
    const c = await cluster(t, 'numbers', 3);
    if (!c) return;
    const p = await pipeline(t, { bootstrap_servers: c.bootstrap, topic: 'numbers' }, 4);
    const total = await sendFromFour(p, 10, 50);
    await until(() => p.acks().length === 40, 'every batch settled', 30_000);
    assert.deepEqual(new Set(p.acks()), new Set(['delivered']));
    const messages = await c.messages('numbers');
    assertEachOnce(messages, 1, total);
    assert.equal(new Set(messages.map((m) => m.partition)).size, 3, 'keys spread over every partition');
    assert.equal(p.dead().length, 0);
  });

  it('loses nothing and duplicates nothing across leader changes mid-stream', async (t) => {
    const c = await cluster(t, 'moving', 3);
    if (!c) return;
    const p = await pipeline(t, { bootstrap_servers: c.bootstrap, topic: 'moving' }, 4);
    const total = await sendFromFour(p, 12, 25, async (round) => {
      // Every partition's leadership moves to the next broker, twice: the sink's requests meet
      // NOT_LEADER_OR_FOLLOWER and go to the new leader.
      if (round === 3 || round === 7) {
        for (let part = 0; part < 3; part++) await c.leader('moving', part, 1 + ((part + round) % 3));
      }
    });
    await until(() => p.acks().length === 48, 'every batch settled', 60_000);
    assert.deepEqual(new Set(p.acks()), new Set(['delivered']));
    // A batch sent to the old leader comes again to the new one with the same producer id and sequence, which a
    // broker writes once. The 2.0.2 mock now and then writes such a resend twice; any other duplicate is the sink's.
    assertEachOnce(await c.messages('moving'), 1, total, resentRecordValues(c.shim));
  });

  it('loses nothing and duplicates nothing through injected retriable produce errors', async (t) => {
    const c = await cluster(t, 'flaky', 3);
    if (!c) return;
    const p = await pipeline(t, { bootstrap_servers: c.bootstrap, topic: 'flaky', compression: 'lz4' }, 4);
    const total = await sendFromFour(p, 8, 25, async (round) => {
      // More failures than the client retries itself (3 tries): the runner's retries take over.
      if (round === 1) await c.pushErrors(PRODUCE, 5, NOT_LEADER_OR_FOLLOWER);
      if (round === 4) await c.pushErrors(PRODUCE, 5, REQUEST_TIMED_OUT);
    });
    await until(() => p.acks().length === 32, 'every batch settled', 60_000);
    assert.deepEqual(new Set(p.acks()), new Set(['delivered']));
    assertEachOnce(await c.messages('flaky'), 1, total);
  });

  it('delivers everything once after a partition leader broker goes down and comes back', async (t) => {
    const c = await cluster(t, 'restart', 1);
    if (!c) return;
    const p = await pipeline(t, { bootstrap_servers: c.bootstrap, topic: 'restart' });
    await p.sender(0).emit(numbered(1, 20));
    await until(() => p.acks().length === 1, 'the first batch');
    await c.brokerDown(1);
    await p.sender(0).emit(numbered(21, 20));
    // Nothing can be awaited for "not yet": give the sink time to (wrongly) settle while the leader is down.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(p.acks().length, 1, 'settled while the partition leader was down');
    await c.brokerUp(1);
    await until(() => p.acks().length === 2, 'the second batch once the broker is back', 30_000);
    assert.deepEqual(p.acks(), ['delivered', 'delivered']);
    assertEachOnce(await c.messages('restart'), 1, 40);
  });

  it('routes by a topic template, keys by a field, sends _id as a header', async (t) => {
    const c = await startKafkaMock(t, 1);
    if (!c) return;
    await c.createTopic('logs-web', 4);
    await c.createTopic('logs-db', 4);
    const p = await pipeline(t, {
      bootstrap_servers: c.bootstrap,
      topic: 'logs-{{ app }}',
      key_field: 'host',
      compression: 'gzip',
    });
    const events = numbered(1, 40, (n) => ({ app: n % 2 === 0 ? 'web' : 'db', host: `h${n % 5}` }));
    events.push({ _id: 'no-app', message: 'where to?', n: 99 });
    await p.sender(0).emit(events);
    await until(() => p.acks().length === 1, 'the batch settled');
    for (const app of ['web', 'db']) {
      const messages = await c.messages(`logs-${app}`);
      assert.equal(messages.length, 20, `logs-${app}`);
      for (const m of messages) {
        const body = JSON.parse(m.value!.toString()) as Event;
        assert.equal(body.app, app);
        assert.equal(m.key?.toString(), body.host, 'the key is the host field');
        assert.equal(m.headers._id, body._id, 'the _id header');
        assert.equal(m.partition, partitionOf(Buffer.from(body.host as string), 4), 'murmur2 partition of the key');
      }
    }
    const dead = p.dead();
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!._id, 'no-app');
    assert.match(String((dead[0]!._dead_letter as { reason: string }).reason), /no field app/);
  });

  it('compresses with zstd on every Node (node:zlib from 22.15, WebAssembly before): librdkafka reads the batches back', async (t) => {
    const c = await startKafkaMock(t, 1);
    if (!c) return;
    await c.createTopic('zstd', 2);
    const p = await pipeline(t, { bootstrap_servers: c.bootstrap, topic: 'zstd', compression: 'zstd' });
    await p.sender(0).emit(numbered(1, 200));
    await until(() => p.acks().length === 1, 'the batch settled');
    assert.deepEqual(p.acks(), ['delivered']);
    assert.deepEqual([...producedCodecs(c.shim)], [4], 'every batch the broker got was zstd');
    // Read back by librdkafka (the mock's dump), which decompresses the zstd batches.
    assertEachOnce(await c.messages('zstd'), 1, 200);
  });

  it('dead-letters what the broker refuses as too large, and only that', async (t) => {
    const c = await startKafkaMock(t, 1);
    if (!c) return;
    await c.createTopic('big', 1);
    const p = await pipeline(t, { bootstrap_servers: c.bootstrap, topic: 'big', max_message_bytes: '2KiB' });
    // A batch refused once as too large is sent again one message per request: the rest are delivered.
    await c.pushErrors(PRODUCE, 1, MESSAGE_TOO_LARGE);
    const events = numbered(1, 5);
    events.push({ _id: 'huge', message: 'x'.repeat(4096), n: 6 });
    await p.sender(0).emit(events);
    await until(() => p.acks().length === 1, 'the batch settled');
    assertEachOnce(await c.messages('big'), 1, 5);
    // A single message the broker refuses as too large is dead-lettered with the broker's reason.
    await c.pushErrors(PRODUCE, 1, MESSAGE_TOO_LARGE);
    await p.sender(0).emit(numbered(7, 1));
    await until(() => p.dead().length === 2, 'two dead letters');
    const reasons = p.dead().map((e) => `${e._id}: ${(e._dead_letter as { reason: string }).reason}`);
    assert.match(reasons[0]!, /^huge: .*max_message_bytes/);
    assert.match(reasons[1]!, /^n-7: .*MESSAGE_TOO_LARGE/);
  });
});
