/**
 * Benchmark of the speed layer (issue 15): socket → nats, socket → redis, socket → kafka (librdkafka's mock
 * cluster), nats source → blackhole, redis source → blackhole. The servers are the test helpers' real ones
 * (nats-server -js, redis-server, the mock cluster behind its protocol shim), Fluxo runs as a user runs it
 * (`node bin/fluxo.js run -c <config>`), and every load runs outside the Fluxo process, so its CPU is not
 * Fluxo's.
 *
 *   npm run bench:streams
 *   node --import tsx bench/streams.ts --scenario socket-nats,nats-blackhole --duration 10s --no-q1
 *
 * Two measures per scenario, one JSON line each:
 * - `throughput`: a sink scenario gets 20 connections sending lines as fast as Fluxo reads them (honouring
 *   backpressure); after `--warmup`, Fluxo's CPU (all threads, /proc) and its delivered counter are sampled over
 *   `--duration`. A source scenario reads `--events` messages put in the stream before Fluxo starts; the window
 *   runs from the first 10% delivered to the last. events_per_cpu_s = delivered in the window / Fluxo CPU-s in it.
 * - `q1` (sink scenarios): the Q1 load, 10,000 lines/s from 300 connections for 20 s (bench/load-generator.ts
 *   --rate), into a fresh Fluxo; p99 receive → delivered latency from fluxo_end_to_end_latency_seconds (one
 *   observation per source batch; a histogram, so `_le_s` is the bucket bound), and the CPU-s it took.
 * The servers' CPU is not counted; they and other processes share the machine, so load_avg_1m is printed.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/units.ts';
import { FluxoProcess } from '../test/helpers/fluxo-process.ts';
import { startKafkaMock } from '../test/helpers/servers/kafka.ts';
import { startNatsServer } from '../test/helpers/servers/nats.ts';
import { startRedis } from '../test/helpers/servers/redis.ts';
import { FluxoServer, fluxoRunsCompiled } from './lib/children.ts';
import { latencyQuantiles } from './lib/metrics-text.ts';
import { cpuDelta, cpuTimes, loadAverage1m, machine } from './lib/proc.ts';
import { scope } from './lib/scope.ts';
import { openSockets, startLoad } from './lib/sockets.ts';

type Scenario = 'socket-nats' | 'socket-redis' | 'socket-kafka' | 'nats-blackhole' | 'redis-blackhole';
const SCENARIOS: Scenario[] = ['socket-nats', 'socket-redis', 'socket-kafka', 'nats-blackhole', 'redis-blackhole'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A chunk of ~64 KiB of access-log-like lines, sent again and again. */
function chunk(): string {
  let out = '';
  for (let i = 0; out.length < 64 * 1024; i++) {
    out += `10.0.${i % 250}.${i % 200} - - [02/Dec/2026:03:00:00 +0000] "GET /api/items/${i} HTTP/1.1" 200 ${512 + i} "-" "bench"\n`;
  }
  return out;
}

/** One event as a sink of the same kind would have written it (the sources' json decoding reads it). */
function storedEvent(n: number): string {
  return JSON.stringify({
    _id: `bench-${n}`,
    message: `10.0.${n % 250}.${n % 200} - - [02/Dec/2026:03:00:00 +0000] "GET /api/items/${n} HTTP/1.1" 200 ${512 + (n % 1000)} "-" "bench"`,
    timestamp: '2026-12-02T03:00:00.000Z',
    host: 'web-001',
    source_type: 'socket',
  });
}

/** Starts the scenario's server and returns the sink's YAML (sink scenarios) or the source's (source scenarios). */
async function destination(scenario: Scenario, t: TestContext, events: number): Promise<string> {
  if (scenario === 'socket-nats' || scenario === 'nats-blackhole') {
    const nats = (await startNatsServer(t))!;
    if (scenario === 'socket-nats') {
      return `type: nats
    servers: ["${nats.url}"]
    subject: logs.web
    create_stream: { name: LOGS, subjects: ["logs.>"] }`;
    }
    await fillNats(nats.url, events);
    return `type: nats
    servers: ["${nats.url}"]
    stream: LOGS
    durable: bench
    batch_size: 500
    max_ack_pending: 5000`;
  }
  if (scenario === 'socket-redis' || scenario === 'redis-blackhole') {
    const redis = (await startRedis(t))!;
    if (scenario === 'socket-redis') {
      return `type: redis
    endpoint: ${redis.url}
    key: logs`;
    }
    for (let n = 1; n <= events; n += 1000) {
      const writes: Promise<unknown>[] = [];
      for (let i = n; i < Math.min(n + 1000, events + 1); i++) {
        writes.push(redis.client.sendCommand(['XADD', 'logs', '*', 'message', storedEvent(i), '_id', `bench-${i}`]));
      }
      await Promise.all(writes);
    }
    return `type: redis
    endpoint: ${redis.url}
    key: logs
    group: bench
    count: 500
    max_pending: 5000`;
  }
  const kafka = (await startKafkaMock(t, 3))!;
  await kafka.createTopic('logs', 6, 1);
  return `type: kafka
    bootstrap_servers: [${kafka.bootstrap.join(', ')}]
    topic: logs`;
}

