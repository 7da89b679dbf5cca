import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Producer as KafkaProducer } from '@platformatic/kafka';
import { tempDir } from '../helpers/context.ts';
import { checkSequence, FluxoProcess, readNdjsonDir } from '../helpers/fluxo-process.ts';
import { startKafkaMock } from '../helpers/servers/kafka.ts';

// `fluxo run` reading a Kafka consumer group into files, killed with SIGKILL mid-stream and started again: the
// group re-reads what the killed process had not committed, so every number is written, and a number written
// twice has one _id (<topic>:<partition>:<offset>).

function config(dir: string, bootstrap: string[]): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 10s
sources:
  bus:
    type: kafka
    bootstrap_servers: [${bootstrap.join(', ')}]
    topics: [logs]
    group_id: aggregators
    commit_interval: 200ms
    fetch_max_wait: 100ms
    heartbeat_interval: 300ms
    session_timeout: 3s
    rebalance_timeout: 3s
    batch_size: 100
    max_inflight: 500
sinks:
  out:
    type: file
    inputs: [bus]
    path: "${dir}/out/part.ndjson"
    max_file_age: 1s
`;
}

const ready = (p: FluxoProcess) => p.waitFor(/api (http:\/\/\S+)/, 120_000);
const written = (p: FluxoProcess) => p.metric('fluxo_component_sent_events_total', { component_id: 'out' });

async function waitFor(check: () => Promise<boolean>, what: string, maxMs = 120_000): Promise<void> {
  const end = Date.now() + maxMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kafka source: kill -9 of fluxo', { timeout: 300_000 }, () => {
  it('a restarted process re-reads what was not committed: every number, duplicates only with one _id', async (t) => {
    const k = await startKafkaMock(t);
    if (!k) return;
    await k.createTopic('logs', 3, 1);
    const { Producer, stringSerializers } = await import('@platformatic/kafka');
    const producer: KafkaProducer<string, string, string, string> = new Producer({
      clientId: 'test-producer',
      bootstrapBrokers: k.bootstrap,
      idempotent: true,
      acks: -1,
      producerId: -1n,
      producerEpoch: -1,
      serializers: stringSerializers,
    });
    t.after(() => producer.close(true));
    const total = 3000;
    const produce = async () => {
      for (let start = 1; start <= total; start += 200) {
        const messages = [];
        for (let n = start; n < start + 200; n++) {
          messages.push({ topic: 'logs', key: `k${n}`, value: JSON.stringify({ n }), partition: n % 3 });
        }
        await producer.send({ messages });
        // Spread over a few seconds, so the kill lands mid-stream.
        await new Promise((r) => setTimeout(r, 20));
      }
    };

    const dir = tempDir(t, 'fluxo-kafka-kill-');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'fluxo.yaml'), config(dir, k.bootstrap));
    const processes: FluxoProcess[] = [];
    t.after(async () => {
      for (const p of processes) await p.stop('SIGKILL');
    });
    const start = () => {
      const p = new FluxoProcess(['run', '-c', join(dir, 'fluxo.yaml')]);
      processes.push(p);
      return p;
    };

    const began = Date.now();
    let p = start();
    await ready(p);
    const readyAt = Date.now();
    const producing = produce();
    await waitFor(async () => (await written(p)) >= 600, '600 written before the kill');
    t.diagnostic(`first process: ready in ${readyAt - began} ms, 600 written ${Date.now() - readyAt} ms later`);
    const killedAt = await written(p);
    await p.stop('SIGKILL');
    await producing;

    const restartedAt = Date.now();
    p = start();
    await ready(p);
    const remaining = async () => {
      const numbers = readNdjsonDir(join(dir, 'out')).map((e) => Number(e.n));
      return checkSequence(numbers, total).missing.length;
    };
    // Files are visible once finalized (max_file_age): the restarted one finalizes the killed one's too.
    await waitFor(async () => (await remaining()) === 0, 'every number in the finalized files');
    t.diagnostic(`the restarted process wrote the rest in ${Date.now() - restartedAt} ms`);
    assert.equal(await p.stop(), 0, p.stderr);
    const events = readNdjsonDir(join(dir, 'out'));
    const { missing, duplicated } = checkSequence(
      events.map((e) => Number(e.n)),
      total,
    );
    assert.deepEqual(missing, [], `${missing.length} numbers missing`);
    const ids = new Map<number, unknown>();
    for (const e of events) {
      const n = Number(e.n);
      if (ids.has(n)) assert.equal(e._id, ids.get(n), `both copies of ${n} have one _id`);
      else ids.set(n, e._id);
      assert.equal(e._id, `logs:${n % 3}:${Math.floor((n - 1) / 3)}`);
    }
    t.diagnostic(`killed after ${killedAt} written; ${duplicated.length} numbers written twice`);
  });
});
