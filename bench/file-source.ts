/**
 * The file source benchmark: Fluxo as a user runs it (`node bin/fluxo.js run -c <config>`), tailing log files of
 * realistic access-log lines, measured from outside. One JSON line per scenario on stdout, a summary on stderr.
 *
 *   node --import tsx bench/file-source.ts                         every scenario, 1 GiB of lines each
 *   node --import tsx bench/file-source.ts --scenario blackhole-1 --size 256MiB --repeat 3
 *   node --import tsx bench/file-source.ts --list
 *
 * Scenarios: file → blackhole and file → file (NDJSON, the file sink's defaults: fdatasync per write), each
 * with one file of `--size` bytes or ten files of a tenth of it. The files are generated once per run (and
 * reused by every scenario), then hard-linked into the watched directory after Fluxo printed its banner, so
 * start-up (tsx, config) is outside the measurement and the figures are reading, framing, the pipeline and
 * the sink. A run ends when the sink has delivered every line (polled on /metrics); then CPU time (user +
 * system, all threads, /proc/<pid>/stat) and peak RSS (VmHWM) are read, Fluxo gets SIGTERM and must exit 0.
 * file → file also counts the lines written: a lost or extra line fails the run (exit 1).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AccessLogGenerator } from '../src/codecs/access-log.ts';
import { parseSize } from '../src/core/units.ts';
import { cpuTimes, loadAverage1m, machine, nowMs, vmMiB } from './lib/proc.ts';

const FLUXO_BIN = fileURLToPath(new URL('../bin/fluxo.js', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;

interface Scenario {
  name: string;
  sink: 'blackhole' | 'file';
  files: number;
}

const SCENARIOS: Scenario[] = [
  { name: 'blackhole-1', sink: 'blackhole', files: 1 },
  { name: 'blackhole-10', sink: 'blackhole', files: 10 },
  { name: 'file-1', sink: 'file', files: 1 },
  { name: 'file-10', sink: 'file', files: 10 },
];

const HELP = `node --import tsx bench/file-source.ts [options]

  --scenario NAME[,NAME]  ${SCENARIOS.map((s) => s.name).join(', ')} (default: all)
  --size SIZE             bytes of log lines per scenario, split over its files (default 1GiB)
  --repeat N              runs per scenario (default 1)
  --node-arg ARG          extra node option for Fluxo (repeatable), e.g. --node-arg=--cpu-prof
  --sync BOOL             file sink: fdatasync each write (default true, the sink's default)
  --max-read-bytes SIZE   file source: max_read_bytes (default 256KiB, the source's default)
  --timeout D             seconds without progress before a run fails (default 60)
  --keep                  keep the temporary directory
  --echo                  copy Fluxo's standard error to ours
  --list                  list the scenarios
`;

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    size: { type: 'string', default: '1GiB' },
    repeat: { type: 'string', default: '1' },
    'node-arg': { type: 'string', multiple: true },
    sync: { type: 'string', default: 'true' },
    'max-read-bytes': { type: 'string', default: '256KiB' },
    timeout: { type: 'string', default: '60' },
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
  for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(14)} file → ${s.sink}, ${s.files} file(s)\n`);
  process.exit(0);
}
const names = (values.scenario ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '');
const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario ${unknown.join(', ')}\n${HELP}`);
  process.exit(2);
}
const selected = names.length > 0 ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS;
const totalBytes = parseSize(values.size);
const repeat = Number(values.repeat);
const stallMs = Number(values.timeout) * 1000;
if (totalBytes === undefined || totalBytes < MiB || !(repeat > 0)) {
  process.stderr.write('--size must be at least 1MiB, --repeat > 0\n');
  process.exit(2);
}

const root = mkdtempSync(join(tmpdir(), 'fluxo-bench-file-source-'));
const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface DataSet {
  paths: string[];
  lines: number;
  bytes: number;
}

const dataSets = new Map<number, DataSet>();

/** `files` files of access-log lines, `totalBytes` in all; generated once and shared by the scenarios. */
async function dataSet(files: number): Promise<DataSet> {
  const cached = dataSets.get(files);
  if (cached) return cached;
  const dir = join(root, `source-${files}`);
  mkdirSync(dir, { recursive: true });
  const generator = new AccessLogGenerator({ seed: 42 });
  const perFile = Math.floor(totalBytes! / files);
  const started = Date.now();
  let lines = 0;
  let bytes = 0;
  const paths: string[] = [];
  for (let i = 0; i < files; i++) {
    const path = join(dir, `access-${i}.log`);
    const handle = await open(path, 'w');
    let written = 0;
    const base = Date.parse('2026-11-24T00:00:00Z');
    while (written < perFile) {
      const parts: string[] = [];
      let size = 0;
      while (size < 4 * MiB && written + size < perFile) {
        const line = `${generator.line(lines + 1, base + lines)}\n`;
        parts.push(line);
        size += line.length; // the generator writes ASCII
        lines++;
      }
      const chunk = Buffer.from(parts.join(''));
      await handle.write(chunk);
      written += chunk.length;
    }
    await handle.close();
    bytes += written;
    paths.push(path);
  }
  process.stderr.write(
    `generated ${files} file(s), ${(bytes / MiB).toFixed(0)} MiB, ${lines.toLocaleString('en-US')} lines in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  const set = { paths, lines, bytes };
  dataSets.set(files, set);
  return set;
}

function config(dir: string, scenario: Scenario): string {
  const sink =
    scenario.sink === 'blackhole'
      ? '    type: blackhole'
      : [
          '    type: file',
          `    path: "${dir}/out/part.ndjson"`,
          `    sync: ${values.sync === 'true'}`,
          '    max_file_size: 1GiB',
        ].join('\n');
  return `# generated by bench/file-source.ts
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 60s
sources:
  logs:
    type: file
    include: ["${dir}/logs/*.log"]
    glob_interval: 200ms
    max_read_bytes: ${values['max-read-bytes']}
sinks:
  out:
    inputs: [logs]
${sink}
`;
}

class Fluxo {
  readonly child: ChildProcess;
  stderr = '';
  private readonly exited: Promise<number | null>;

  constructor(configPath: string, nodeArgs: string[]) {
    this.child = spawn(process.execPath, [...nodeArgs, FLUXO_BIN, 'run', '-c', configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      if (values.echo) process.stderr.write(d);
    });
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stderr.match(pattern);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`fluxo exited before ${pattern}:\n${this.stderr}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}:\n${this.stderr}`);
      await sleep(20);
    }
  }

  async metric(api: string, name: string, labels: Record<string, string>): Promise<number> {
    const text = await (await fetch(`${api}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
    }
    return sum;
  }

  stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Lines in the NDJSON files under `dir` (visible ones only: in-progress files start with a dot). */
