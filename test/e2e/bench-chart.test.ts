import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/context.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/bench-chart.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    input,
  });
}

const line = (scenario: string, eps: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ scenario, ok: true, events_per_s: eps, events_per_cpu_s: eps * 2, peak_rss_mib: 100, ...extra });

describe('npm run bench:chart', () => {
  it('draws one SVG per scenario, a bar per file at the median of its runs, failed runs left out and counted', (t) => {
    const dir = tempDir(t, 'fluxo-bench-chart-');
    const before = join(dir, 'before.jsonl');
    const after = join(dir, 'after.jsonl');
    writeFileSync(
      before,
      [
        'not json: a text line the bench prints',
        line('socket-file', 100, { commit: 'abc123' }),
        line('socket-file', 300),
        line('socket-file', 200),
        line('other', 50),
      ].join('\n'),
    );
    writeFileSync(
      after,
      [line('socket-file', 400), JSON.stringify({ scenario: 'socket-file', ok: false }), line('socket-file', 600)].join(
        '\n',
      ),
    );
    const out = join(dir, 'charts');
    const r = run([`before=${before}`, `after=${after}`, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['other.svg', 'socket-file.svg']);

    const svg = readFileSync(join(out, 'socket-file.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    const titles = [...svg.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]);
    // Three panels (events/s, events per CPU-second, peak RSS), one bar per file in each.
    assert.deepEqual(titles.slice(0, 2), ['before: median 200 of 3 runs', 'after: median 500 of 2 runs']);
    assert.deepEqual(titles.slice(2, 4), ['before: median 400 of 3 runs', 'after: median 1000 of 2 runs']);
    assert.equal(titles.length, 6);
    assert.match(svg, /before \(3 runs, abc123\)/);
    assert.match(svg, /after \(2 runs, 1 failed runs left out\)/);

    const other = readFileSync(join(out, 'other.svg'), 'utf8');
    assert.deepEqual(
      [...other.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]),
      ['before: median 50 of 1 runs', 'before: median 100 of 1 runs', 'before: median 100 of 1 runs'],
    );
  });

  it('reads standard input with -, and exits 1 naming the reason when no run succeeded', (t) => {
    const dir = tempDir(t, 'fluxo-bench-chart-');
    const ok = run(['-', '--out', dir, '--metric', 'peak_rss_mib'], `${line('s', 1, { peak_rss_mib: 42 })}\n`);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(readFileSync(join(dir, 's.svg'), 'utf8'), /<title>stdin: median 42 of 1 runs<\/title>/);
    const none = run(['-', '--out', dir], `${JSON.stringify({ scenario: 's', ok: false })}\n`);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no successful runs/);
  });
});
