/**
 * `npm run bench:chart -- [--out DIR] [--metric NAME]... [LABEL=]FILE.jsonl ...`: renders the JSON lines that
 * `npm run bench` prints (one per run) to one SVG chart per scenario, comparing the files side by side: a panel
 * per metric (default events/s, events per CPU-second, peak RSS), one bar per file at the median of its runs with
 * a whisker from the slowest to the fastest run. `-` reads standard input, so `npm run bench | npm run bench:chart -- -`
 * works. Failed runs (`ok: false`) are left out and counted under the chart.
 *
 *   npm run bench:chart -- before=bench/results/a.jsonl after=bench/results/b.jsonl --out /tmp/charts
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string', default: 'bench-charts' },
    metric: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const LABELS: Record<string, string> = {
  events_per_s: 'events/s',
  events_per_cpu_s: 'events per CPU-second',
  peak_rss_mib: 'peak RSS (MiB)',
  mib_per_s: 'MiB/s',
  cpu_s: 'CPU seconds',
  wall_s: 'wall seconds',
};
const COLORS = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#0ea5e9', '#84cc16', '#ec4899'];

if (values.help || positionals.length === 0) {
  process.stdout.write(
    'npm run bench:chart -- [--out DIR] [--metric NAME]... [LABEL=]FILE.jsonl ... (- for standard input)\n',
  );
  process.exit(values.help ? 0 : 2);
}
const metrics = values.metric ?? ['events_per_s', 'events_per_cpu_s', 'peak_rss_mib'];

type Run = Record<string, unknown>;
const series: { label: string; runs: Run[]; failed: number }[] = [];
for (const arg of positionals) {
  const eq = arg.indexOf('=');
  const path = eq > 0 ? arg.slice(eq + 1) : arg;
  const label = eq > 0 ? arg.slice(0, eq) : path === '-' ? 'stdin' : basename(path).replace(/\.jsonl?$/, '');
  const text = readFileSync(path === '-' ? 0 : path, 'utf8');
  const runs: Run[] = [];
  let failed = 0;
  for (const line of text.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const r = JSON.parse(line) as Run;
    if (typeof r.scenario !== 'string') continue;
    if (r.ok === false) failed++;
    else runs.push(r);
  }
  series.push({ label, runs, failed });
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const short = (n: number) =>
  n >= 1e6 ? `${+(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${+(n / 1e3).toFixed(0)}k` : `${+n.toFixed(n < 10 ? 2 : 0)}`;
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function chart(scenario: string): string {
  const PANEL_W = 260;
  const PANEL_H = 220;
  const TOP = 70;
  const LEFT = 50;
  const legendH = 22 * series.length + 16;
  const width = metrics.length * (PANEL_W + LEFT) + 20;
  const height = TOP + PANEL_H + 40 + legendH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="17" font-weight="600" fill="#1d2330">${escapeHtml(scenario)}</text>`,
  ];
  metrics.forEach((metric, mi) => {
    const x0 = 10 + mi * (PANEL_W + LEFT) + LEFT;
    const stats = series.map((s) => {
      const xs = s.runs
        .filter((r) => r.scenario === scenario)
        .map((r) => r[metric])
        .filter((v): v is number => typeof v === 'number');
      return xs.length === 0
        ? undefined
        : { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
    });
    const top = niceMax(Math.max(0, ...stats.map((s) => s?.max ?? 0)));
    const y = (v: number) => TOP + PANEL_H - (v / top) * PANEL_H;
    parts.push(
      `<text x="${x0}" y="${TOP - 24}" font-size="13" fill="#4b5563">${escapeHtml(LABELS[metric] ?? metric)}</text>`,
    );
    for (const f of [0, 0.5, 1]) {
      parts.push(
        `<line x1="${x0}" x2="${x0 + PANEL_W}" y1="${y(f * top)}" y2="${y(f * top)}" stroke="#e5e7eb"/>`,
        `<text x="${x0 - 6}" y="${y(f * top) + 4}" font-size="11" text-anchor="end" fill="#6b7280">${short(f * top)}</text>`,
      );
    }
    const bw = PANEL_W / Math.max(1, series.length);
    stats.forEach((s, i) => {
      if (!s) return;
      const bx = x0 + i * bw + bw * 0.15;
      const w = bw * 0.7;
      parts.push(
        `<rect x="${bx.toFixed(1)}" y="${y(s.median).toFixed(1)}" width="${w.toFixed(1)}" height="${(TOP + PANEL_H - y(s.median)).toFixed(1)}" fill="${COLORS[i % COLORS.length]}"><title>${escapeHtml(series[i]!.label)}: median ${s.median} of ${s.n} runs</title></rect>`,
        `<line x1="${(bx + w / 2).toFixed(1)}" x2="${(bx + w / 2).toFixed(1)}" y1="${y(s.min).toFixed(1)}" y2="${y(s.max).toFixed(1)}" stroke="#111827" stroke-width="1.5"/>`,
        `<text x="${(bx + w / 2).toFixed(1)}" y="${(y(s.max) - 5).toFixed(1)}" font-size="11" text-anchor="middle" fill="#111827">${short(s.median)}</text>`,
      );
    });
  });
  series.forEach((s, i) => {
    const n = s.runs.filter((r) => r.scenario === scenario).length;
    const ly = TOP + PANEL_H + 34 + i * 22;
    const commit = s.runs.find((r) => r.scenario === scenario)?.commit;
    parts.push(
      `<rect x="16" y="${ly - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="34" y="${ly}" font-size="12" fill="#1d2330">${escapeHtml(s.label)} (${n} run${n === 1 ? '' : 's'}${commit ? `, ${escapeHtml(String(commit))}` : ''}${s.failed ? `, ${s.failed} failed runs left out` : ''})</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

const scenarios = [...new Set(series.flatMap((s) => s.runs.map((r) => r.scenario as string)))].sort();
mkdirSync(values.out!, { recursive: true });
for (const scenario of scenarios) {
  const file = join(values.out!, `${scenario.replace(/[^A-Za-z0-9_.-]/g, '_')}.svg`);
  writeFileSync(file, chart(scenario));
  process.stdout.write(`${file}\n`);
}
if (scenarios.length === 0) {
  process.stderr.write('bench:chart: no successful runs in the input\n');
  process.exit(1);
}
