import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { checkSequence, FluxoProcess, readNdjsonDir } from '../helpers/fluxo-process.ts';

/** An aggregator: forward source → file sink (fsync before the ack). */
function aggregatorConfig(dir: string, port: number): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 20s
sources:
  fwd: { type: forward, address: 127.0.0.1:${port} }
sinks:
  out:
    type: file
    inputs: [fwd]
    path: "${dir}/out/part.ndjson"
    max_file_age: 2s
`;
}

/** An agent: numbered generator events → forward sink to both aggregators. */
function agentConfig(dir: string, ports: number[], count: number, rate: number): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 60s
sources:
  gen: { type: generator, format: apache_combined, rate: ${rate}, count: ${count}, batch_size: 100, seed: 7 }
sinks:
  aggregators:
    type: forward
    inputs: [gen]
    servers:
${ports.map((p) => `      - { address: "127.0.0.1:${p}" }`).join('\n')}
    heartbeat_interval: 200ms
    ack_timeout: 10s
    concurrency: 2
    batch: { max_events: 500 }
    retry: { initial_backoff: 50ms, max_backoff: 1s }
`;
}

function start(dir: string, yaml: string): FluxoProcess {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'fluxo.yaml'), yaml);
  return new FluxoProcess(['run', '-c', join(dir, 'fluxo.yaml')]);
}

const delivered = (p: FluxoProcess) => p.metric('fluxo_component_sent_events_total', { component_id: 'out' });

describe('agent → two aggregators over forward', { timeout: 120_000 }, () => {
  it('kill -9 of one aggregator mid-stream and its restart lose no sequence number', async (t) => {
    const dir = tempDir(t);
    // 20 s of generator at 3,000 events/s: the stream must outlast the first aggregator's restart even on a
    // loaded machine (a slow start there once let the agent finish first, with nothing left for it).
    const count = 60_000;
    const processes: FluxoProcess[] = [];
    t.after(async () => {
      for (const p of processes) await p.stop('SIGKILL');
    });
    const run = (sub: string, yaml: string) => {
      const p = start(join(dir, sub), yaml);
      processes.push(p);
      return p;
    };

    let agg1 = run('agg1', aggregatorConfig(join(dir, 'agg1'), 0));
    const agg2 = run('agg2', aggregatorConfig(join(dir, 'agg2'), 0));
    const port1 = await agg1.port('fwd');
    const port2 = await agg2.port('fwd');
    const agent = run('agent', agentConfig(join(dir, 'agent'), [port1, port2], count, 3000));

    // Both aggregators take part, then the first dies without any chance to flush or answer.
    await agg1.waitForMetric('fluxo_component_sent_events_total', { component_id: 'out' }, (v) => v >= 2000);
    const beforeKill = await delivered(agg2);
    assert.ok(beforeKill > 0, 'the second aggregator had writes too');
    await agg1.stop('SIGKILL');
    // The stream goes on through the survivor...
    await agg2.waitForMetric(
      'fluxo_component_sent_events_total',
      { component_id: 'out' },
      (v) => v >= beforeKill + 3000,
    );
    // ...and the first comes back on its port, finalizing the files the crash left.
    agg1 = run('agg1', aggregatorConfig(join(dir, 'agg1'), port1));
    await agg1.port('fwd');

    assert.equal(await agent.exit(), 0, `agent:\n${agent.stderr}`);
    assert.match(agent.stderr, /stopped: everything delivered/);
    const afterRestart = await delivered(agg1);
    assert.ok(afterRestart > 0, 'the restarted aggregator received writes again');
    assert.equal(await agg1.stop(), 0);
    assert.equal(await agg2.stop(), 0);

    const events = [...readNdjsonDir(join(dir, 'agg1', 'out')), ...readNdjsonDir(join(dir, 'agg2', 'out'))];
    const { missing, duplicated } = checkSequence(
      events.map((e) => Number(e.sequence)),
      count,
    );
    assert.deepEqual(missing, [], `${missing.length} sequence numbers missing`);
    t.diagnostic(
      `${events.length} events written for ${count} generated: ${duplicated.length} duplicates (sent again after the kill; same _id)`,
    );
    for (const e of events.slice(0, 100)) {
      assert.equal(e.source_type, 'forward');
      assert.match(String(e.message), new RegExp(`[?&]seq=${e.sequence} HTTP`), 'message and sequence travel together');
      assert.equal(typeof e._id, 'string');
    }
    // A duplicate carries the agent's event id, so the batch layer can drop it.
    const ids = new Map<number, Set<unknown>>();
    for (const e of events) {
      const s = Number(e.sequence);
      if (!ids.has(s)) ids.set(s, new Set());
      ids.get(s)!.add(e._id);
    }
    for (const s of duplicated) assert.equal(ids.get(s)!.size, 1, `sequence ${s}: one _id for its copies`);
  });
});
