/**
 * socket → parse (apache_combined) → file sink, Parquet with zstd, against the same events to NDJSON. Fluxo
 * runs as a user runs it (`node bin/fluxo.js run -c <config>`); the lines are sent from this process over 300
 * connections, so their CPU is never counted as Fluxo's. Fluxo's CPU is what the kernel charged to it once it
 * exited (this process's cutime + cstime: staging, every seal including those at the graceful stop) less
 * what its start-up took before the first connection; its peak RSS is VmHWM sampled until it exits. One JSON line per scenario on stdout.
 *
 *   npm run bench:parquet-sink                      1,000,000 events
 *   node --import tsx bench/parquet-sink.ts --events 200000
 *   … --only parquet --fluxo-root /tmp/other-tree    another tree's bin/fluxo.js (an A/B against a copy)
 *   … --cpu-prof /tmp/prof                           V8 CPU profiles of Fluxo (main thread and seal worker)
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { AccessLogGenerator } from '../src/codecs/access-log.ts';
import { FLUXO_BIN, ROOT } from './lib/children.ts';
import { CLK_TCK, cpuTimes, machine, vmMiB } from './lib/proc.ts';
import { openSockets } from './lib/sockets.ts';

const MiB = 1024 * 1024;
const CONNECTIONS = 300;

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    keep: { type: 'boolean', default: false },
    only: { type: 'string' },
    'fluxo-root': { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const EVENTS = Number(args.events);
const FLUXO_ROOT = args['fluxo-root'] ?? ROOT;
const BIN = args['fluxo-root'] === undefined ? FLUXO_BIN : join(FLUXO_ROOT, 'bin/fluxo.js');
const PROFILE = args['cpu-prof'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`];

/** user + sys of this process's reaped children, in seconds (/proc/self/stat fields 16 and 17). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function config(dir: string, encoding: 'parquet' | 'ndjson'): string {
  const sink =
    encoding === 'parquet'
      ? `path: "${dir}/out/dt=%Y-%m-%d/hour=%H/part.parquet"\n    encoding: parquet\n    compression: zstd`
      : `path: "${dir}/out/dt=%Y-%m-%d/hour=%H/part.ndjson"`;
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 120s
sources:
  tcp: { type: socket, mode: tcp, address: 127.0.0.1:0 }
transforms:
  access: { type: parse, inputs: [tcp], format: apache_combined }
sinks:
  master:
    type: file
    inputs: [access]
    ${sink}
    max_file_size: 64MiB
`;
}

/** The payload of each connection: the lines of the events it sends, round-robin like 300 web servers. */
function payloads(): { chunks: Buffer[]; bytes: number } {
  const generator = new AccessLogGenerator({ format: 'apache_combined', seed: 20261202 });
  const start = Date.UTC(2026, 11, 2);
  const parts: string[][] = Array.from({ length: CONNECTIONS }, () => []);
  let bytes = 0;
  for (let seq = 1; seq <= EVENTS; seq++) {
    const line = `${generator.line(seq, start + seq)}\n`;
    bytes += Buffer.byteLength(line);
    parts[seq % CONNECTIONS]!.push(line);
  }
  return { chunks: parts.map((p) => Buffer.from(p.join(''))), bytes };
}

async function metric(api: string, name: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes('component_id="master"')) sum += Number(line.split(' ').pop());
  }
  return sum;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (!name.startsWith('.')) out.push(p);
  }
  return out;
}

async function run(encoding: 'parquet' | 'ndjson', load: { chunks: Buffer[]; bytes: number }) {
  const dir = mkdtempSync(join(tmpdir(), `fluxo-bench-${encoding}-`));
  const file = join(dir, 'fluxo.yaml');
  writeFileSync(file, config(dir, encoding));
  const cpu0 = childrenCpu();
  const child: ChildProcess = spawn(process.execPath, [...PROFILE, BIN, 'run', '-c', file], {
    cwd: FLUXO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = once(child, 'exit');
  const banner = async (re: RegExp) => {
    for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
      const m = stderr.match(re);
      if (m) return m;
    }
    throw new Error(`no ${re} in:\n${stderr}`);
  };
  const port = Number((await banner(/source tcp \([^)]*\): listening on \w+ [^\s]+:(\d+)/))[1]);
  const api = (await banner(/api (http:\/\/\S+)/))[1]!;
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, vmMiB(child.pid!, 'VmHWM'));
    } catch {}
  }, 50);
  // Start-up (loading the code, tsx compiling it when the tree is not built) is not the sink's work.
  const startup = cpuTimes(child.pid!);
  const startupS = startup.user + startup.sys;
  const t0 = performance.now();
  const sockets: Socket[] = await openSockets(port, CONNECTIONS);
  await Promise.all(
    sockets.map(
      (s, i) =>
        new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.end(load.chunks[i], () => resolve());
        }),
    ),
  );
  for (;;) {
    if (child.exitCode !== null) throw new Error(`fluxo exited ${child.exitCode}:\n${stderr}`);
    // A busy process may reset the scrape: ask again.
    const sent = await metric(api, 'fluxo_component_sent_events_total').catch(() => 0);
    if (sent >= EVENTS) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGTERM');
  const [code] = await exited;
  const wallS = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const cpuS = childrenCpu() - cpu0 - startupS;
  if (code !== 0) throw new Error(`fluxo exited ${code}:\n${stderr}`);
  const files = filesUnder(join(dir, 'out'));
  const outBytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
  let readBack = 0;
  if (encoding === 'parquet') {
    const connection = await (await DuckDBInstance.create(':memory:')).connect();
    const reader = await connection.runAndReadAll(
      `SELECT count(*) AS c FROM read_parquet('${dir}/out/**/*.parquet', hive_partitioning = true)`,
    );
    readBack = Number(reader.getRowObjectsJson()[0]!.c);
    connection.closeSync();
  } else {
    for (const f of files) {
      const data = readFileSync(f);
      for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, i + 1)) readBack++;
    }
  }
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
  return {
    scenario: `socket-${encoding}${encoding === 'parquet' ? '-zstd' : ''}`,
    events: EVENTS,
    read_back: readBack,
    cpu_s: Number(cpuS.toFixed(2)),
    startup_cpu_s: Number(startupS.toFixed(2)),
    events_per_cpu_s: Math.round(EVENTS / cpuS),
    wall_s: Number(wallS.toFixed(2)),
    raw_mib_per_s_wall: Number((load.bytes / MiB / wallS).toFixed(1)),
    raw_mib_per_cpu_s: Number((load.bytes / MiB / cpuS).toFixed(1)),
    raw_bytes_per_event: Number((load.bytes / EVENTS).toFixed(1)),
    files: files.length,
    output_bytes: outBytes,
    output_bytes_per_event: Number((outBytes / EVENTS).toFixed(1)),
    peak_rss_mib: Math.round(peakRss),
  };
}

const load = payloads();
const results = [];
const encodings = (['parquet', 'ndjson'] as const).filter((e) => args.only === undefined || args.only === e);
for (const encoding of encodings) {
  const r = await run(encoding, load);
  results.push(r);
  console.log(JSON.stringify(r));
}
const [parquet, ndjson] = results;
console.log(
  JSON.stringify({
    scenario: 'summary',
    ndjson_to_parquet_size_ratio:
      parquet !== undefined && ndjson !== undefined
        ? Number((ndjson.output_bytes / parquet.output_bytes).toFixed(2))
        : null,
    fluxo_root: FLUXO_ROOT,
    machine: machine(),
  }),
);
