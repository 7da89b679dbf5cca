/**
 * Takes docs/dashboard.png: runs `fluxo run` on a small demo pipeline (a generator of access-log lines, parsed and
 * routed, written to the master dataset, with one search sink whose server never answers, so it stalls), opens the
 * dashboard in Debian's headless Chromium with the same launch as the browser tests, lets the sparklines fill for
 * a few seconds and writes the PNG.
 *
 *   node --import tsx scripts/screenshot-dashboard.ts [OUT.png] [--seconds N] [--width W]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from '../test/helpers/chromium.ts';

const root = new URL('../', import.meta.url);
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string', default: '15' }, width: { type: 'string', default: '1400' } },
});
const out = positionals[0] ?? new URL('docs/dashboard.png', root).pathname;

const sockets = new Set<Socket>();
const silent = createServer((s) => {
  sockets.add(s);
  s.on('error', () => {});
});
await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
const silentPort = (silent.address() as { port: number }).port;

const dir = mkdtempSync(join(tmpdir(), 'fluxo-screenshot-'));
writeFileSync(
  join(dir, 'fluxo.yaml'),
  `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  web_logs: { type: generator, rate: 800, batch_size: 40 }
transforms:
  access: { type: parse, inputs: [web_logs], format: apache_combined, drop_field: true }
  by_status: { type: route, inputs: [access], routes: { errors: 'status >= 500' } }
sinks:
  master:
    type: file
    inputs: [access]
    path: "${dir}/master/part.ndjson"
    buffer: { type: disk, max_size: 256MiB }
  alerts: { type: blackhole, inputs: [by_status.errors] }
  search:
    type: http
    inputs: [by_status._unmatched]
    uri: http://127.0.0.1:${silentPort}/bulk
    request_timeout: 2s
    healthcheck: false
    buffer: { type: memory, max_events: 20000, when_full: drop_newest }
  dead: { type: blackhole, inputs: [dead_letter] }
`,
);

let fluxo: ChildProcess | undefined;
const cleanup = () => {
  fluxo?.kill('SIGKILL');
  for (const s of sockets) s.destroy();
  silent.close();
  rmSync(dir, { recursive: true, force: true });
};
try {
  fluxo = spawn(process.execPath, [new URL('bin/fluxo.js', root).pathname, 'run', '-c', join(dir, 'fluxo.yaml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const api = await new Promise<string>((resolve, reject) => {
    fluxo!.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const m = /api (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    fluxo!.once('exit', (code) => reject(new Error(`fluxo exited (${code}):\n${stderr}`)));
  });
  const browser = await launchChromium({ viewport: { width: Number(values.width), height: 900 } });
  try {
    const page = await browser.context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${api}/`);
    await page.waitForSelector('svg [data-node="search"]', { timeout: 30_000 });
    await page.waitForTimeout(Number(values.seconds) * 1000);
    await page.screenshot({ path: out, fullPage: true });
    if (problems.length > 0) throw new Error(`console errors on the page: ${problems.join('; ')}`);
    process.stdout.write(`${out}\n`);
  } finally {
    await browser.close();
  }
} finally {
  cleanup();
}
