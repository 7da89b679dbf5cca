/**
 * Parquet writer candidates for issue 14, measured on 1M parsed access-log events. One JSON line per run on
 * stdout, a table of medians on stderr.
 *
 *   node --import tsx bench/parquet-writers.ts                        3 rounds, every candidate, zstd and snappy
 *   node --import tsx bench/parquet-writers.ts --events 200000 --rounds 1 --candidate duckdb --codec zstd
 *   node --import tsx bench/parquet-writers.ts --node /path/to/other/node
 *
 * The candidates are not project dependencies: they are installed, pinned, into a cache prefix outside the repo
 * (`$FLUXO_BENCH_DEPS`, default /tmp/fluxo-bench-deps) and loaded from there. Each run is its own child process
 * (bench/parquet-writers/child.ts), so peak RSS is the candidate's own; `none` is the baseline child that only
 * generates the events. Every file is read back with DuckDB (count, distinct `_id`, sum of `status`) and a run
 * whose file does not read back right is reported as failed. Rounds alternate the order of the candidates.
 */

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { machine } from './lib/proc.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHILD = join(ROOT, 'bench', 'parquet-writers', 'child.ts');

/** Pinned so that a rerun measures the same code; @duckdb/node-api's binary comes as an npm optional dependency. */
const DEPS: Record<string, string> = {
  'hyparquet-writer': '0.17.0',
  'parquet-wasm': '0.8.0',
  'apache-arrow': '21.2.0',
  '@duckdb/node-api': '1.5.6-r.1',
  // zstd for hyparquet-writer on Node 20, whose zlib has none (Node ≥ 22.15 uses node:zlib instead).
  '@bokuweb/zstd-wasm': '0.0.27',
};

const CANDIDATES = ['hyparquet-writer', 'parquet-wasm', 'duckdb', 'duckdb-ndjson'];
const CODECS = ['zstd', 'snappy'];

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    candidate: { type: 'string', multiple: true },
    codec: { type: 'string', multiple: true },
    node: { type: 'string', default: process.execPath },
    deps: { type: 'string', default: process.env.FLUXO_BENCH_DEPS ?? '/tmp/fluxo-bench-deps' },
  },
});
const events = Number(values.events);
const rounds = Number(values.rounds);
const depsDir = values.deps;
const candidates = values.candidate?.flatMap((c) => c.split(',')) ?? CANDIDATES;
const codecs = values.codec?.flatMap((c) => c.split(',')) ?? CODECS;

function installedVersion(name: string): string | undefined {
  const manifest = join(depsDir, 'node_modules', name, 'package.json');
  return existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')).version as string) : undefined;
}

function ensureDeps(): void {
  const missing = Object.entries(DEPS).filter(([name, version]) => installedVersion(name) !== version);
  if (missing.length === 0) return;
  process.stderr.write(`installing ${missing.map(([n, v]) => `${n}@${v}`).join(' ')} into ${depsDir}\n`);
  execFileSync(
    'npm',
    ['install', '--prefix', depsDir, '--no-audit', '--no-fund', ...Object.entries(DEPS).map(([n, v]) => `${n}@${v}`)],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
}

type RunResult = Record<string, unknown> & { candidate: string; codec: string; ok: boolean };

function runChild(candidate: string, codec: string, outPath: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const child = spawn(
      values.node,
      ['--import', 'tsx', CHILD, candidate, codec, outPath, String(events), values.batch, depsDir],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolve({ ...JSON.parse(line), exit_code: code });
      } catch {
        resolve({ candidate, codec, error: `exit ${code}: ${stderr.slice(-2000)}` });
      }
    });
  });
}

// biome-ignore lint/suspicious/noExplicitAny: @duckdb/node-api is loaded from the bench cache, not the project
type Any = any;
let duckConnection: Any;