/** JetStream publishes, 1,000 in flight, each awaited (stored) before the source starts. */
async function fillNats(url: string, events: number): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: url });
  try {
    await (await jetstreamManager(nc)).streams.add({ name: 'LOGS', subjects: ['logs.>'] });
    const js = jetstream(nc);
    for (let n = 1; n <= events; n += 1000) {
      const acks: Promise<unknown>[] = [];
      for (let i = n; i < Math.min(n + 1000, events + 1); i++) {
        acks.push(js.publish('logs.web', storedEvent(i), { msgID: `bench-${i}` }));
      }
      await Promise.all(acks);
    }
  } finally {
    await nc.close();
  }
}

function config(dir: string, scenario: Scenario, yaml: string, batch: number): string {
  const isSource = scenario.endsWith('-blackhole');
  return `data_dir: ${join(dir, 'data')}
api: { address: 127.0.0.1:0 }
sources:
  src:
    ${isSource ? yaml : 'type: socket\n    mode: tcp\n    address: 127.0.0.1:0'}
sinks:
  out:
    inputs: [src]
    ${isSource ? 'type: blackhole' : `batch: { max_events: ${batch} }\n    ${yaml}`}
`;
}

interface Sample {
  at: number;
  cpu: { user: number; sys: number };
  delivered: number;
  errors: number;
}

async function throughput(scenario: Scenario, o: Options) {
  const s = scope();
  const dir = mkdtempSync(join(tmpdir(), `fluxo-bench-${scenario}-`));
  s.t.after(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const yaml = await destination(scenario, s.t, o.events);
    const file = join(dir, 'fluxo.yaml');
    writeFileSync(file, config(dir, scenario, yaml, o.batch));
    const load1m = loadAverage1m();
    const profileDir = `${dir}-prof`;
    // A sink scenario runs as FluxoServer (node arguments for --cpu-prof; it waits for the socket banner); a source
    // scenario, without a listening source, as FluxoProcess.
    const isSource = scenario.endsWith('-blackhole');
    const nodeArgs = o.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    const server = isSource ? undefined : new FluxoServer(file, 'src', 'out', { nodeArgs });
    const proc = isSource ? new FluxoProcess(['run', '-c', file]) : undefined;
    s.t.after(() => (server ? server.kill() : proc!.stop('SIGKILL')));
    const pid = server?.pid ?? proc!.child.pid!;
    const metric = (name: string) =>
      server ? server.metric(name, { component_id: 'out' }) : proc!.metric(name, { component_id: 'out' });
    const log = () => server?.log ?? proc!.stderr;
    const sample = async (): Promise<Sample> => ({
      at: performance.now(),
      cpu: cpuTimes(pid),
      delivered: await metric('fluxo_component_sent_events_total'),
      errors: await metric('fluxo_component_errors_total'),
    });
    let a: Sample;
    let b: Sample;
    let senders: Promise<void>[] = [];
    let running = true;
    if (proc) {
      await proc.apiUrl();
      const end = Date.now() + 300_000;
      for (a = await sample(); a.delivered < o.events * 0.1; a = await sample()) {
        if (Date.now() > end) throw new Error(`only ${a.delivered} delivered:\n${log()}`);
        await sleep(20);
      }
      for (b = await sample(); b.delivered < o.events; b = await sample()) {
        if (Date.now() > end) throw new Error(`only ${b.delivered} of ${o.events} delivered:\n${log()}`);
        await sleep(20);
      }
    } else {
      await server!.started();
      const sockets: Socket[] = await openSockets(server!.port, 20);
      const body = chunk();
      senders = sockets.map(async (socket) => {
        socket.on('error', () => {});
        while (running) {
          if (!socket.write(body)) await new Promise((r) => socket.once('drain', r));
        }
        socket.destroy();
      });
      await sleep(o.warmupMs);
      a = await sample();
      await sleep(o.durationMs);
      b = await sample();
    }
    running = false;
    await Promise.race([Promise.all(senders), sleep(2000)]);
    if (o.profile && server) {
      // The profile is written at a clean exit.
      await server.stop();
      console.error(`profile of ${scenario} in ${profileDir}`);
    }
    const seconds = (b.at - a.at) / 1000;
    const cpu = cpuDelta(a.cpu, b.cpu);
    const cpuSeconds = cpu.user + cpu.sys;
    const delivered = b.delivered - a.delivered;
    const errors = b.errors;

    return {
      bench: 'streams',
      scenario,
      measure: 'throughput',
      delivered_per_s: Math.round(delivered / seconds),
      events_per_cpu_s: Math.round(delivered / cpuSeconds),
      fluxo_cpu_pct: Math.round((cpuSeconds / seconds) * 100),
      window_s: Math.round(seconds * 10) / 10,
      window_events: delivered,
      sink_errors: errors,
      batch_max_events: isSource ? undefined : o.batch,
      load_avg_1m_before: load1m,
      load_avg_1m_after: loadAverage1m(),
      compiled: fluxoRunsCompiled(),
    };
  } finally {
    await s.close();
  }
}

