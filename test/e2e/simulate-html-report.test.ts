import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { launchChromium } from '../helpers/chromium.ts';
import { tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { FluxoProcess, runFluxo } from '../helpers/fluxo-process.ts';

const VOID = new Set(['meta', 'link', 'br', 'hr', 'img', 'input', 'area', 'base', 'col', 'source', 'track', 'wbr']);

/** Checks that every element is closed in order (SVG's self-closing ones included); returns the tag counts. */
function checkWellFormed(html: string): Map<string, number> {
  const counts = new Map<string, number>();
  const open: string[] = [];
  const body = html.replace(/<style>[\s\S]*?<\/style>/g, '<style></style>');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?(\/?)>/g)) {
    const [, closing, rawName, selfClosing] = m;
    const name = rawName!.toLowerCase();
    if (closing) {
      const top = open.pop();
      assert.equal(top, name, `</${name}> closes <${top}> at offset ${m.index}`);
    } else {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      if (!selfClosing && !VOID.has(name)) open.push(name);
    }
  }
  assert.deepEqual(open, [], 'every element closed');
  return counts;
}

describe('fluxo simulate --html', () => {
  it('writes a valid HTML page with the charts, the verdict and every figure of the text report', async (t) => {
    const dir = tempDir(t);
    const fluxo = runFluxo(
      t,
      dir,
      `
data_dir: ${dir}/data
api: { enabled: false }
sources:
  web: { type: http, address: 127.0.0.1:0 }
sinks:
  out: { type: blackhole, inputs: [web] }
`,
    );
    // A generous wait: from src/ through tsx on a busy 2-core machine the banner can take long.
    const port = Number((await fluxo.waitFor(/source web \([^)]*\): listening on \w+ [^\s]+:(\d+)/, 120_000))[1]);
    const file = join(dir, 'report.html');
    const sim = new FluxoProcess([
      'simulate',
      '--target',
      `127.0.0.1:${port}`,
      '--protocol',
      'http',
      '--servers',
      '4',
      '--rate',
      '400',
      '--duration',
      '3s',
      '--flush-interval',
      '200ms',
      '--html',
      file,
    ]);
    assert.equal(await sim.exit(), 0, sim.stderr);
    assert.match(sim.stderr, /HTML report written to/);
    const text = sim.stdout;
    const html = readFileSync(file, 'utf8');

    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    const counts = checkWellFormed(html);
    for (const tag of ['html', 'head', 'body']) assert.equal(counts.get(tag), 1, tag);
    assert.match(html, /<head>[\s\S]*<title>fluxo simulate \w+<\/title>[\s\S]*<\/head>/);
    assert.equal(counts.get('svg'), 3, 'rate, percentiles and histogram charts');
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'no script, nothing external');

    // Every number of the text report is in the page's figures table, not only in the copied text.
    const figures = html.slice(html.indexOf('<table id="figures">'), html.indexOf('</table>'));
    const generated = /generated\s+([\d,]+)/.exec(text)![1]!.replace(/,/g, '');
    assert.equal(generated, '1200');
    assert.match(figures, new RegExp(`<th>generated</th><td>${generated}</td>`));
    assert.match(figures, new RegExp(`<th>acknowledged</th><td>${generated}</td>`));
    const latency = /p50 ([\d.]+) ms\s+p90 ([\d.]+) ms\s+p99 ([\d.]+) ms\s+p99\.9 ([\d.]+) ms\s+max ([\d.]+) ms/.exec(
      text,
    );
    assert.ok(latency, text);
    for (const [i, name] of ['p50', 'p90', 'p99', 'p99.9', 'max'].entries())
      assert.match(figures, new RegExp(`<th>latency ${name.replace('.', '\\.')}</th><td>${latency[i + 1]} ms</td>`));
    const rate = /rate achieved\s+([\d,]+)/.exec(text)![1]!.replace(/,/g, '');
    assert.match(figures, new RegExp(`<th>rate_achieved</th><td>${rate}</td>`));
    assert.ok(
      html.includes(text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')),
      'the text report',
    );

    // And a browser reads it the same way.
    if (!requireProgram(t, 'chromium', 'chromium')) return;
    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.context.newPage();
    await page.goto(pathToFileURL(file).href);
    assert.equal(await page.locator('svg').count(), 3);
    assert.match((await page.textContent('#verdict'))!, /ALL ACKNOWLEDGED/);
    assert.equal((await page.locator('svg polyline').count()) >= 5, true, 'lines drawn');
  });
});
