import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { runFluxo } from '../helpers/fluxo-process.ts';

/** A TCP server that accepts connections and never answers: an HTTP destination that hangs. */
async function silentServer(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** How long `fluxo run` may take to print its banner: from src/ through tsx on a busy 2-core machine, long. */
const STARTUP_MS = 120_000;

function config(dir: string, stalledPort: number, api = '{ address: 127.0.0.1:0 }'): string {
  return `
data_dir: ${dir}/data
api: ${api}
sources:
  gen: { type: generator, rate: 400, batch_size: 20 }
transforms:
  only_get: { type: filter, inputs: [gen], condition: 'message.contains("GET")' }
sinks:
  archive: { type: file, inputs: [only_get], path: "${dir}/out/part.ndjson" }
  counter: { type: blackhole, inputs: [gen] }
  stalled:
    type: http
    inputs: [only_get]
    uri: http://127.0.0.1:${stalledPort}/ingest
    request_timeout: 1s
    healthcheck: false
    retry: { initial_backoff: 200ms, max_backoff: 1s }
    buffer: { type: memory, max_events: 5000, when_full: drop_newest }
`;
}

/** Polls `probe` (in the page or here) until `ok` holds; fails with the last value. */
async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const attr = (page: Page, selector: string, name: string) =>
  page.evaluate(([s, n]) => document.querySelector(s!)?.getAttribute(n!) ?? null, [selector, name]);

function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return problems;
}

