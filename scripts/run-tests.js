#!/usr/bin/env node
// Runs the suite with Node's test runner. Node 20 has no glob support in --test, so the files are listed here.
// Usage: node scripts/run-tests.js [dir|file ...]   (default: test/unit test/integration test/e2e)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) collect(join(path, name), out);
  } else if (path.endsWith('.test.ts')) {
    out.push(path);
  }
  return out;
}

const roots = process.argv.slice(2);
const files = [];
for (const root of roots.length > 0 ? roots : ['test/unit', 'test/integration', 'test/e2e']) collect(root, files);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.FLUXO_TEST_CONCURRENCY ?? '2';
// A bound on every test and every test file, whose process must also exit: a test that hangs, or a handle
// left open after the last test, fails that file by name instead of stalling the run until CI gives up.
// The longest test (the simulate e2e) takes about three minutes.
const testTimeoutMs = Number(process.env.FLUXO_TEST_TIMEOUT_MS ?? 600_000);
// And one on the whole run, in case the runner itself stops making progress.
const runTimeoutMs = Number(process.env.FLUXO_TEST_RUN_TIMEOUT_MS ?? 45 * 60_000);

// Shortly before a test file's process reaches the timeout it is asked for a Node.js diagnostic report
// (--report-on-signal): its JavaScript stack and the libuv handles keeping it alive, printed at the end.
const reportDir = mkdtempSync(join(tmpdir(), 'fluxo-test-reports-'));
const reportSignal = 'SIGUSR2';

const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--report-on-signal',
    `--report-signal=${reportSignal}`,
    `--report-directory=${reportDir}`,
    '--test',
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${testTimeoutMs}`,
    '--test-reporter=spec',
    ...files,
  ],
  { stdio: ['ignore', 'inherit', 'inherit'], detached: true },
);

/** Test files' processes (children of the runner) by pid: their file, when first seen, whether asked. */
const watched = new Map();
const reportAfterMs = Math.max(1000, testTimeoutMs - 30_000);

function watchTestProcesses() {
  if (!existsSync('/proc')) return;
  const now = Date.now();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== child.pid) continue;
      const pid = Number(name);
      let w = watched.get(pid);
      if (w === undefined) {
        const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
        w = { file: args.find((a) => a.endsWith('.test.ts')) ?? args.join(' '), since: now, asked: false };
        watched.set(pid, w);
      }
      if (!w.asked && now - w.since >= reportAfterMs) {
        w.asked = true;
        process.kill(pid, reportSignal);
      }
    } catch {
      // gone meanwhile
    }
  }
}
const poller = setInterval(watchTestProcesses, Math.min(10_000, reportAfterMs / 4));

/** What the reports of slow test files say: the stack, and the handles that keep the process alive. */
function printReports() {
  const asked = [...watched.entries()].filter(([, w]) => w.asked);
  if (asked.length === 0) return;
  const reports = readdirSync(reportDir);
  console.error('\nTest files still running shortly before the timeout:');
  for (const [pid, w] of asked) {
    console.error(`\n${w.file} (pid ${pid})`);
    const name = reports.find((r) => r.split('.')[3] === String(pid));
    if (name === undefined) {
      console.error('  no report: its event loop never got to write one (a loop that never yields?)');
      continue;
    }
    const report = JSON.parse(readFileSync(join(reportDir, name), 'utf8'));
    const stack = report.javascriptStack?.stack ?? [];
    if (stack.length > 0) console.error(`  stack:\n    ${stack.slice(0, 12).join('\n    ')}`);
    const alive = (report.libuv ?? []).filter((h) => h.is_active && h.is_referenced && h.type !== 'loop');
    console.error('  handles keeping it alive:');
    for (const h of alive) {
      const { type, is_active: _a, is_referenced: _r, address: _x, ...details } = h;
      console.error(`    ${type} ${JSON.stringify(details)}`);
    }
  }
}

let timedOut = false;
const watchdog = setTimeout(() => {
  timedOut = true;
  console.error(`\nthe test run took longer than ${Math.round(runTimeoutMs / 1000)} s: stopping it`);
  try {
    process.kill(-child.pid, 'SIGTERM'); // the runner and every test file's process
  } catch {
    // already gone
  }
}, runTimeoutMs);

// The runner has a process group of its own (for the watchdog): pass on an interrupt.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  });
}

child.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  clearInterval(poller);
  printReports();
  rmSync(reportDir, { recursive: true, force: true });
  process.exit(timedOut || signal !== null ? 1 : (code ?? 1));
});
