/**
 * Start-up of `fluxo run` with the default config (issue 16, aim 4: < 300 ms and < 300 ms of CPU to
 * listening): the wall time from spawn to the banner's last line ("Send SIGTERM …", printed once every
 * source listens and the API answers), and the process's CPU (user + system, all threads, /proc) at that
 * moment. Runs are sequential; each gets a fresh data_dir and port 0 for every listener.
 *
 *   npm run bench:startup
 *   node --import tsx bench/startup.ts --runs 10 --fluxo-root /tmp/other-tree
 *   node --import tsx bench/startup.ts --node /path/to/node26
 *
 * One JSON line per run, then a summary line with the medians. Node's own start (an empty script) is
 * measured the same way beside it, so the figure Fluxo adds can be read off.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fluxoRunsCompiled, ROOT } from './lib/children.ts';
import { cpuTimes, machine, vmMiB } from './lib/proc.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    'fluxo-root': { type: 'string' },
    node: { type: 'string' },
  },
});
const runs = Number(values.runs);
const root = values['fluxo-root'] ?? ROOT;
const node = values.node ?? process.execPath;

interface Run {
  wall_ms: number;
  cpu_ms: number;
  rss_mib: number;
}

/** Spawns `args`, resolves when stderr shows `ready` (or the process exits, for the empty script). */
function measure(args: string[], ready: RegExp | undefined, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(node, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let text = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const wall = Number(process.hrtime.bigint() - started) / 1e6;
      const cpu = cpuTimes(child.pid!);
      resolve({ wall_ms: wall, cpu_ms: (cpu.user + cpu.sys) * 1000, rss_mib: vmMiB(child.pid!, 'VmRSS') });
      child.kill('SIGTERM');
    };
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (ready?.test(text)) finish();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (!done && ready !== undefined) reject(new Error(`fluxo exited (${code}) before it was ready:\n${text}`));
    });
    // Bare Node (a script that only waits): its CPU and RSS read once it certainly started.
    if (ready === undefined) setTimeout(finish, 150);
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const fluxo: Run[] = [];
const bare: Run[] = [];
for (let i = 0; i < runs; i++) {
  const dir = mkdtempSync(join(tmpdir(), 'fluxo-startup-'));
  const env = {
    ...process.env,
    FLUXO_DATA_DIR: dir,
    FLUXO_API_ADDRESS: '127.0.0.1:0',
    FLUXO_SYSLOG_ADDRESS: '127.0.0.1:0',
    FLUXO_HTTP_ADDRESS: '127.0.0.1:0',
    FLUXO_FORWARD_ADDRESS: '127.0.0.1:0',
    FLUXO_OTLP_ADDRESS: '127.0.0.1:0',
  };
  const r = await measure([join(root, 'bin/fluxo.js'), 'run', '-c', 'fluxo.yaml'], /^Send SIGTERM/m, env);
  await new Promise((resolve) => setTimeout(resolve, 300));
  rmSync(dir, { recursive: true, force: true });
  fluxo.push(r);
  const b = await measure(['-e', 'setTimeout(() => {}, 1000)'], undefined, process.env);
  bare.push(b);
  process.stdout.write(`${JSON.stringify({ run: i + 1, fluxo: r, bare_node_sleeping: b })}\n`);
}
process.stdout.write(
  `${JSON.stringify({
    summary: 'fluxo run -c fluxo.yaml, spawn → banner complete (medians)',
    root,
    node: node === process.execPath ? process.version : node,
    compiled: fluxoRunsCompiled(root),
    wall_ms: Math.round(median(fluxo.map((r) => r.wall_ms))),
    cpu_ms: Math.round(median(fluxo.map((r) => r.cpu_ms))),
    rss_at_ready_mib: Math.round(median(fluxo.map((r) => r.rss_mib))),
    bare_node_cpu_ms: Math.round(median(bare.map((r) => r.cpu_ms))),
    machine: machine(),
  })}\n`,
);