describe('dashboard in a real browser', () => {
  it('shows every node and edge, moving rates, the stalled sink filling and marked, its errors; no console error', async (t) => {
    if (!requireProgram(t, 'chromium', 'chromium')) return;
    const dir = tempDir(t);
    const fluxo = runFluxo(t, dir, config(dir, await silentServer(t)));
    const api = (await fluxo.waitFor(/api (http:\/\/\S+)/, STARTUP_MS))[1]!;
    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.context.newPage();
    const problems = watchConsole(page);
    await page.goto(`${api}/`);

    for (const id of ['gen', 'only_get', 'archive', 'counter', 'stalled', 'dead_letter'])
      await page.waitForSelector(`svg [data-node="${id}"]`, { timeout: 30_000 });
    for (const edge of ['gen->only_get', 'only_get->archive', 'gen->counter', 'only_get->stalled'])
      assert.ok(await page.$(`svg path[data-edge="${edge}"]`), `edge ${edge} drawn`);
    assert.equal(await page.textContent('#live'), 'live');

    // Rates move: the generator's out rate is above zero and the counts in the ledger keep growing.
    await eventually(
      () => attr(page, '[data-node="gen"]', 'data-out'),
      (v) => Number(v) > 0,
      'gen out/s > 0',
    );
    await eventually(
      () => attr(page, '[data-edge="gen->counter"]', 'data-rate'),
      (v) => Number(v) > 0,
      'edge rate',
    );
    const accepted = () => page.textContent('#ledger tr[data-source="gen"] td:nth-child(2)');
    const first = await accepted();
    await eventually(accepted, (v) => v !== first, 'the ledger moving');

    // The stalled sink: its buffer fills (and keeps filling), it is marked, and its timeouts count as errors.
    const fill = () => attr(page, '[data-node="stalled"]', 'data-fill').then(Number);
    const f1 = await eventually(fill, (v) => v > 0, 'stalled buffer above 0');
    // On a slow machine the page may first see it already full (drop_newest keeps it at 1): nothing left to rise.
    if (f1 < 1) await eventually(fill, (v) => v > f1, 'stalled buffer fill rising');
    await eventually(
      () => attr(page, '[data-node="stalled"]', 'data-stalled'),
      (v) => v === 'true',
      'stalled mark',
    );
    assert.equal(await page.textContent('[data-node="stalled"] text.badge'), 'STALLED');
    assert.ok(await page.$('#components tr.stalled[data-component="stalled"]'), 'the table marks it too');
    await eventually(
      () => attr(page, '[data-node="stalled"]', 'data-errors'),
      (v) => Number(v) > 0,
      'an error count',
    );
    assert.match((await page.textContent('[data-node="stalled"] text.errors'))!, /errors [1-9]/);
    // Its full drop_newest buffer drops: the ledger shows them under their cause, not just as a total.
    const cause = '#ledger tr[data-source="gen"] [data-cause="buffer_full"]';
    await page.waitForSelector(cause, { timeout: 90_000 });
    assert.match((await page.textContent(cause))!, /^buffer full [1-9]/);
    assert.ok(Number(await attr(page, '#ledger tr[data-source="gen"] td[data-dropped]', 'data-dropped')) > 0);
    assert.match((await attr(page, '#ledger tr[data-source="gen"] td[data-dropped]', 'title'))!, /buffer full: [1-9]/);
    assert.equal(await page.$('#ledger tr[data-source="gen"] [data-cause="udp_kernel"]'), null, 'no other cause');
    assert.equal(await attr(page, '[data-node="counter"]', 'data-errors'), '0');
    assert.equal(await attr(page, '[data-node="counter"]', 'data-stalled'), 'false');

    // The redacted config is there; the tap view streams the filter's events.
    assert.match((await page.textContent('#config'))!, /"stalled"/);
    await page.selectOption('#tap-component', 'only_get');
    await page.click('#tap-start');
    await eventually(
      () => page.textContent('#tap-out'),
      (v) => /"message":".*GET/.test(v ?? ''),
      'tapped events',
    );

    // Kept after the test, as an artifact to look at.
    const shot = join(mkdtempSync(join(tmpdir(), 'fluxo-dashboard-shot-')), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, 'a screenshot was written');
    process.stderr.write(`dashboard screenshot: ${shot}\n`);
    assert.deepEqual(problems, []);
  });

  it('with api.auth: 401 without the token; /?token= once sets a cookie, then the page and its event stream work', async (t) => {
    if (!requireProgram(t, 'chromium', 'chromium')) return;
    const dir = tempDir(t);
    const token = 'dashboard-test-token';
    const fluxo = runFluxo(
      t,
      dir,
      config(dir, await silentServer(t), `{ address: 127.0.0.1:0, auth: { strategy: bearer, token: ${token} } }`),
    );
    const api = (await fluxo.waitFor(/api (http:\/\/\S+)/, STARTUP_MS))[1]!;
    for (const path of ['/', '/api/snapshot', '/api/events', '/api/config', '/metrics', '/dashboard.js']) {
      assert.equal((await fetch(`${api}${path}`)).status, 401, path);
      assert.equal((await fetch(`${api}${path}?token=wrong`, { redirect: 'manual' })).status, 401, path);
    }
    const withHeader = await fetch(`${api}/api/snapshot`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(withHeader.status, 200);
    const shown = await (await fetch(`${api}/api/config`, { headers: { authorization: `Bearer ${token}` } })).text();
    assert.ok(!shown.includes(token), 'the token never shows in the config view');
    assert.match(shown, /"token": "\*\*\*"/);

    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.context.newPage();
    const refused = await page.goto(`${api}/`);
    assert.equal(refused?.status(), 401);
    assert.match(await page.content(), /\?token=/, 'the 401 page says how to get in');

    // A fresh page: the refused one's own "401" console line can arrive after its goto resolved.
    const authorized = await browser.context.newPage();
    const problems = watchConsole(authorized);
    await authorized.goto(`${api}/?token=${token}`);
    assert.equal(new URL(authorized.url()).search, '', 'the token left the address bar');
    await authorized.waitForSelector('svg [data-node="stalled"]', { timeout: 30_000 });
    await eventually(
      () => authorized.textContent('#live'),
      (v) => v === 'live',
      'the event stream connected',
    );
    await eventually(
      () => attr(authorized, '[data-node="gen"]', 'data-out'),
      (v) => Number(v) > 0,
      'live numbers',
    );
    const cookies = await browser.context.cookies();
    assert.ok(
      cookies.some((c) => c.name === 'fluxo_token' && c.httpOnly),
      'an HttpOnly cookie',
    );
    assert.deepEqual(problems, []);
  });
});
