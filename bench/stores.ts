/**
 * Benchmark of the serving stores: socket (TCP lines) → postgres, and socket → clickhouse. The stores are real
 * servers started here in temporary directories (PostgreSQL 15 on a free port, clickhouse-server 18.16), Fluxo
 * runs as a user runs it (`node bin/fluxo.js run -c <config>`), and the load (20 connections sending lines as
 * fast as Fluxo reads them, honouring backpressure) runs in this process, so its CPU is not Fluxo's.
 *
 *   npm run bench:stores
 *   node --import tsx bench/stores.ts --scenario socket-postgres --duration 20s
 *
 * A run: start the store and Fluxo, start the load, wait `--warmup`, sample Fluxo's CPU (all threads), its
 * delivered counter and the rows in the table, wait `--duration`, sample again. One JSON line per scenario:
 * rows_per_s is what arrived in the table in that window, events_per_cpu_s what Fluxo delivered per second of
 * its own CPU. The stores' CPU is not counted (they share the machine, so the figures are of this machine).
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/units.ts';
import { FluxoProcess } from '../test/helpers/fluxo-process.ts';
import { startClickHouse } from '../test/helpers/servers/clickhouse.ts';
import { startPostgres } from '../test/helpers/servers/postgres.ts';
import { fluxoRunsCompiled } from './lib/children.ts';
import { CLK_TCK, type CpuTimes, cpuDelta, cpuTimes, loadAverage1m, machine } from './lib/proc.ts';
import { scope } from './lib/scope.ts';
import { openSockets } from './lib/sockets.ts';

type Store = 'postgres' | 'clickhouse';
const SCENARIOS: Store[] = ['postgres', 'clickhouse'];
/** Writes in flight per sink: both cores busy on the store's side while Fluxo encodes the next batches. */
let CONCURRENCY = 3;

interface StoreUnderTest {
  sink: string;
  rows(): Promise<number>;
  /** CPU time of the store's processes so far. */
  cpu(): CpuTimes;
}

/**
 * CPU of a process and its children (the postmaster and its backends, each of which is its own session): every
 * live one's own time, plus what the parent collected of children that exited (cutime/cstime), so a backend
 * that ended within the window still counts.
 */
function treeCpu(leader: number): CpuTimes {
  let user = 0;
  let sys = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[1] is field 4 (ppid); utime 14, stime 15, cutime 16, cstime 17 are f[11..14].
    if (Number(name) !== leader && Number(f[1]) !== leader) continue;
    user += Number(f[11]);
    sys += Number(f[12]);
    if (Number(name) === leader) {
      user += Number(f[13]);
      sys += Number(f[14]);
    }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK };
}

async function startStore(store: Store, t: TestContext): Promise<StoreUnderTest> {
  if (store === 'postgres') {
    const pg = (await startPostgres(t))!;
    await pg.query('CREATE TABLE logs (_id text PRIMARY KEY, ts timestamptz, host text, message text)');
    return {
      sink: `type: postgres
    endpoint: ${pg.url}
    table: logs
    columns: { ts: timestamp, host: host, message: message }
    pool_size: ${CONCURRENCY + 1}
    concurrency: ${CONCURRENCY}`,
      rows: async () => Number((await pg.query<{ c: string }>('SELECT count(*) AS c FROM logs'))[0]!.c),
      cpu: () => treeCpu(pg.pid!),
    };
  }
  const ch = (await startClickHouse(t))!;
  await ch.query(
    'CREATE TABLE logs (_id String, timestamp DateTime, host String, message String) ' +
      'ENGINE = ReplacingMergeTree ORDER BY _id',
  );
  return {
    sink: `type: clickhouse
    endpoint: ${ch.url}
    table: logs
    concurrency: ${CONCURRENCY}`,
    rows: async () => Number((await ch.query('SELECT count() FROM logs')).trim()),
    cpu: () => cpuTimes(ch.pid!),
  };
}

