import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { tempDir } from '../helpers/context.ts';
import { checkSequence, FluxoProcess, readNdjsonDir } from '../helpers/fluxo-process.ts';
import { startNatsServer } from '../helpers/servers/nats.ts';
import { startRedis } from '../helpers/servers/redis.ts';

// An aggregator pool on the stream engine: several `fluxo run` processes on one NATS durable consumer (or one
// Redis consumer group), each writing its own files. Together they must write every event; a kill -9 of one
// may only duplicate what it had not acknowledged, with the same _id.

function natsAggregator(dir: string, url: string): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 10s
sources:
  bus:
    type: nats
    servers: ["${url}"]
    stream: LOGS
    durable: aggregators
    ack_wait: 2s
    max_ack_pending: 200
    batch_size: 50
    fetch_wait: 1s
sinks:
  out:
    type: file
    inputs: [bus]
    path: "${dir}/out/part.ndjson"
    max_file_age: 1s
`;
}

function redisAggregator(dir: string, url: string, consumer: string): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 10s
sources:
  bus:
    type: redis
    endpoint: ${url}
    key: logs
    group: aggregators
    consumer: ${consumer}
    claim_idle: 2s
    block: 200ms
    count: 50
    max_pending: 200
sinks:
  out:
    type: file
    inputs: [bus]
    path: "${dir}/out/part.ndjson"
    max_file_age: 1s
`;
}

/** Starts `fluxo run` on the config in `dir`; killed when the test ends. */
function pool(t: TestContext) {
  const processes: FluxoProcess[] = [];
  t.after(async () => {
    for (const p of processes) await p.stop('SIGKILL');
  });
  return (dir: string, yaml: string): FluxoProcess => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'fluxo.yaml'), yaml);
    const p = new FluxoProcess(['run', '-c', join(dir, 'fluxo.yaml')]);
    processes.push(p);
    return p;
  };
}

/** Up: the banner names the API. Generous: a start takes seconds on a loaded machine. */
const ready = (p: FluxoProcess) => p.waitFor(/api (http:\/\/\S+)/, 120_000);

const written = (p: FluxoProcess) => p.metric('fluxo_component_sent_events_total', { component_id: 'out' });

