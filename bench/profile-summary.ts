/**
 * Where a Fluxo process spends its CPU, from a V8 `.cpuprofile` (`node --cpu-prof`):
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top 15] [--markdown]
 *
 * Self time per function (file:line in src/, mapped back through tsx's source maps), inclusive time of the
 * busiest functions, and self time per file or package. Percentages are of the *busy* time: the samples
 * where the main thread was not idle. Off-thread work (gzip in the libuv pool, GC helper threads) is not
 * in a main-thread profile; the bench's CPU seconds include it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TsxSourceMaps } from './lib/tsx-source-maps.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  name: string;
  /** `src/sinks/file.ts:123`, `node:internal/...:45`, or a V8 pseudo-frame like `(garbage collector)`. */
  location: string;
  self_ms: number;
  self_pct: number;
  total_ms: number;
  total_pct: number;
}

export interface ProfileSummary {
  profile: string;
  duration_ms: number;
  busy_ms: number;
  idle_ms: number;
  samples: number;
  functions: HotFunction[];
  /** Self time by file (src/) or package (node_modules/…) or `node:` internals. */
  files: { file: string; self_ms: number; self_pct: number }[];
  /** Inclusive (self + callees) time of the functions in src/, busiest first: which part of Fluxo costs what. */
  inclusive: HotFunction[];
}

function displayPath(url: string): string {
  if (url.startsWith('file://')) {
    const rel = relative(ROOT, fileURLToPath(url));
    const nm = rel.lastIndexOf('node_modules/');
    return nm >= 0 ? rel.slice(nm) : rel;
  }
  return url;
}

/** `node_modules/pino/lib/x.js` → `node_modules/pino`; src files and node internals stay as they are. */
function fileGroup(path: string): string {
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (m) return `node_modules/${m[1]}`;
  if (path.startsWith('node:')) return 'node: internals';
  return path === '' ? '(V8 / native)' : path;
}

/**
 * `window`: only samples taken between these two CLOCK_MONOTONIC times in microseconds (what
 * `process.hrtime.bigint() / 1000n` reads in any process), e.g. from the first byte sent to the last event
 * delivered, leaving start-up and shutdown out.
 */
export function summariseProfile(path: string, top = 15, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }

  const maps = new TsxSourceMaps();
  const framesByUrl = new Map<string, CallFrame[]>();
  for (const n of profile.nodes) {
    if (!n.callFrame.url.endsWith('.ts')) continue;
    const list = framesByUrl.get(n.callFrame.url) ?? [];
    list.push(n.callFrame);
    framesByUrl.set(n.callFrame.url, list);
  }
  const keyOf = new Map<number, string>();
  const info = new Map<string, { name: string; location: string; file: string }>();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    let name = f.functionName || '(anonymous)';
    if (f.functionName === '' && f.url === '') {
      // Native code V8 cannot name (e.g. flattening and UTF-8 encoding a string in Buffer.from): name its caller.
      const p = parent.get(n.id);
      const caller = p === undefined ? undefined : byId.get(p)!.callFrame;
      name = caller
        ? `(native, in ${caller.functionName || '(anonymous)'} ${displayPath(caller.url)}:${caller.lineNumber + 1})`
        : '(native)';
    }
    let location: string;
    const file = displayPath(f.url);
    if (f.url === '') {
      location = '';
    } else if (f.url.endsWith('.ts') && f.url.startsWith('file://')) {
      const line = maps.sourceLine(f.url, f.lineNumber, f.columnNumber, framesByUrl.get(f.url) ?? []);
      location = `${file}:${line ?? `?(generated ${f.lineNumber + 1}:${f.columnNumber + 1})`}`;
    } else {
      location = `${file}:${f.lineNumber + 1}`;
    }
    const key = `${name}\u0000${location}`;
    keyOf.set(n.id, key);
    if (!info.has(key)) info.set(key, { name, location, file });
  }

  // timeDeltas[i] is the time from sample i-1 to sample i: charge sample i with the interval that follows it.
  const samples = profile.samples;
  const deltas = profile.timeDeltas;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  let at = profile.startTime;
  let counted = 0;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i]!;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    counted++;
    const us = Math.max(0, i + 1 < deltas.length ? deltas[i + 1]! : 0);
    const id = samples[i]!;
    const key = keyOf.get(id)!;
    const name = byId.get(id)!.callFrame.functionName;
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    self.set(key, (self.get(key) ?? 0) + us);
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const k = keyOf.get(n)!;
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }

  const pct = (us: number) => Math.round((us / busyUs) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const functions = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us]) => {
      const { name, location } = info.get(key)!;
      const t = total.get(key) ?? us;
      return { name, location, self_ms: ms(us), self_pct: pct(us), total_ms: ms(t), total_pct: pct(t) };
    });
  const inclusive = [...total.entries()]
    .filter(([key]) => info.get(key)!.location.startsWith('src/'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us]) => {
      const { name, location } = info.get(key)!;
      const own = self.get(key) ?? 0;
      return { name, location, self_ms: ms(own), self_pct: pct(own), total_ms: ms(us), total_pct: pct(us) };
    });
  const perFile = new Map<string, number>();
  for (const [key, us] of self) {
    const group = fileGroup(info.get(key)!.file);
    perFile.set(group, (perFile.get(group) ?? 0) + us);
  }
  const files = [...perFile.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([file, us]) => ({ file, self_ms: ms(us), self_pct: pct(us) }));
  return {
    profile: path,
    duration_ms: window
      ? ms(Math.min(window.toUs, profile.endTime) - Math.max(window.fromUs, profile.startTime))
      : ms(profile.endTime - profile.startTime),
    busy_ms: ms(busyUs),
    idle_ms: ms(idleUs),
    samples: counted,
    functions,
    files,
    inclusive,
  };
}