/** A chunk of ~64 KiB of access-log-like lines, sent again and again. */
function chunk(): string {
  let out = '';
  for (let i = 0; out.length < 64 * 1024; i++) {
    out += `10.0.${i % 250}.${i % 200} - - [02/Dec/2026:03:00:00 +0000] "GET /api/items/${i} HTTP/1.1" 200 ${512 + i} "-" "bench"\n`;
  }
  return out;
}

async function run(store: Store, durationMs: number, warmupMs: number, batch: number) {
  const s = scope();
  const dir = mkdtempSync(join(tmpdir(), 'fluxo-bench-stores-'));
  s.t.after(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const target = await startStore(store, s.t);
    const yaml = `data_dir: ${join(dir, 'data')}
api: { address: 127.0.0.1:0 }
sources:
  src: { type: socket, mode: tcp, address: 127.0.0.1:0 }
sinks:
  out:
    inputs: [src]
    batch: { max_events: ${batch}, timeout: 50ms }
    ${target.sink}
`;
    const file = join(dir, 'fluxo.yaml');
    writeFileSync(file, yaml);
    const fluxo = new FluxoProcess(['run', '-c', file]);
    s.t.after(() => fluxo.stop('SIGKILL'));
    const port = await fluxo.port('src');
    const sockets: Socket[] = await openSockets(port, 20);
    const body = chunk();
    let running = true;
    const senders = sockets.map(async (socket) => {
      socket.on('error', () => {});
      while (running) {
        if (!socket.write(body)) await new Promise((r) => socket.once('drain', r));
      }
      socket.destroy();
    });
    const sample = async () => ({
      at: performance.now(),
      cpu: cpuTimes(fluxo.child.pid!),
      storeCpu: target.cpu(),
      delivered: await fluxo.metric('fluxo_component_sent_events_total', { component_id: 'out' }),
      rows: await target.rows(),
    });
    await new Promise((r) => setTimeout(r, warmupMs));
    const a = await sample();
    await new Promise((r) => setTimeout(r, durationMs));
    const b = await sample();
    running = false;
    await Promise.race([Promise.all(senders), new Promise((r) => setTimeout(r, 2000))]);
    const seconds = (b.at - a.at) / 1000;
    const cpu = cpuDelta(a.cpu, b.cpu);
    const cpuSeconds = cpu.user + cpu.sys;
    const storeCpu = cpuDelta(a.storeCpu, b.storeCpu);
    const storeSeconds = storeCpu.user + storeCpu.sys;
    return {
      bench: 'stores',
      scenario: `socket-${store}`,
      rows_per_s: Math.round((b.rows - a.rows) / seconds),
      delivered_per_s: Math.round((b.delivered - a.delivered) / seconds),
      events_per_cpu_s: Math.round((b.delivered - a.delivered) / cpuSeconds),
      fluxo_cpu_pct: Math.round((cpuSeconds / seconds) * 100),
      rows_per_store_cpu_s: Math.round((b.rows - a.rows) / storeSeconds),
      store_cpu_pct: Math.round((storeSeconds / seconds) * 100),
      batch_max_events: batch,
      concurrency: CONCURRENCY,
      seconds: Math.round(seconds * 10) / 10,
      compiled: fluxoRunsCompiled(),
      load_1m: loadAverage1m(),
    };
  } finally {
    await s.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      duration: { type: 'string', default: '10s' },
      warmup: { type: 'string', default: '3s' },
      batch: { type: 'string', default: '5000' },
      concurrency: { type: 'string', default: '3' },
    },
  });
  const wanted = values.scenario?.flatMap((v) => v.split(',')).map((v) => v.replace(/^socket-/, ''));
  const stores = wanted ? SCENARIOS.filter((s) => wanted.includes(s)) : SCENARIOS;
  CONCURRENCY = Number(values.concurrency);
  const host = machine();
  for (const store of stores) {
    const result = await run(
      store,
      parseDuration(values.duration)!,
      parseDuration(values.warmup)!,
      Number(values.batch),
    );
    process.stdout.write(`${JSON.stringify({ ...result, machine: host })}\n`);
  }
}

await main();
