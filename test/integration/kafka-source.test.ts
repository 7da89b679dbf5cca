import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { Consumer as KafkaConsumer, Producer as KafkaProducer } from '@platformatic/kafka';
import type { Event } from '../../src/core/event.ts';
import { PartitionOffsets } from '../../src/sources/kafka/offsets.ts';
import { kafkaSource } from '../../src/sources/kafka.ts';
import { tempDir } from '../helpers/context.ts';
import { checkSequence } from '../helpers/fluxo-process.ts';
import { sourceIntoControlledSinks, until } from '../helpers/pipeline.ts';
import { type KafkaMockCluster, startKafkaMock } from '../helpers/servers/kafka.ts';

const TOPIC = 'logs';

async function cluster(t: TestContext, partitions = 3): Promise<KafkaMockCluster> {
  const k = await startKafkaMock(t);
  if (!k) throw new Error('unreachable: skipped');
  await k.createTopic(TOPIC, partitions, 1);
  return k;
}

/** A test-side producer (the client the kafka sink uses, not the source under test): message n → partition n % 3. */
async function producer(t: TestContext, k: KafkaMockCluster) {
  const { Producer, stringSerializers } = await import('@platformatic/kafka');
  const p: KafkaProducer<string, string, string, string> = new Producer({
    clientId: 'test-producer',
    bootstrapBrokers: k.bootstrap,
    idempotent: true,
    acks: -1,
    producerId: -1n,
    producerEpoch: -1,
    serializers: stringSerializers,
  });
  t.after(() => p.close(true));
  return async (from: number, count: number, value: (n: number) => string = (n) => JSON.stringify({ n })) => {
    for (let start = from; start < from + count; start += 100) {
      const messages = [];
      for (let n = start; n < Math.min(start + 100, from + count); n++) {
        messages.push({ topic: TOPIC, key: `k${n}`, value: value(n), partition: n % 3, headers: { origin: 'test' } });
      }
      await p.send({ messages });
    }
  };
}

/** The group's committed offsets of partitions 0..2, read with a separate client that does not join it. */
async function committed(t: TestContext, k: KafkaMockCluster, group: string): Promise<number[]> {
  const { Consumer } = await import('@platformatic/kafka');
  const c: KafkaConsumer = new Consumer({ clientId: 'test-offsets', groupId: group, bootstrapBrokers: k.bootstrap });
  t.after(() => c.close(true));
  try {
    const offsets = await c.listCommittedOffsets({ topics: [{ topic: TOPIC, partitions: [0, 1, 2] }] });
    return (offsets.get(TOPIC) ?? []).map(Number);
  } finally {
    await c.close(true);
  }
}

/** A Topology with the kafka source `in`, a controlled sink `out` and a controlled sink on dead_letter. */
async function pipeline(t: TestContext, k: KafkaMockCluster, options: Record<string, unknown> = {}) {
  // Loaded before the pipeline starts, so the waits below never include the client's load time.
  await import('@platformatic/kafka');
  const source = {
    type: 'kafka',
    bootstrap_servers: k.bootstrap,
    topics: [TOPIC],
    group_id: 'agg',
    commit_interval: '100ms',
    fetch_max_wait: '100ms',
    heartbeat_interval: '200ms',
    session_timeout: '6s',
    rebalance_timeout: '6s',
    batch_size: 50,
    ...options,
  };
  return sourceIntoControlledSinks(t, source, [kafkaSource], tempDir(t, 'fluxo-kafka-src-'));
}

