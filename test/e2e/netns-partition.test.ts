import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../helpers/context.ts';
import { checkSequence, readNdjsonDir } from '../helpers/fluxo-process.ts';
import { listNamespaces, NetnsLab, requireNetns } from '../helpers/netns.ts';

const BIN = new URL('../../bin/fluxo.js', import.meta.url).pathname;
const AGENT_YAML = new URL('../../examples/agent.yaml', import.meta.url).pathname;
const AGGREGATOR_YAML = new URL('../../examples/aggregator.yaml', import.meta.url).pathname;

const AGENTS = ['agent1', 'agent2'] as const;
const LINES_PER_AGENT = 20_000;
const LINES_PER_TICK = 40; // every 100 ms: 400 lines/s per agent, 50 s of writing
const FORWARD_PORT = 24224;

/** `fluxo run` in a namespace: stderr kept for the failure message, and the banner awaited. */
class NamespacedFluxo {
  stderr = '';
  readonly exited: Promise<unknown>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      if (process.env.FLUXO_TEST_LOG) process.stderr.write(`[${name}] ${d}`);
    });
    child.stdout!.resume();
    this.exited = once(child, 'exit');
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (this.child.exitCode !== null)
        throw new Error(`${this.name} exited (${this.child.exitCode}):\n${this.stderr}`);
      if (Date.now() > end) throw new Error(`${this.name}: timed out waiting for ${pattern}:\n${this.stderr}`);
      await sleep(20);
    }
  }

  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** The events under an aggregator's archive; none may be a dead letter. */
