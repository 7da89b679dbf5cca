/**
 * The disk buffer benchmark (issue 4): Fluxo as a user runs it, fed over TCP, measured from outside, one JSON
 * line per scenario on stdout and a summary on stderr.
 *
 *   node --import tsx bench/disk-buffer.ts                       every scenario
 *   node --import tsx bench/disk-buffer.ts --scenario disk-blackhole,memory-blackhole --events 2000000
 *   node --import tsx bench/disk-buffer.ts --scenario q1-memory-file,q1-disk-file --q1-seconds 30
 *   node --import tsx bench/disk-buffer.ts --scenario disk-blackhole --profile-dir /tmp/prof   (node --cpu-prof)
 *   node --import tsx bench/disk-buffer.ts --scenario q1-memory-file,q1-disk-file --sink-batch '{ timeout: 0 }'
 *
 * Throughput scenarios (`*-blackhole`, `*-file`): 300 connections send pre-generated access-log lines as fast
 * as Fluxo takes them (bench/load-generator.ts); the run ends when the sink has every event. Reported: events/s
 * and MiB/s (from the first byte sent to the last event delivered), fsyncs/s and fsync latency p50/p99 of the
 * disk buffer (its histogram), Fluxo's CPU and peak RSS. Their disk buffers have `write_delay: 0`, so every
 * record is written and fsynced before the sink gets it: they measure the log's write path. (With the default
 * delay a blackhole would deliver nearly everything before it is due to be written.) `disk-file-delayed` has
 * the default delay.
 *
 * Q1 scenarios (`q1-*`): the production load of Q1, 10,000 events/s spread over 300 connections, for
 * `--q1-seconds`, from this script in sender mode (its own process). Throughput is fixed by the load, so what
 * "slower" means there is cost and delay: Fluxo's CPU per event and the end-to-end latency (source receipt to
 * sink delivery, from `fluxo_end_to_end_latency_seconds`), disk buffer against memory buffer.
 * `--q1-tick` (ms, default 50) is how often the sender writes what is due, round robin over the connections:
 * 50 sends in bursts that end each tick; 2 is close to 300 servers each sending on its own schedule. The Q1
 * disk scenarios use the default `write_delay` (100 ms) except `q1-disk-file-write-all` (0: every record written).
 */

import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AccessLogGenerator } from '../src/codecs/access-log.ts';
import { FluxoServer, type LoadGenerator, ROOT } from './lib/children.ts';
import { cpuDelta, cpuTimes, machine, nowMs, vmMiB } from './lib/proc.ts';
import { openSockets, startLoad, waitForConnections } from './lib/sockets.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    events: { type: 'string', default: '2000000' },
    connections: { type: 'string', default: '300' },
    'q1-rate': { type: 'string', default: '10000' },
    'q1-seconds': { type: 'string', default: '20' },
    'q1-tick': { type: 'string', default: '50' },
    'sink-batch': { type: 'string' },
    repeat: { type: 'string', default: '1' },
    echo: { type: 'boolean', default: false },
    'profile-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    // sender mode (a child of this script)
    sender: { type: 'boolean', default: false },
    port: { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    tick: { type: 'string', default: '50' },
  },
});