/** Polls an asynchronous check (until() takes synchronous ones). */
async function untilAsync(check: () => Promise<boolean>, what: string, maxMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The sum of a metric's samples whose labels hold `match`. */
async function metric(p: { metrics: { registry: { metrics(): Promise<string> } } }, name: string, match = '') {
  let sum = 0;
  for (const line of (await p.metrics.registry.metrics()).split('\n')) {
    if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(match))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const numbers = (events: Event[]) => events.map((e) => e.n as number);

/** Where message n went (see producer): partition n % 3, at offset (n - first) / 3 for numbers from `first`. */
const idOf = (n: number) => `${TOPIC}:${n % 3}:${Math.floor((n - 1) / 3)}`;

/** Every event with the same number has the same _id: a re-read is recognisable downstream. */
function assertOneIdPerNumber(events: Event[]): void {
  const ids = new Map<number, string>();
  for (const e of events) {
    const n = e.n as number;
    const seen = ids.get(n);
    if (seen !== undefined) assert.equal(e._id, seen, `both copies of ${n} have one _id`);
    ids.set(n, e._id as string);
  }
}

describe('kafka source: commit point', () => {
  it('moves only over the contiguous settled prefix; a later batch settling first waits for the earlier one', () => {
    const p = new PartitionOffsets(TOPIC, 0, 10n);
    const a = p.add(10n, 20n);
    const b = p.add(20n, 30n);
    p.settle(b, true);
    assert.equal(p.next, 10n, 'b settled first: nothing past the unsettled a');
    assert.equal(p.pending, 10);
    p.settle(a, true);
    assert.equal(p.next, 30n);
    const c = p.add(30n, 40n);
    const d = p.add(40n, 50n);
    p.settle(c, false);
    p.settle(d, true);
    assert.equal(p.next, 30n, 'a failed batch is a hole until its offsets are read again');
    const again = p.add(30n, 40n);
    p.settle(again, true);
    assert.equal(p.next, 50n);
    assert.equal(p.pending, 0);
  });
});

describe('kafka source', { timeout: 240_000 }, () => {
  it('delivers every message of a 3-partition topic once with kafka fields and _id <topic>:<partition>:<offset>; commits them all', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    await produce(1, 300);
    const p = await pipeline(t, k);
    await until(() => p.out().written.length >= 300, '300 events', 60_000);
    const { missing, duplicated } = checkSequence(numbers(p.out().written), 300);
    assert.deepEqual({ missing, duplicated }, { missing: [], duplicated: [] });
    const first = p.out().written.find((e) => e.n === 4)!;
    assert.equal(first._id, idOf(4));
    assert.equal(first.source_type, 'kafka');
    assert.deepEqual(first.kafka, { topic: TOPIC, partition: 1, offset: 1, key: 'k4', headers: { origin: 'test' } });
    await untilAsync(async () => (await committed(t, k, 'agg')).join() === '100,100,100', 'every offset committed');
    await p.stop();
  });

  it('commits nothing past unsettled events: after a restart they are read again with the same _id, committed ones not', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    const p = await pipeline(t, k);
    p.out().behaviour = { failTimes: 3 };
    await produce(1, 30);
    await until(() => p.out().written.length >= 30, 'delivered after 3 failed attempts', 60_000);
    assert.ok(p.out().attempts >= 4);
    await untilAsync(async () => (await committed(t, k, 'agg')).join() === '10,10,10', 'the 30 committed');
    // A stalled sink: handed to the pipeline, not settled, so not committed.
    p.out().behaviour = 'stall';
    const before = p.out().attempts;
    await produce(31, 30);
    await until(() => p.out().attempts > before, 'a write of the new messages', 30_000);
    // Several commit intervals pass with the batch unsettled.
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await committed(t, k, 'agg'), [10, 10, 10]);
    await p.stop(300);
    assert.deepEqual(await committed(t, k, 'agg'), [10, 10, 10], 'the stop commits nothing undelivered');

    const q = await pipeline(t, k);
    await until(() => q.out().written.length >= 30, 'the 30 read again', 60_000);
    const again = q.out().written;
    assert.deepEqual(
      numbers(again).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => 31 + i),
      'only the unsettled ones are read again',
    );
    for (const e of again) assert.equal(e._id, idOf(e.n as number), 'a re-read keeps its _id');
    await untilAsync(async () => (await committed(t, k, 'agg')).join() === '20,20,20', 'all committed');
    await q.stop();
  });

  it('dead-letters a value that is not a JSON object with the reason, and commits past it', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    await produce(1, 9, (n) => (n === 5 ? '{"n": 5, broken' : n === 7 ? '[7]' : JSON.stringify({ n })));
    const p = await pipeline(t, k);
    await until(() => p.out().written.length >= 7 && p.dead().length >= 2, '7 events and 2 dead letters', 60_000);
    assert.deepEqual(
      numbers(p.out().written).sort((a, b) => a - b),
      [1, 2, 3, 4, 6, 8, 9],
    );
    const dead = p.dead();
    const broken = dead.find((e) => e.message === '{"n": 5, broken')!;
    assert.ok(broken, JSON.stringify(dead));
    assert.equal(broken._id, idOf(5));
    assert.match(
      (broken._dead_letter as { reason: string }).reason,
      /kafka source: message logs:2:1 is not valid JSON/,
    );
    const array = dead.find((e) => e.message === '[7]')!;
    assert.match(JSON.stringify(array), /is JSON but not an object \(an array\)/);
    assert.equal(await metric(p, 'fluxo_kafka_source_messages_malformed_total'), 2);
    await untilAsync(async () => (await committed(t, k, 'agg')).join() === '3,3,3', 'committed past the dead letters');
    await p.stop();
  });

  it('reads record batches another producer compressed (librdkafka: gzip, snappy, lz4, zstd), on every Node', async (t) => {
    const k = await cluster(t);
    const codecs = ['gzip', 'snappy', 'lz4', 'zstd'] as const;
    // 500 per codec, produced by librdkafka in batches (linger 20 ms), so each batch is one compressed whole.
    for (const [i, codec] of codecs.entries()) await k.produce(TOPIC, codec, 1 + i * 500, 500);
    const p = await pipeline(t, k);
    await until(() => p.out().written.length >= 2000, '2000 events', 60_000);
    const { missing, duplicated } = checkSequence(numbers(p.out().written), 2000);
    assert.deepEqual({ missing, duplicated }, { missing: [], duplicated: [] });
    assert.equal(p.dead().length, 0);
    assert.ok(
      !p.lines.some((l) => /compression|zstd/i.test(String(l.msg ?? '') + String(l.err ?? ''))),
      'no codec error logged',
    );
    await p.stop();
  });

  it('decoding text: the value is the message', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    await produce(1, 6, (n) => `plain line ${n}`);
    const p = await pipeline(t, k, { decoding: 'text' });
    await until(() => p.out().written.length >= 6, '6 events', 60_000);
    const messages = p.out().written.map((e) => e.message as string);
    assert.deepEqual(messages.sort(), [1, 2, 3, 4, 5, 6].map((n) => `plain line ${n}`).sort());
    const e = p.out().written.find((x) => x.message === 'plain line 2')!;
    assert.equal(e._id, idOf(2));
    assert.equal((e.kafka as { partition: number }).partition, 2);
    assert.equal(p.dead().length, 0);
    await p.stop();
  });

  it('max_inflight bounds what the source holds while the sink stalls', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    await produce(1, 120);
    const p = await pipeline(t, k, { max_inflight: 20, batch_size: 10 });
    p.out().behaviour = 'stall';
    await until(() => p.out().attempts >= 1, 'the first write', 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const count = await metric(p, 'fluxo_component_received_events_total', 'component_id="in"');
    assert.ok(count <= 20, `at most max_inflight events taken while stalled, got ${count}`);
    p.out().release();
    await until(() => p.out().written.length >= 120, 'all 120 after the release', 60_000);
    const { missing, duplicated } = checkSequence(numbers(p.out().written), 120);
    assert.deepEqual({ missing, duplicated }, { missing: [], duplicated: [] });
    await p.stop();
  });

  it('two members of one group share the partitions: each gets some, together all, duplicates only with one _id', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    await produce(1, 150);
    const a = await pipeline(t, k);
    await until(() => a.out().written.length >= 150, 'the first member read the first 150', 60_000);
    const b = await pipeline(t, k);
    await until(
      () => b.lines.some((l) => l.msg === 'kafka source: partitions assigned' && (l.partitions as string[]).length > 0),
      'the second member got partitions',
      60_000,
    );
    await produce(151, 150);
    const all = () => [...a.out().written, ...b.out().written];
    await until(() => checkSequence(numbers(all()), 300).missing.length === 0, 'all 300 across both', 60_000);
    const fromA = new Set(
      a
        .out()
        .written.filter((e) => (e.n as number) > 150)
        .map((e) => (e.kafka as { partition: number }).partition),
    );
    const fromB = new Set(
      b
        .out()
        .written.filter((e) => (e.n as number) > 150)
        .map((e) => (e.kafka as { partition: number }).partition),
    );
    assert.ok(fromB.size > 0 && fromA.size > 0, `both read after the rebalance: a ${[...fromA]}, b ${[...fromB]}`);
    assert.deepEqual(
      [...fromA].filter((x) => fromB.has(x)),
      [],
      'after the rebalance each partition is read by one member',
    );
    assertOneIdPerNumber(all());
    await b.stop();
    await a.stop();
  });

  it('a partition taken away while its batch waits in a stalled sink is given up after rebalance_timeout, uncommitted: the new owner reads it', async (t) => {
    const k = await cluster(t);
    const produce = await producer(t, k);
    await produce(1, 30);
    const a = await pipeline(t, k);
    a.out().behaviour = 'stall';
    await until(() => a.out().attempts >= 1, 'the first member holds the messages in its stalled sink', 30_000);
    const b = await pipeline(t, k);
    await until(
      () => b.lines.some((l) => l.msg === 'kafka source: partitions assigned' && (l.partitions as string[]).length > 0),
      'the second member got partitions',
      60_000,
    );
    const taken = (b.lines.find((l) => l.msg === 'kafka source: partitions assigned')!.partitions as string[]).map(
      (x) => Number(x.split(':')[1]),
    );
    await until(() => b.out().written.length >= 10 * taken.length, 'the new owner read the taken partitions', 60_000);
    assert.deepEqual(
      [
        ...new Set(
          b
            .out()
            .written.map((e) => e.n as number)
            .map((n) => n % 3),
        ),
      ].sort(),
      [...taken].sort(),
      'the new owner reads only its partitions',
    );
    await untilAsync(
      async () => (await metric(a, 'fluxo_kafka_source_messages_given_up_total')) === 10 * taken.length,
      'the first member gave up the taken partitions after rebalance_timeout',
    );
    a.out().release();
    await until(() => a.out().written.length >= 30, 'the stalled batch delivered after the release', 30_000);
    assertOneIdPerNumber([...a.out().written, ...b.out().written]);
    const expected = [0, 1, 2].map(() => 10);
    await untilAsync(
      async () => (await committed(t, k, 'agg')).join() === expected.join(),
      'every partition committed',
    );
    await b.stop();
    await a.stop();
  });
});