async function countLines(dir: string): Promise<number> {
  let n = 0;
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    for await (const chunk of createReadStream(join(dir, name), { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      let i = chunk.indexOf(0x0a);
      while (i >= 0) {
        n++;
        i = chunk.indexOf(0x0a, i + 1);
      }
    }
  }
  return n;
}

async function runOnce(scenario: Scenario, run: number): Promise<Record<string, unknown>> {
  const data = await dataSet(scenario.files);
  const dir = join(root, `${scenario.name}-run${run}`);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const configPath = join(dir, 'fluxo.yaml');
  writeFileSync(configPath, config(dir, scenario));
  const fluxo = new Fluxo(configPath, values['node-arg'] ?? []);
  const result: Record<string, unknown> = {
    scenario: `file-${scenario.sink}`,
    name: scenario.name,
    run,
    files: scenario.files,
    bytes: data.bytes,
    events: data.lines,
  };
  if (scenario.sink === 'file') result.sync = values.sync === 'true';
  try {
    const api = (await fluxo.waitFor(/api (http:\/\/\S+)/))[1]!;
    const pid = fluxo.child.pid!;
    const cpu0 = cpuTimes(pid);
    const t0 = nowMs();
    // Hard links: the files appear at once, complete, and the generated copies stay for the next scenario.
    for (const p of data.paths) linkSync(p, join(dir, 'logs', p.slice(p.lastIndexOf('/') + 1)));
    let delivered = 0;
    let lastProgress = Date.now();
    for (;;) {
      const d = await fluxo.metric(api, 'fluxo_component_sent_events_total', { component_id: 'out' });
      if (d > delivered) lastProgress = Date.now();
      delivered = d;
      if (delivered >= data.lines) break;
      if (Date.now() - lastProgress > stallMs) throw new Error(`stalled at ${delivered}/${data.lines} events`);
      await sleep(100);
    }
    const seconds = (nowMs() - t0) / 1000;
    const cpu1 = cpuTimes(pid);
    const peakRss = vmMiB(pid, 'VmHWM');
    const user = cpu1.user - cpu0.user;
    const sys = cpu1.sys - cpu0.sys;
    const code = await fluxo.stop();
    if (code !== 0) throw new Error(`fluxo exited with ${code}`);
    Object.assign(result, {
      seconds: round(seconds, 2),
      events_per_s: Math.round(data.lines / seconds),
      mib_per_s: round(data.bytes / MiB / seconds, 1),
      cpu_s: round(user + sys, 2),
      cpu_user_s: round(user, 2),
      cpu_sys_s: round(sys, 2),
      mib_per_cpu_s: round(data.bytes / MiB / (user + sys), 1),
      events_per_cpu_s: Math.round(data.lines / (user + sys)),
      peak_rss_mib: round(peakRss, 1),
      load_1m: loadAverage1m(),
    });
    if (scenario.sink === 'file') {
      const written = await countLines(join(dir, 'out'));
      result.written = written;
      if (written !== data.lines) throw new Error(`the sink wrote ${written} lines, expected ${data.lines}`);
    }
    result.ok = true;
  } catch (error) {
    result.ok = false;
    result.error = (error as Error).message.split('\n')[0];
    if (!values.echo) process.stderr.write(fluxo.stderr.slice(-4000));
    await fluxo.stop();
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

process.stderr.write(`${JSON.stringify({ machine: machine() })}\n`);
let failed = false;
try {
  for (const scenario of selected) {
    for (let run = 1; run <= repeat; run++) {
      const r = await runOnce(scenario, run);
      process.stdout.write(`${JSON.stringify(r)}\n`);
      if (!r.ok) failed = true;
      else {
        process.stderr.write(
          `${scenario.name}: ${r.mib_per_s} MiB/s, ${Number(r.events_per_s).toLocaleString('en-US')} events/s, ` +
            `${r.cpu_s} CPU s (${r.mib_per_cpu_s} MiB per CPU s), peak RSS ${r.peak_rss_mib} MiB\n`,
        );
      }
    }
  }
} finally {
  if (values.keep) process.stderr.write(`kept ${root}\n`);
  else rmSync(root, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
