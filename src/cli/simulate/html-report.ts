import type { LatencyHistogram, SimulationCounters, TimelineInterval } from './stats.ts';
import type { VerifyReport } from './verify.ts';

/**
 * `fluxo simulate --html FILE`: the report as one self-contained HTML page (inline SVG, no script, no external
 * resource) with the send rate over time, the latency percentiles over time, the latency histogram, the
 * loss/duplicate verdict, and the text report itself, so every figure of the text report is in the page too.
 */

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const W = 720;
const H = 220;
const M = { left: 56, right: 16, top: 14, bottom: 34 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function short(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(n < 10 ? 2 : 0)}`;
}

interface Line {
  name: string;
  color: string;
  /** Dashed, for a line that often lies on another (acknowledged on sent). */
  dashed?: boolean;
  points: [number, number | undefined][];
}

/** A line chart: x in seconds from the start, y linear from 0 (or log10 when `log`). */
function lineChart(title: string, yLabel: string, lines: Line[], xMax: number, log = false): string {
  const values = lines.flatMap((l) => l.points.map((p) => p[1]).filter((v): v is number => v !== undefined && v > 0));
  const top = niceMax(Math.max(0, ...values));
  const bottom = log ? 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...values, top)))) : 0;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (s: number) => M.left + (xMax > 0 ? (s / xMax) * pw : 0);
  const y = (v: number) =>
    log
      ? M.top +
        ph -
        ((Math.log10(Math.max(v, bottom)) - Math.log10(bottom)) / (Math.log10(top) - Math.log10(bottom) || 1)) * ph
      : M.top + ph - (v / top) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(title)}">`,
  );
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#d0d5dd"/>`);
  const ticks = log
    ? Array.from({ length: Math.round(Math.log10(top / bottom)) + 1 }, (_, i) => bottom * 10 ** i)
    : [0, 0.25, 0.5, 0.75, 1].map((f) => f * top);
  for (const t of ticks) {
    parts.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eef0f3"/>`,
    );
    parts.push(
      `<text x="${M.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11">${short(t)}</text>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const s = (xMax * i) / 4;
    parts.push(`<text x="${x(s).toFixed(1)}" y="${H - 18}" text-anchor="middle" font-size="11">${short(s)} s</text>`);
  }
  parts.push(
    `<text x="12" y="${M.top + ph / 2}" font-size="11" transform="rotate(-90 12 ${M.top + ph / 2})" text-anchor="middle">${escapeHtml(yLabel)}</text>`,
  );
  lines.forEach((l, i) => {
    const pts = l.points
      .filter((p): p is [number, number] => p[1] !== undefined)
      .map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`);
    if (pts.length > 0)
      parts.push(
        `<polyline points="${pts.join(' ')}" fill="none" stroke="${l.color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      );
    parts.push(
      `<rect x="${M.left + 8 + i * 110}" y="${H - 10}" width="10" height="3" fill="${l.color}"/><text x="${M.left + 22 + i * 110}" y="${H - 6}" font-size="11">${escapeHtml(l.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Bars over logarithmic latency buckets (about 4 per power of ten). */
function histogramChart(h: LatencyHistogram): string {
  const raw = h.buckets();
  if (raw.length === 0) return '<p>No latency samples.</p>';
  const bins = new Map<number, number>();
  for (const b of raw) {
    const k = Math.ceil(Math.log10(b.upperMs) * 4);
    bins.set(k, (bins.get(k) ?? 0) + b.count);
  }
  const keys = [...bins.keys()].sort((a, b) => a - b);
  const from = keys[0]!;
  const to = keys.at(-1)!;
  const n = to - from + 1;
  const max = Math.max(...bins.values());
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const bw = pw / n;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="latency histogram">`,
  ];
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#d0d5dd"/>`);
  for (let k = from; k <= to; k++) {
    const c = bins.get(k) ?? 0;
    const bh = (c / max) * ph;
    const x = M.left + (k - from) * bw;
    parts.push(
      `<rect x="${(x + 1).toFixed(1)}" y="${(M.top + ph - bh).toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="#2563eb"><title>≤ ${short(10 ** (k / 4))} ms: ${c}</title></rect>`,
    );
    if ((k - from) % Math.max(1, Math.ceil(n / 8)) === 0)
      parts.push(
        `<text x="${(x + bw / 2).toFixed(1)}" y="${H - 18}" text-anchor="middle" font-size="11">${short(10 ** (k / 4))} ms</text>`,
      );
  }
  parts.push(`<text x="${M.left - 6}" y="${M.top + 10}" text-anchor="end" font-size="11">${short(max)}</text>`);
  parts.push(
    `<text x="${M.left + pw / 2}" y="${H - 4}" text-anchor="middle" font-size="11">latency (log scale), events per bucket</text>`,
  );
  parts.push('</svg>');
  return parts.join('');
}

export interface HtmlReportInput {
  report: Record<string, unknown>;
  /** The text report, as printed. */
  text: string;
  counters?: SimulationCounters | undefined;
}

/** The verdict in a word and a sentence: lost or duplicated events, from --verify and the acknowledgements. */
export function verdict(report: Record<string, unknown>): { ok: boolean; title: string; detail: string } {
  const v = report.verify as VerifyReport | undefined;
  const unacked = (report.unacknowledged as number | null | undefined) ?? 0;
  const notSent = (report.not_sent as number | undefined) ?? 0;
  const problems: string[] = [];
  if (v && v.missing > 0) problems.push(`${v.missing.toLocaleString('en-US')} lines missing from ${v.dir}`);
  if (unacked > 0) problems.push(`${unacked.toLocaleString('en-US')} lines not acknowledged`);
  if (notSent > 0) problems.push(`${notSent.toLocaleString('en-US')} lines never sent`);
  const dup =
    v && v.duplicated > 0 ? `; ${v.duplicated.toLocaleString('en-US')} duplicated (at-least-once, same _id)` : '';
  if (problems.length > 0) return { ok: false, title: 'LOSS', detail: `${problems.join(', ')}${dup}` };
  if (v)
    return {
      ok: true,
      title: 'NO LOSS',
      detail: `every one of ${v.expected.toLocaleString('en-US')} lines arrived${dup || '; no duplicates'}`,
    };
  if (report.acknowledged !== null && report.acknowledged !== undefined)
    return {
      ok: true,
      title: 'ALL ACKNOWLEDGED',
      detail: 'every line was acknowledged (run with --verify to check the output)',
    };
  return { ok: true, title: 'SENT', detail: 'no acknowledgement for this protocol: --verify is the proof of delivery' };
}

export function renderHtmlReport(input: HtmlReportInput): string {
  const { report, text, counters } = input;
  const v = verdict(report);
  const sections: string[] = [];
  const timeline = counters?.timeline;
  if (timeline && timeline.intervals.length > 0) {
    const step = timeline.intervalMs / 1000;
    const xs = (i: number) => (i + 0.5) * step;
    const intervals: TimelineInterval[] = timeline.intervals;
    const xMax = intervals.length * step;
    sections.push(
      '<section><h2>Send rate over time</h2>',
      lineChart(
        'send rate',
        'events/s',
        [
          { name: 'sent/s', color: '#2563eb', points: intervals.map((t, i) => [xs(i), t.sent / step]) },
          ...(report.acknowledged === null
            ? []
            : [
                {
                  name: 'acknowledged/s',
                  color: '#15803d',
                  dashed: true,
                  points: intervals.map((t, i): [number, number] => [xs(i), t.acknowledged / step]),
                },
              ]),
          { name: 'errors/s', color: '#dc2626', points: intervals.map((t, i) => [xs(i), t.errors / step]) },
        ],
        xMax,
      ),
      '</section>',
    );
    const ack = report.latency_kind !== 'send_side';
    const hist = (t: TimelineInterval) => (ack ? t.ackLatency : t.sendLatency);
    const pct = (p: number) => intervals.map((t, i): [number, number | undefined] => [xs(i), hist(t).percentile(p)]);
    sections.push(
      `<section><h2>Latency percentiles over time <small>(${ack ? 'send → acknowledgement' : 'send side'}, ms, log scale)</small></h2>`,
      lineChart(
        'latency percentiles',
        'ms',
        [
          { name: 'p50', color: '#2563eb', points: pct(50) },
          { name: 'p90', color: '#7c3aed', points: pct(90) },
          { name: 'p99', color: '#b45309', points: pct(99) },
          { name: 'p99.9', color: '#dc2626', points: pct(99.9) },
        ],
        xMax,
        true,
      ),
      '</section>',
      '<section><h2>Latency histogram</h2>',
      histogramChart(ack ? counters.ackLatency : counters.sendLatency),
      '</section>',
    );
  }
  const rows = Object.entries(report)
    .filter(([, value]) => value === null || typeof value !== 'object')
    .map(([k, value]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(String(value))}</td></tr>`);
  const latency = report.latency_ms as Record<string, number> | null | undefined;
  if (latency)
    for (const [k, value] of Object.entries(latency))
      rows.push(`<tr><th>latency ${escapeHtml(k)}</th><td>${value} ms</td></tr>`);
  const verify = report.verify as VerifyReport | undefined;
  if (verify)
    for (const [k, value] of Object.entries(verify))
      rows.push(
        `<tr><th>verify ${escapeHtml(k)}</th><td>${escapeHtml(Array.isArray(value) ? value.join(', ') : String(value))}</td></tr>`,
      );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fluxo simulate ${escapeHtml(String(report.run_id ?? ''))}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; max-width: 780px; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.3rem; } h2 { font-size: 1rem; margin: 1.4rem 0 .4rem; } small { color: #6b7280; font-weight: normal; }
svg { width: 100%; height: auto; font-family: inherit; } svg text { fill: #4b5563; }
.verdict { padding: .7rem 1rem; border-radius: 8px; border: 2px solid; }
.verdict.ok { border-color: #15803d; background: #f0fdf4; } .verdict.bad { border-color: #dc2626; background: #fef2f2; }
.verdict strong { font-size: 1.2rem; margin-right: .5rem; }
table { border-collapse: collapse; } th, td { text-align: left; padding: .15rem .8rem .15rem 0; border-bottom: 1px solid #eef0f3; }
th { font-weight: 600; color: #4b5563; } pre { background: #f5f6f8; padding: .7rem; overflow-x: auto; border-radius: 6px; }
</style>
</head>
<body>
<h1>fluxo simulate: run ${escapeHtml(String(report.run_id ?? ''))}</h1>
<div id="verdict" class="verdict ${v.ok ? 'ok' : 'bad'}"><strong>${escapeHtml(v.title)}</strong>${escapeHtml(v.detail)}</div>
${sections.join('\n')}
<section><h2>Figures</h2><table id="figures">${rows.join('')}</table></section>
<section><h2>Text report</h2><pre id="text-report">${escapeHtml(text)}</pre></section>
</body>
</html>
`;
}