const MiB = 1024 * 1024;
const SOURCE = 'tcp';
const SINK = 'out';
const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nodeArgs = (name: string) =>
  values['profile-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${join(values['profile-dir'], name)}`] : [];

interface Scenario {
  name: string;
  description: string;
  kind: 'throughput' | 'q1';
  sink: (dir: string) => string;
  buffer: string;
}

const blackhole = () => `    type: blackhole\n    inputs: [${SOURCE}]`;
const file = (dir: string) =>
  `    type: file\n    inputs: [${SOURCE}]\n    path: "${dir}/out/dt=%Y-%m-%d/hour=%H/part.ndjson"`;
/** Every record written and fsynced before the sink gets it: the log's write path. */
const DISK_WRITE_ALL = '{ type: disk, max_size: 4GiB, sync: always, write_delay: 0 }';
/** The defaults (write_delay 100 ms): written only what the sink has not delivered within the delay. */
const DISK = '{ type: disk, max_size: 4GiB, sync: always }';
const MEMORY = '{ type: memory }';

const SCENARIOS: Scenario[] = [
  {
    name: 'memory-blackhole',
    description: 'socket → memory buffer → blackhole',
    kind: 'throughput',
    sink: blackhole,
    buffer: MEMORY,
  },
  {
    name: 'disk-blackhole',
    description: 'socket → disk buffer (sync: always, write_delay: 0) → blackhole',
    kind: 'throughput',
    sink: blackhole,
    buffer: DISK_WRITE_ALL,
  },
  {
    name: 'disk-blackhole-interval',
    description: 'socket → disk buffer (sync: interval, 1 s, write_delay: 0) → blackhole',
    kind: 'throughput',
    sink: blackhole,
    buffer: '{ type: disk, max_size: 4GiB, sync: interval, sync_interval: 1s, write_delay: 0 }',
  },
  {
    name: 'memory-file',
    description: 'socket → memory buffer → file (fdatasync per write)',
    kind: 'throughput',
    sink: file,
    buffer: MEMORY,
  },
  {
    name: 'disk-file',
    description: 'socket → disk buffer (sync: always, write_delay: 0) → file (fdatasync per write)',
    kind: 'throughput',
    sink: file,
    buffer: DISK_WRITE_ALL,
  },
  {
    name: 'disk-file-delayed',
    description: 'socket → disk buffer (sync: always, default write_delay) → file (fdatasync per write)',
    kind: 'throughput',
    sink: file,
    buffer: DISK,
  },
  {
    name: 'q1-memory-file',
    description: 'Q1 load (10,000 events/s, 300 connections) → memory buffer → file',
    kind: 'q1',
    sink: file,
    buffer: MEMORY,
  },
  {
    name: 'q1-memory-blackhole',
    description: 'Q1 load (10,000 events/s, 300 connections) → memory buffer → blackhole',
    kind: 'q1',
    sink: blackhole,
    buffer: MEMORY,
  },
  {
    name: 'q1-disk-blackhole',
    description: 'Q1 load (10,000 events/s, 300 connections) → disk buffer → blackhole',
    kind: 'q1',
    sink: blackhole,
    buffer: DISK,
  },
  {
    name: 'q1-disk-interval-file',
    description: 'Q1 load (10,000 events/s, 300 connections) → disk buffer (sync: interval, 1 s) → file',
    kind: 'q1',
    sink: file,
    buffer: '{ type: disk, max_size: 4GiB, sync: interval, sync_interval: 1s }',
  },
  {
    name: 'q1-disk-file',
    description: 'Q1 load (10,000 events/s, 300 connections) → disk buffer → file',
    kind: 'q1',
    sink: file,
    buffer: DISK,
  },
  {
    name: 'q1-disk-file-write-all',
    description: 'Q1 load (10,000 events/s, 300 connections) → disk buffer (write_delay: 0) → file',
    kind: 'q1',
    sink: file,
    buffer: DISK_WRITE_ALL,
  },
];

function config(dir: string, s: Scenario): string {
  return `# generated by bench/disk-buffer.ts
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 60s
sources:
  ${SOURCE}: { type: socket, mode: tcp, address: 127.0.0.1:0 }
sinks:
  ${SINK}:
${s.sink(dir)}
    buffer: ${s.buffer}${values['sink-batch'] ? `\n    batch: ${values['sink-batch']}` : ''}
`;
}

/** A quantile from a Prometheus histogram's cumulative buckets: the upper bound of the bucket it falls in. */
async function histogramQuantile(
  server: FluxoServer,
  name: string,
  q: number,
  bounds: number[],
): Promise<number | null> {
  const count = await server.metric(`${name}_count`, { component_id: SINK });
  if (count === 0) return null;
  for (const le of bounds) {
    if ((await server.metric(`${name}_bucket`, { component_id: SINK, le: String(le) })) >= q * count) return le;
  }
  return Number.POSITIVE_INFINITY;
}

const FSYNC_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const LATENCY_BOUNDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

async function diskFigures(server: FluxoServer, wallS: number, disk: boolean) {
  if (!disk) return {};
  const fsyncs = await server.metric('fluxo_disk_buffer_fsync_seconds_count', { component_id: SINK });
  const fsyncSum = await server.metric('fluxo_disk_buffer_fsync_seconds_sum', { component_id: SINK });
  const written = await server.metric('fluxo_disk_buffer_written_events_total', { component_id: SINK });
  // Delivered by the sink within write_delay, so never written.
  const unwritten = await server.metric('fluxo_disk_buffer_unwritten_events_total', { component_id: SINK });
  return {
    events_written: written,
    events_unwritten: unwritten,
    fsyncs,
    fsyncs_per_s: round(fsyncs / wallS),
    events_per_fsync: fsyncs > 0 ? round(written / fsyncs, 1) : null,
    fsync_mean_ms: fsyncs > 0 ? round((fsyncSum / fsyncs) * 1000, 3) : null,
    fsync_p50_ms_le: ms(await histogramQuantile(server, 'fluxo_disk_buffer_fsync_seconds', 0.5, FSYNC_BOUNDS)),
    fsync_p99_ms_le: ms(await histogramQuantile(server, 'fluxo_disk_buffer_fsync_seconds', 0.99, FSYNC_BOUNDS)),
  };
}

const ms = (s: number | null) => (s === null ? null : Number.isFinite(s) ? round(s * 1000, 3) : 'inf');

async function throughputRun(s: Scenario, dir: string, events: number, connections: number) {
  const server = new FluxoServer(join(dir, 'fluxo.yaml'), SOURCE, SINK, {
    cwd: ROOT,
    echo: values.echo,
    nodeArgs: nodeArgs(s.name),
  });
  let generator: LoadGenerator | undefined;
  try {
    await server.started();
    generator = (await startLoad(server, connections, events)).generator;
    const cpu0 = cpuTimes(server.pid);
    generator.go();
    let delivered = 0;
    for (let last = nowMs(), seen = 0; delivered < events; ) {
      await sleep(delivered === 0 ? 50 : 100);
      delivered = await server.delivered();
      if (delivered !== seen) {
        seen = delivered;
        last = nowMs();
      } else if (nowMs() - last > 60_000) throw new Error(`stalled at ${delivered} of ${events}`);
    }
    const end = nowMs();
    const cpu = cpuDelta(cpu0, cpuTimes(server.pid));
    const peakRss = vmMiB(server.pid, 'VmHWM');
    const done = await generator.done(60_000);
    const wallS = (end - done.first_byte_ms) / 1000;
    const cpuS = cpu.user + cpu.sys;
    const figures = await diskFigures(server, wallS, s.buffer.includes('disk'));
    await generator.exit();
    const exit = await server.stop();
    return {
      scenario: s.name,
      ok: exit === 0 && delivered === events,
      events,
      connections,
      wall_s: round(wallS, 3),
      events_per_s: Math.round(events / wallS),
      mib_per_s: round(done.bytes / MiB / wallS, 2),
      cpu_s: round(cpuS, 2),
      cpu_user_s: round(cpu.user, 2),
      cpu_sys_s: round(cpu.sys, 2),
      cpu_cores: round(cpuS / wallS, 2),
      events_per_cpu_s: Math.round(events / cpuS),
      peak_rss_mib: round(peakRss, 1),
      ...figures,
      buffer: s.buffer,
      exit_code: exit,
    };
  } finally {
    generator?.kill();
    server.kill();
  }
}

async function q1Run(s: Scenario, dir: string, rate: number, seconds: number, connections: number) {
  const server = new FluxoServer(join(dir, 'fluxo.yaml'), SOURCE, SINK, {
    cwd: ROOT,
    echo: values.echo,
    nodeArgs: nodeArgs(s.name),
  });
  const { spawn } = await import('node:child_process');
  const sender = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      new URL(import.meta.url).pathname,
      '--sender',
      '--port',
      '0',
      '--rate',
      String(rate),
      '--seconds',
      String(seconds),
      '--tick',
      String(values['q1-tick']),
      '--connections',
      String(connections),
    ],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  try {
    await server.started();
    sender.stdin!.write(`${server.port}\n`);
    const lines = createInterface({ input: sender.stdout! });
    const messages: Record<string, unknown>[] = [];
    let wake: (() => void) | undefined;
    lines.on('line', (l) => {
      messages.push(JSON.parse(l) as Record<string, unknown>);
      wake?.();
    });
    const next = async (key: string) => {
      for (;;) {
        const m = messages.find((x) => x[key] === true);
        if (m) return m;
        await new Promise<void>((r) => (wake = r));
      }
    };
    await next('ready');
    await waitForConnections(server, connections);
    const cpu0 = cpuTimes(server.pid);
    const t0 = nowMs();
    sender.stdin!.write('go\n');
    const done = await next('done');
    const sent = done.lines as number;
    while ((await server.delivered()) < sent) await sleep(50);
    const wallS = (nowMs() - t0) / 1000;
    const cpu = cpuDelta(cpu0, cpuTimes(server.pid));
    const cpuS = cpu.user + cpu.sys;
    const peakRss = vmMiB(server.pid, 'VmHWM');
    const p50 = await histogramQuantile(server, 'fluxo_end_to_end_latency_seconds', 0.5, LATENCY_BOUNDS);
    const p99 = await histogramQuantile(server, 'fluxo_end_to_end_latency_seconds', 0.99, LATENCY_BOUNDS);
    const latencySum = await server.metric('fluxo_end_to_end_latency_seconds_sum', { component_id: SINK });
    const latencyCount = await server.metric('fluxo_end_to_end_latency_seconds_count', { component_id: SINK });
    const figures = await diskFigures(server, wallS, s.buffer.includes('disk'));
    const exit = await server.stop();
    return {
      scenario: s.name,
      ok: exit === 0,
      rate,
      seconds,
      connections,
      tick_ms: Number(values['q1-tick']),
      events: sent,
      cpu_s: round(cpuS, 2),
      cpu_user_s: round(cpu.user, 2),
      cpu_sys_s: round(cpu.sys, 2),
      cpu_cores: round(cpuS / wallS, 3),
      cpu_us_per_event: round((cpuS * 1e6) / sent, 2),
      latency_mean_ms: latencyCount > 0 ? round((latencySum / latencyCount) * 1000, 2) : null,
      latency_p50_ms_le: ms(p50),
      latency_p99_ms_le: ms(p99),
      peak_rss_mib: round(peakRss, 1),
      ...figures,
      buffer: s.buffer,
      exit_code: exit,
    };
  } finally {
    sender.kill();
    server.kill();
  }
}