async function waitFor(check: () => Promise<boolean>, what: string, maxMs = 120_000): Promise<void> {
  const end = Date.now() + maxMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Output {
  n: number;
  _id: unknown;
  from: string;
  /** nats.delivered: 2 or more for a message the server delivered again. */
  delivered: number;
}

function outputs(dirs: Record<string, string>): Output[] {
  const all: Output[] = [];
  for (const [from, dir] of Object.entries(dirs)) {
    for (const e of readNdjsonDir(join(dir, 'out')))
      all.push({
        n: Number(e.n),
        _id: e._id,
        from,
        delivered: Number((e.nats as { delivered?: number })?.delivered ?? 1),
      });
  }
  return all;
}

/** Each duplicated number: all its copies share one _id, and one copy was written by `killed`. */
function checkDuplicates(all: Output[], duplicated: number[], killed: string): void {
  const copies = new Map<number, Output[]>();
  for (const o of all) copies.set(o.n, [...(copies.get(o.n) ?? []), o]);
  for (const n of duplicated) {
    const c = copies.get(n)!;
    assert.equal(new Set(c.map((o) => o._id)).size, 1, `number ${n}: its copies share one _id`);
    assert.ok(
      c.some((o) => o.from === killed),
      `number ${n} is duplicated but the killed process never had it: ${JSON.stringify(c)}`,
    );
  }
}

describe('stream consumers scale out', { timeout: 480_000 }, () => {
  it('two fluxo processes on one NATS durable: every number once; kill -9 of one duplicates only what it held', async (t) => {
    const nats = await startNatsServer(t);
    if (!nats) return;
    const nc = await connect({ servers: nats.url });
    t.after(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'LOGS', subjects: ['logs.>'] });
    const js = jetstream(nc);
    const publish = async (from: number, to: number) => {
      for (let n = from; n <= to; n++) await js.publish('logs.app', JSON.stringify({ n, message: `event ${n}` }));
    };
    const run = pool(t);
    const dir = tempDir(t, 'fluxo-scale-nats-');
    const dirs = { a: join(dir, 'a'), b: join(dir, 'b') };

    // 1. The normal case: both pull, every number is written once across the two outputs.
    let a = run(dirs.a, natsAggregator(dirs.a, nats.url));
    let b = run(dirs.b, natsAggregator(dirs.b, nats.url));
    await Promise.all([ready(a), ready(b)]);
    await waitFor(async () => {
      const info = await jsm.consumers.info('LOGS', 'aggregators').catch(() => undefined);
      return info !== undefined && info.num_waiting >= 2;
    }, 'a pull request of each process');
    await publish(1, 2000);
    await waitFor(async () => (await written(a)) + (await written(b)) >= 2000, '2000 written');
    const shares = [await written(a), await written(b)];
    assert.equal(await a.stop(), 0, a.stderr);
    assert.equal(await b.stop(), 0, b.stderr);
    {
      const all = outputs(dirs);
      assert.deepEqual(
        checkSequence(
          all.map((o) => o.n),
          2000,
        ),
        { missing: [], duplicated: [] },
      );
      assert.equal(all.length, 2000);
      t.diagnostic(`normal case: a wrote ${shares[0]}, b wrote ${shares[1]}`);
      assert.ok(shares[0]! > 0 && shares[1]! > 0, `both took part (${shares})`);
    }
    a = run(dirs.a, natsAggregator(dirs.a, nats.url));
    b = run(dirs.b, natsAggregator(dirs.b, nats.url));
    await Promise.all([ready(a), ready(b)]);

    // 2. A kill -9 of one mid-stream: the server redelivers what it held after ack_wait, to the other.
    const total = 6000;
    const publishing = publish(2001, total);
    const killedAt = await (async () => {
      await waitFor(async () => (await written(a)) >= 300, 'a writing again');
      return written(a);
    })();
    await a.stop('SIGKILL');
    const orphans = (await jsm.consumers.info('LOGS', 'aggregators')).num_ack_pending;
    await publishing;
    await waitFor(async () => {
      const info = await jsm.consumers.info('LOGS', 'aggregators');
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 'every message acknowledged by the survivor');
    // The killed one starts again to finalize the files the crash left (they hold what it acknowledged).
    a = run(dirs.a, natsAggregator(dirs.a, nats.url));
    await ready(a);
    assert.equal(await a.stop(), 0, a.stderr);
    assert.equal(await b.stop(), 0, b.stderr);
    const all = outputs(dirs);
    const { missing, duplicated } = checkSequence(
      all.map((o) => o.n),
      total,
    );
    assert.deepEqual(missing, [], `${missing.length} numbers missing`);
    const redelivered = all.filter((o) => o.from === 'b' && o.delivered >= 2).length;
    t.diagnostic(
      `kill case: a had written ${killedAt} before the kill; ${orphans} unacknowledged in the pool at the kill; ` +
        `${redelivered} redelivered to b; ${duplicated.length} duplicates`,
    );
    // At most what the killed process could hold unacknowledged: max_ack_pending, plus its file's unsynced tail.
    assert.ok(duplicated.length <= 400, `${duplicated.length} duplicates`);
    checkDuplicates(all, duplicated, 'a');
  });

  it('two fluxo processes in one Redis consumer group: kill -9 of one, its entries are claimed by the other', async (t) => {
    const redis = await startRedis(t, { appendonly: true });
    if (!redis) return;
    let lastId = '';
    const add = async (from: number, to: number) => {
      for (let n = from; n <= to; n++) {
        lastId = String(
          await redis.client.sendCommand([
            'XADD',
            'logs',
            '*',
            'message',
            JSON.stringify({ n, message: `event ${n}` }),
          ]),
        );
      }
    };
    /** The group's last-delivered-id (XINFO GROUPS; node-redis gives each group as a flat list or an object). */
    const lastDelivered = async (): Promise<string> => {
      const groups = (await redis.client.sendCommand(['XINFO', 'GROUPS', 'logs'])) as unknown[];
      const g = groups[0] as unknown[] | Record<string, unknown>;
      if (Array.isArray(g)) return String(g[g.indexOf('last-delivered-id') + 1]);
      return String(g['last-delivered-id']);
    };
    const run = pool(t);
    const dir = tempDir(t, 'fluxo-scale-redis-');
    const dirs = { a: join(dir, 'a'), b: join(dir, 'b') };
    await redis.client.sendCommand(['XGROUP', 'CREATE', 'logs', 'aggregators', '0', 'MKSTREAM']);
    let a = run(dirs.a, redisAggregator(dirs.a, redis.url, 'a'));
    const b = run(dirs.b, redisAggregator(dirs.b, redis.url, 'b'));
    await Promise.all([ready(a), ready(b)]);
    const total = 4000;
    const adding = add(1, total);
    await waitFor(async () => (await written(a)) >= 300, 'a writing');
    const killedAt = await written(a);
    await a.stop('SIGKILL');
    // What the dead member read and had not acknowledged: the survivor must claim exactly these.
    const orphans = (await redis.client.sendCommand([
      'XPENDING',
      'logs',
      'aggregators',
      '-',
      '+',
      '1000',
      'a',
    ])) as unknown[];
    await adding;
    // b claims what a read and never acknowledged once it is idle for claim_idle.
    await waitFor(async () => {
      const pending = (await redis.client.sendCommand(['XPENDING', 'logs', 'aggregators'])) as unknown[];
      return Number(pending[0]) === 0 && (await lastDelivered()) === lastId;
    }, 'every entry acknowledged by the survivor');
    a = run(dirs.a, redisAggregator(dirs.a, redis.url, 'a'));
    await ready(a);
    assert.equal(await a.stop(), 0, a.stderr);
    assert.equal(await b.stop(), 0, b.stderr);
    const all = outputs(dirs);
    const { missing, duplicated } = checkSequence(
      all.map((o) => o.n),
      total,
    );
    assert.deepEqual(missing, [], `${missing.length} numbers missing`);
    t.diagnostic(
      `redis kill case: a had written ${killedAt} before the kill, ${orphans.length} read and not acknowledged; ${duplicated.length} duplicates`,
    );
    if (orphans.length > 0) assert.match(b.stderr, /redis source claimed idle entries/);
    assert.ok(duplicated.length <= 400, `${duplicated.length} duplicates`);
    checkDuplicates(all, duplicated, 'a');
  });
});