/** The Q1 load into a fresh Fluxo: every line delivered, then the latency quantiles and the CPU it took. */
async function q1(scenario: Scenario, o: Options) {
  const s = scope();
  const dir = mkdtempSync(join(tmpdir(), `fluxo-bench-q1-${scenario}-`));
  s.t.after(() => rmSync(dir, { recursive: true, force: true }));
  const events = 200_000;
  try {
    const yaml = await destination(scenario, s.t, 0);
    const file = join(dir, 'fluxo.yaml');
    writeFileSync(file, config(dir, scenario, yaml, o.batch));
    const server = new FluxoServer(
      file,
      'src',
      'out',
      o.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}-prof`] } : {},
    );
    s.t.after(() => server.kill());
    await server.started();
    const { generator } = await startLoad(server, 300, events, ['--rate', '10000']);
    s.t.after(() => generator.kill());
    const load1m = loadAverage1m();
    const cpu0 = cpuTimes(server.pid);
    const started = performance.now();
    generator.go();
    // On a machine too busy to keep up, the figures of what was delivered are still printed (complete: false).
    let delivered = 0;
    while (delivered < events && performance.now() - started < o.q1TimeoutMs) {
      await sleep(200);
      delivered = await server.delivered();
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuDelta(cpu0, cpuTimes(server.pid));
    const latency = latencyQuantiles(await server.metricsText(), 'out');
    if (delivered >= events) {
      await generator.done(10_000);
      await server.stop();
    }
    return {
      bench: 'streams',
      scenario,
      measure: 'q1',
      load_rate_eps: 10_000,
      connections: 300,
      events,
      delivered,
      complete: delivered >= events,
      wall_s: Math.round(seconds * 10) / 10,
      fluxo_cpu_s: Math.round((cpu.user + cpu.sys) * 100) / 100,
      events_per_cpu_s: Math.round(delivered / (cpu.user + cpu.sys)),
      ...latency,
      load_avg_1m_before: load1m,
      load_avg_1m_after: loadAverage1m(),
      compiled: fluxoRunsCompiled(),
    };
  } finally {
    await s.close();
  }
}

interface Options {
  durationMs: number;
  warmupMs: number;
  events: number;
  batch: number;
  profile: boolean;
  q1TimeoutMs: number;
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: SCENARIOS.join(',') },
    duration: { type: 'string', default: '10s' },
    warmup: { type: 'string', default: '3s' },
    events: { type: 'string', default: '300000' },
    batch: { type: 'string', default: '1000' },
    'no-q1': { type: 'boolean', default: false },
    'no-throughput': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'q1-timeout': { type: 'string', default: '180s' },
  },
});
const chosen = values.scenario.split(',').map((x) => x.trim()) as Scenario[];
for (const c of chosen) if (!SCENARIOS.includes(c)) throw new Error(`--scenario: one of ${SCENARIOS.join(', ')}`);
const o: Options = {
  durationMs: parseDuration(values.duration)!,
  warmupMs: parseDuration(values.warmup)!,
  events: Number(values.events),
  batch: Number(values.batch),
  profile: values.profile,
  q1TimeoutMs: parseDuration(values['q1-timeout'])!,
};
console.log(JSON.stringify({ bench: 'streams', machine: machine() }));
for (const scenario of chosen) {
  if (!values['no-throughput']) console.log(JSON.stringify(await throughput(scenario, o)));
  if (!values['no-q1'] && scenario.startsWith('socket-')) console.log(JSON.stringify(await q1(scenario, o)));
}