/** Sender mode: 300 connections, `rate` lines per second in all, for `seconds`, in 50 ms steps. */
async function senderMode(): Promise<void> {
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const tick = Number(values.tick);
  const connections = Number(values.connections);
  const input = createInterface({ input: process.stdin });
  const it = input[Symbol.asyncIterator]();
  const port = Number((await it.next()).value);
  const sockets: Socket[] = await openSockets(port, connections);
  const generator = new AccessLogGenerator({ format: 'apache_combined', seed: 4 });
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  while ((await it.next()).value?.trim() !== 'go');
  const start = nowMs();
  const end = start + seconds * 1000;
  let sent = 0;
  let seq = 0;
  for (let step = 1; ; step++) {
    const due = Math.min(Math.round((rate * (Math.min(nowMs(), end) - start)) / 1000), Math.round(rate * seconds));
    // Spread what is due over the connections, round robin, one write per connection per step.
    const chunks: string[] = Array.from({ length: connections }, () => '');
    for (; sent < due; sent++) chunks[seq++ % connections] += `${generator.line(seq, Date.now())}\n`;
    for (let c = 0; c < connections; c++) if (chunks[c]) sockets[c]!.write(chunks[c]!);
    if (nowMs() >= end) break;
    await sleep(Math.max(0, start + step * tick - nowMs()));
  }
  await Promise.all(
    sockets.map(async (s) => {
      s.end();
      await once(s, 'finish');
    }),
  );
  process.stdout.write(`${JSON.stringify({ done: true, lines: sent })}\n`);
  process.exit(0);
}