function archived(outDir: string): Record<string, unknown>[] {
  try {
    return readNdjsonDir(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

describe('agents and aggregators in network namespaces', { timeout: 150_000 }, () => {
  it('a partition, a slow lossy link and a kill -9 lose no line; copies share their _id', async (t) => {
    if (!requireNetns(t)) return;
    const dir = tempDir(t);
    const lab = new NetnsLab(t, ['aggA', 'aggB', ...AGENTS]);
    let writer: NodeJS.Timeout | undefined;
    t.after(() => clearInterval(writer));
    t.after(() => {
      const left = lab.leftovers();
      assert.deepEqual(left, [], `namespaces left behind: ${left.join(', ')} (all: ${listNamespaces().join(', ')})`);
    });

    const fluxo = (node: string, config: string, env: Record<string, string>) =>
      new NamespacedFluxo(
        node,
        lab.exec(node, process.execPath, [BIN, 'run', '-c', config], {
          env: { ...process.env, FLUXO_API_ADDRESS: '127.0.0.1:0', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
    const aggregatorAddress = (node: string) => `${lab.node(node).ip}:${FORWARD_PORT}`;
    const outDir = (node: string) => join(dir, node, 'out');
    const aggregator = async (node: string) => {
      const p = fluxo(node, AGGREGATOR_YAML, {
        FLUXO_DATA_DIR: join(dir, node, 'data'),
        FLUXO_FORWARD_ADDRESS: aggregatorAddress(node),
        FLUXO_OUT_DIR: outDir(node),
        FLUXO_MAX_FILE_AGE: '1s',
      });
      await p.waitFor(
        new RegExp(`source agents \\([^)]*\\): listening on tcp ${lab.node(node).ip.replaceAll('.', '\\.')}:`),
      );
      return p;
    };

    const aggA = await aggregator('aggA');
    let aggB = await aggregator('aggB');
    const agents = AGENTS.map((node) => {
      mkdirSync(join(dir, node, 'logs'), { recursive: true });
      return fluxo(node, AGENT_YAML, {
        FLUXO_DATA_DIR: join(dir, node, 'data'),
        FLUXO_LOG_GLOB: join(dir, node, 'logs', '*.log'),
        AGGREGATOR_A: aggregatorAddress('aggA'),
        AGGREGATOR_B: aggregatorAddress('aggB'),
      });
    });

    // Numbered lines, appended at a steady rate to each agent's file for the whole run.
    let written = 0;
    const pad = 'x'.repeat(80);
    writer = setInterval(() => {
      const from = written + 1;
      written = Math.min(LINES_PER_AGENT, written + LINES_PER_TICK);
      for (const agent of AGENTS) {
        let chunk = '';
        for (let n = from; n <= written; n++) chunk += `${agent} seq=${n} ${pad}\n`;
        appendFileSync(join(dir, agent, 'logs', 'app.log'), chunk);
      }
      if (written === LINES_PER_AGENT) clearInterval(writer);
    }, 100);

    /** seq numbers received per agent, and the `_id`s each (agent, seq) arrived with. */
    const collect = () => {
      const perAggregator = { aggA: archived(outDir('aggA')), aggB: archived(outDir('aggB')) };
      const all = [...perAggregator.aggA, ...perAggregator.aggB];
      const seqs = new Map<string, number[]>(AGENTS.map((a) => [a, []]));
      const ids = new Map<string, Set<unknown>>();
      for (const e of all) {
        assert.equal(e._dead_letter, undefined, `a dead letter in the archive: ${JSON.stringify(e).slice(0, 300)}`);
        const m = /^(agent\d) seq=(\d+) /.exec(String(e.message));
        assert.ok(m, `unexpected event: ${JSON.stringify(e).slice(0, 300)}`);
        seqs.get(m[1]!)!.push(Number(m[2]));
        const key = `${m[1]} ${m[2]}`;
        if (!ids.has(key)) ids.set(key, new Set());
        ids.get(key)!.add(e._id);
      }
      return {
        counts: { aggA: perAggregator.aggA.length, aggB: perAggregator.aggB.length },
        seqs,
        ids,
        total: all.length,
      };
    };
    const everyone = () => [aggA, aggB, ...agents].map((p) => `--- ${p.name}\n${p.stderr.slice(-3000)}`).join('\n');
    const poll = async (what: string, done: (c: ReturnType<typeof collect>) => boolean, timeoutMs: number) => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const c = collect();
        if (done(c)) return c;
        if (Date.now() > end)
          throw new Error(`timed out waiting for ${what}: ${JSON.stringify(c.counts)}\n${everyone()}`);
        for (const p of [aggA, aggB, ...agents])
          if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}):\n${p.stderr}`);
        await sleep(250);
      }
    };

    // Both aggregators take part before any fault.
    await poll('writes on both aggregators', (c) => c.counts.aggA > 0 && c.counts.aggB > 0, 30_000);

    // Partition: aggregator A's link goes down for 20 s (no RST: connections and acks just stop).
    lab.linkDown('aggA');
    const atPartition = collect().counts;
    await sleep(20_000);
    lab.linkUp('aggA');
    const afterPartition = collect().counts;
    assert.ok(afterPartition.aggB > atPartition.aggB, 'B took the writes while A was cut off');

    // A slow and lossy link to B for 10 s.
    const impairment = lab.netem('aggB', '200ms', '5%');
    t.diagnostic(`aggB link: ${impairment.description}`);
    await sleep(10_000);
    t.diagnostic(`aggB link while impaired: ${lab.clearNetem('aggB')}`);

    // B dies without any chance to answer or flush, and comes back on its address.
    await aggB.kill9();
    aggB = await aggregator('aggB');

    const final = await poll(
      `all ${AGENTS.length} × ${LINES_PER_AGENT} lines`,
      (c) =>
        written === LINES_PER_AGENT &&
        AGENTS.every((a) => checkSequence(c.seqs.get(a)!, LINES_PER_AGENT).missing.length === 0),
      100_000,
    );
    for (const a of AGENTS) {
      const { missing } = checkSequence(final.seqs.get(a)!, LINES_PER_AGENT);
      assert.deepEqual(missing, [], `${a}: ${missing.length} lines missing`);
    }
    const copiesWithOtherIds = [...final.ids].filter(([, set]) => set.size > 1).map(([key]) => key);
    assert.deepEqual(copiesWithOtherIds.slice(0, 20), [], 'a line delivered twice carries the same _id each time');
    assert.ok(final.counts.aggA > afterPartition.aggA, 'A received writes again after the partition healed');
    t.diagnostic(
      `${final.total} events for ${AGENTS.length * LINES_PER_AGENT} lines (${final.total - final.ids.size} duplicates, same _id); ` +
        `aggA ${final.counts.aggA} (${atPartition.aggA} at the partition, ${afterPartition.aggA} after it), aggB ${final.counts.aggB}`,
    );
  });
});
