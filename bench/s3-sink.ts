/**
 * socket → parse (apache_combined) → s3 sink (Parquet, zstd) → a local S3 (OpenStack Swift with s3api, started by
 * test/helpers/servers/s3.ts). Fluxo runs as a user runs it (`node bin/fluxo.js run -c <config>`); the lines are
 * sent from this process over 300 connections, so their CPU is never Fluxo's. Fluxo's CPU is what the kernel
 * charged to it once it exited (staging, sealing, uploading, including the graceful stop's) less its start-up;
 * the store's CPU is reported apart. Every event is read back from the uploaded objects with DuckDB. One JSON
 * line on stdout.
 *
 *   npm run bench:s3                                 200,000 events
 *   node --import tsx bench/s3-sink.ts --events 1000000
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { AccessLogGenerator } from '../src/codecs/access-log.ts';
import { startS3Server } from '../test/helpers/servers/s3.ts';
import { FLUXO_BIN, ROOT } from './lib/children.ts';
import { CLK_TCK, cpuTimes, machine, vmMiB } from './lib/proc.ts';
import { openSockets } from './lib/sockets.ts';

const MiB = 1024 * 1024;
const CONNECTIONS = 300;
const BUCKET = 'fluxo-bench';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    keep: { type: 'boolean', default: false },
  },
});
const EVENTS = Number(args.events);

/** user + sys of this process's reaped children, in seconds (/proc/self/stat fields 16 and 17). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

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

const afters: (() => unknown)[] = [];
const context = { after: (fn: () => unknown) => afters.push(fn), skip: (m?: string) => console.error(m) };
try {
  const s3 = await startS3Server(context as never, { buckets: [BUCKET] });
  if (!s3) throw new Error('OpenStack Swift is not installed (swift-proxy, swift-object, …)');
  const dir = mkdtempSync(join(tmpdir(), 'fluxo-bench-s3-'));
  const file = join(dir, 'fluxo.yaml');
  writeFileSync(
    file,
    `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 120s
sources:
  tcp: { type: socket, mode: tcp, address: 127.0.0.1:0 }
transforms:
  access: { type: parse, inputs: [tcp], format: apache_combined }
sinks:
  master:
    type: s3
    inputs: [access]
    bucket: ${BUCKET}
    endpoint: ${s3.endpoint}
    force_path_style: true
    access_key_id: "${s3.accessKeyId}"
    secret_access_key: "${s3.secretAccessKey}"
    key: "logs/dt=%Y-%m-%d/hour=%H/part.parquet"
    encoding: parquet
    compression: zstd
    max_file_size: 64MiB
    shutdown_upload_timeout: 120s
`,
  );
  const load = payloads();
  const cpu0 = childrenCpu();
  const child: ChildProcess = spawn(process.execPath, [FLUXO_BIN, 'run', '-c', file], {
    cwd: ROOT,
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
  const startup = cpuTimes(child.pid!);
  const startupS = startup.user + startup.sys;
  const swiftPid = s3.pid();
  const swift0 = cpuTimes(swiftPid);
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
    const sent = await metric(api, 'fluxo_component_sent_events_total').catch(() => 0);
    if (sent >= EVENTS) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGTERM');
  const [code] = await exited;
  const wallS = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const cpuS = childrenCpu() - cpu0 - startupS;
  const swift1 = cpuTimes(swiftPid);
  if (code !== 0) throw new Error(`fluxo exited ${code}:\n${stderr}`);
  const objects = await s3.list(BUCKET, 'logs/');
  const outBytes = objects.reduce((sum, o) => sum + o.size, 0);
  const local = join(dir, 'download');
  for (const o of objects) {
    const path = join(local, o.key);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, await s3.get(BUCKET, o.key));
  }
  const connection = await (await DuckDBInstance.create(':memory:')).connect();
  const reader = await connection.runAndReadAll(
    `SELECT count(*) AS c, count(DISTINCT _id) AS ids FROM read_parquet('${local}/logs/**/*.parquet', hive_partitioning = true)`,
  );
  const row = reader.getRowObjectsJson()[0]!;
  connection.closeSync();
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      scenario: 'socket-s3-parquet-zstd',
      store: 'openstack-swift-s3api (local, one process)',
      events: EVENTS,
      read_back: Number(row.c),
      distinct_ids: Number(row.ids),
      cpu_s: Number(cpuS.toFixed(2)),
      startup_cpu_s: Number(startupS.toFixed(2)),
      events_per_cpu_s: Math.round(EVENTS / cpuS),
      store_cpu_s: Number((swift1.user + swift1.sys - swift0.user - swift0.sys).toFixed(2)),
      wall_s: Number(wallS.toFixed(2)),
      raw_mib_per_s_wall: Number((load.bytes / MiB / wallS).toFixed(1)),
      raw_mib_per_cpu_s: Number((load.bytes / MiB / cpuS).toFixed(1)),
      raw_bytes_per_event: Number((load.bytes / EVENTS).toFixed(1)),
      objects: objects.length,
      output_bytes: outBytes,
      output_bytes_per_event: Number((outBytes / EVENTS).toFixed(1)),
      peak_rss_mib: Math.round(peakRss),
      machine: machine(),
    }),
  );
} finally {
  for (const fn of afters) await fn();
}