async function main(): Promise<void> {
  if (values.sender) return senderMode();
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(26)}${s.description}\n`);
    return;
  }
  const names = (values.scenario ?? []).flatMap((x) => x.split(',')).filter(Boolean);
  const selected = names.length > 0 ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS;
  const events = Number(values.events);
  const connections = Number(values.connections);
  process.stderr.write(`${JSON.stringify(machine())}\n`);
  const results: Record<string, unknown>[] = [];
  for (const s of selected) {
    for (let run = 1; run <= Number(values.repeat); run++) {
      const dir = mkdtempSync(join(tmpdir(), `fluxo-bench-disk-${s.name}-`));
      writeFileSync(join(dir, 'fluxo.yaml'), config(dir, s));
      let result: Record<string, unknown>;
      try {
        result =
          s.kind === 'throughput'
            ? await throughputRun(s, dir, events, connections)
            : await q1Run(s, dir, Number(values['q1-rate']), Number(values['q1-seconds']), connections);
      } catch (error) {
        result = { scenario: s.name, ok: false, error: (error as Error).message };
      } finally {
        if (!values.keep) rmSync(dir, { recursive: true, force: true });
      }
      result = { ...result, run, node: process.version, at: new Date().toISOString() };
      results.push(result);
      process.stdout.write(`${JSON.stringify(result)}\n`);
    }
  }
  for (const r of results) {
    const figures =
      r.events_per_s !== undefined
        ? `${Number(r.events_per_s).toLocaleString('en-US')} events/s, ${r.mib_per_s} MiB/s, ${r.fsyncs_per_s ?? '-'} fsyncs/s, fsync p99 ≤ ${r.fsync_p99_ms_le ?? '-'} ms, RSS ${r.peak_rss_mib} MiB`
        : r.cpu_us_per_event !== undefined
          ? `${r.cpu_us_per_event} µs CPU/event, latency mean ${r.latency_mean_ms} ms, p99 ≤ ${r.latency_p99_ms_le} ms, RSS ${r.peak_rss_mib} MiB`
          : String(r.error);
    process.stderr.write(`${String(r.scenario).padEnd(26)}${r.ok ? '' : 'FAILED '}${figures}\n`);
  }
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

await main();