export function formatSummary(s: ProfileSummary): string {
  const out: string[] = [];
  out.push(
    `Main-thread profile: ${(s.duration_ms / 1000).toFixed(1)} s, busy ${(s.busy_ms / 1000).toFixed(2)} s, idle ${(s.idle_ms / 1000).toFixed(2)} s (${s.samples} samples). % of busy time.`,
  );
  out.push('');
  out.push('| # | self % | self ms | total % | function | where |');
  out.push('|--:|------:|-------:|-------:|----------|-------|');
  s.functions.forEach((f, i) => {
    out.push(
      `| ${i + 1} | ${f.self_pct} | ${f.self_ms} | ${f.total_pct} | \`${f.name}\` | ${f.location || '(native)'} |`,
    );
  });
  out.push('');
  out.push('Self time by file or package:');
  out.push('');
  out.push('| self % | self ms | file |');
  out.push('|------:|-------:|------|');
  for (const f of s.files) out.push(`| ${f.self_pct} | ${f.self_ms} | ${f.file} |`);
  out.push('');
  out.push('Inclusive time (self + callees) of Fluxo functions:');
  out.push('');
  out.push('| total % | total ms | self % | function | where |');
  out.push('|-------:|--------:|------:|----------|-------|');
  for (const f of s.inclusive)
    out.push(`| ${f.total_pct} | ${f.total_ms} | ${f.self_pct} | \`${f.name}\` | ${f.location} |`);
  return out.join('\n');
}

/** The main thread's profile in a --cpu-prof directory (thread 0; tsx's loader thread writes its own). */
export function mainThreadProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const main = files.filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  const pick = (main.length > 0 ? main : files).sort().pop();
  return pick === undefined ? undefined : join(dir, pick);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '15' },
      json: { type: 'boolean', default: false },
      from: { type: 'string' },
      to: { type: 'string' },
    },
  });
  let file = positionals[0];
  if (!file) {
    process.stderr.write(
      'usage: node --import tsx bench/profile-summary.ts <file.cpuprofile | cpu-prof dir> [--top N] [--json] [--from US --to US]\n',
    );
    process.exit(2);
  }
  if (!file.endsWith('.cpuprofile')) file = mainThreadProfile(file) ?? file;
  const top = Number(values.top);
  const window =
    values.from !== undefined && values.to !== undefined
      ? { fromUs: Number(values.from), toUs: Number(values.to) }
      : undefined;
  const summary = summariseProfile(file, top, window);
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(`${formatSummary(summary)}\n`);
}