/** Reads a file back with DuckDB: what a batch-layer reader would see. */
async function readBack(path: string): Promise<{ rows: number; distinct_ids: number; status_sum: number }> {
  if (!duckConnection) {
    const req = createRequire(join(depsDir, 'package.json'));
    const duck: Any = await import(pathToFileURL(req.resolve('@duckdb/node-api')).href);
    duckConnection = await (await duck.DuckDBInstance.create(':memory:')).connect();
  }
  const reader = await duckConnection.runAndReadAll(
    `SELECT count(*)::DOUBLE, count(DISTINCT _id)::DOUBLE, sum(status)::DOUBLE FROM read_parquet('${path.replaceAll("'", "''")}')`,
  );
  const [rows, distinct, sum] = reader.getRows()[0] as number[];
  return { rows: rows!, distinct_ids: distinct!, status_sum: sum! };
}

async function measure(candidate: string, codec: string, round: number, dir: string): Promise<RunResult> {
  const outPath = join(dir, `${candidate}-${codec}.parquet`);
  const r = await runChild(candidate, codec, outPath);
  const result: RunResult = { ...r, candidate, codec, round, ok: false };
  if (r.error === undefined && candidate !== 'none') {
    try {
      const back = await readBack(outPath);
      const problems = [
        back.rows === events ? '' : `${back.rows} rows read back, ${events} written`,
        back.distinct_ids === events ? '' : `${back.distinct_ids} distinct _id, ${events} expected`,
        back.status_sum === r.status_sum ? '' : `sum(status) ${back.status_sum}, expected ${r.status_sum}`,
      ].filter(Boolean);
      result.read_back = back;
      if (problems.length) result.error = problems.join('; ');
    } catch (error) {
      result.error = `read back failed: ${(error as Error).message}`;
    }
  }
  result.ok = result.error === undefined;
  if (typeof r.cpu_s === 'number') result.events_per_cpu_s = Math.round(events / r.cpu_s);
  if (typeof r.wall_s === 'number') result.events_per_s = Math.round(events / r.wall_s);
  if (typeof r.file_bytes === 'number') result.bytes_per_event = Math.round((r.file_bytes / events) * 100) / 100;
  rmSync(outPath, { force: true });
  return result;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  ensureDeps();
  const node = execFileSync(values.node, ['--version'], { encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'fluxo-bench-parquet-'));
  const plan = [{ candidate: 'none', codec: 'zstd' }];
  for (const candidate of candidates) for (const codec of codecs) plan.push({ candidate, codec });
  const results: RunResult[] = [];
  process.stderr.write(`${JSON.stringify({ ...machine(), child_node: node, events, batch: Number(values.batch) })}\n`);
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? plan : [...plan].reverse();
      for (const { candidate, codec } of order) {
        const r = await measure(candidate, codec, round, dir);
        results.push(r);
        process.stdout.write(`${JSON.stringify({ ...r, at: new Date().toISOString() })}\n`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = [
    '| candidate | codec | events/s (wall) | CPU-s | events/CPU-s | peak RSS MiB | file MiB | bytes/event | ok |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const { candidate, codec } of plan) {
    const runs = results.filter((r) => r.candidate === candidate && r.codec === codec);
    const good = runs.filter((r) => r.ok);
    const m = (key: string) => median(good.map((r) => r[key] as number));
    if (good.length === 0) {
      rows.push(`| ${candidate} | ${codec} | | | | | | | failed: ${String(runs[0]?.error ?? '').slice(0, 120)} |`);
      continue;
    }
    if (candidate === 'none') {
      rows.push(
        `| none (generation only, subtracted from the others) | - | | ${m('generation_cpu_s').toFixed(2)} | | ${m('peak_rss_mib').toFixed(0)} | | | ${good.length}/${runs.length} |`,
      );
      continue;
    }
    rows.push(
      `| ${candidate} | ${codec} | ${m('events_per_s').toLocaleString('en')} | ${m('cpu_s').toFixed(2)} | ${m('events_per_cpu_s').toLocaleString('en')} | ${m('peak_rss_mib').toFixed(0)} | ${(m('file_bytes') / 2 ** 20).toFixed(1)} | ${m('bytes_per_event').toFixed(1)} | ${good.length}/${runs.length} |`,
    );
  }
  process.stderr.write(
    `\nmedians of ${rounds} rounds, ${events.toLocaleString('en')} events, ${node}\n${rows.join('\n')}\n`,
  );
  process.exit(0);
}

await main();
