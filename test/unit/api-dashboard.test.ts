import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactedConfig } from '../../src/api/config-view.ts';
import { ApiServer } from '../../src/api/server.ts';
import { PipelineTelemetry } from '../../src/api/telemetry.ts';
import { HttpAuthenticator } from '../../src/codecs/http-auth.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';
import type { PipelineConfig } from '../../src/core/pipeline-config.ts';
import { testLogger } from '../helpers/context.ts';

function telemetry() {
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  const src = metrics.forComponent('src', 'source', 'generator');
  return {
    src,
    telemetry: new PipelineTelemetry(
      {
        registry: metrics.registry,
        graph: () => [{ id: 'src', kind: 'source', type: 'generator', inputs: [] }],
        oldestUnsettled: () => new Map(),
        state: () => 'running',
      },
      { intervalMs: 100 },
    ),
  };
}

async function start(t: { after: (fn: () => unknown) => void }, auth?: HttpAuthenticator) {
  const { telemetry: tel, src } = telemetry();
  const api = new ApiServer(
    '127.0.0.1:0',
    {
      state: () => 'running',
      metrics: async () => '',
      describe: () => ({ version: 'x', sources: [] }),
      telemetry: tel,
      config: () => ({ sinks: { out: { password: '***' } } }),
    },
    testLogger(),
    auth,
  );
  const url = await api.start();
  t.after(() => api.stop());
  return { url, src };
}

/** Reads `count` SSE events from `res`. */
async function sseEvents(res: Response, count: number): Promise<{ event: string; data: string }[]> {
  const out: { event: string; data: string }[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) out.push({ event, data });
      if (out.length >= count) return out;
      end = buffer.indexOf('\n\n');
    }
  }
  return out;
}

describe('ApiServer dashboard routes', () => {
  it('serves the page to a browser and JSON to everyone else, at / and /api/topology', async (t) => {
    const { url } = await start(t);
    const page = await fetch(`${url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /script-src 'self'/);
    const html = await page.text();
    assert.match(html, /<script src="\/dashboard\.js" defer><\/script>/);
    assert.doesNotMatch(html, /https?:\/\/(?!127)/, 'nothing from a CDN');
    assert.deepEqual(await (await fetch(`${url}/`)).json(), { version: 'x', sources: [] });
    assert.deepEqual(await (await fetch(`${url}/`, { headers: { accept: 'application/json' } })).json(), {
      version: 'x',
      sources: [],
    });
    assert.deepEqual(await (await fetch(`${url}/api/topology`)).json(), { version: 'x', sources: [] });
    const js = await fetch(`${url}/dashboard.js`);
    assert.match(js.headers.get('content-type')!, /javascript/);
    const source = await js.text();
    assert.doesNotThrow(() => new Function(source), 'the client parses as a script');
    assert.match(await (await fetch(`${url}/dashboard.css`)).text(), /@media \(max-width/);
    assert.deepEqual(await (await fetch(`${url}/api/config`)).json(), { sinks: { out: { password: '***' } } });
  });

  it('/api/events streams one snapshot at once and then one per sample', async (t) => {
    const { url, src } = await start(t);
    src.receivedEvents.inc(5);
    const controller = new AbortController();
    t.after(() => controller.abort());
    const res = await fetch(`${url}/api/events`, { signal: controller.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const events = await sseEvents(res, 3);
    assert.deepEqual(
      events.map((e) => e.event),
      ['snapshot', 'snapshot', 'snapshot'],
    );
    const snapshots = events.map((e) => JSON.parse(e.data) as Record<string, unknown>);
    for (const s of snapshots) {
      assert.deepEqual(Object.keys(s).sort(), ['at', 'components', 'edges', 'interval_ms', 'ledger', 'state']);
      assert.equal(s.interval_ms, 100);
    }
    assert.ok((snapshots[2]!.at as number) > (snapshots[0]!.at as number));
    const history = (await (await fetch(`${url}/api/history`)).json()) as { at: number[]; series: object };
    assert.ok(history.at.length >= 2);
    assert.deepEqual(Object.keys(history.series).sort(), ['dead_letter', 'src']);
  });

  it('with a bearer token: 401 without it; ?token= sets an HttpOnly cookie and redirects; the cookie then works', async (t) => {
    const { url } = await start(t, new HttpAuthenticator({ strategy: 'bearer', token: 'tok en' }));
    const page = await fetch(`${url}/`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 401);
    assert.match(await page.text(), /\?token=/);
    assert.equal((await fetch(`${url}/api/events`)).status, 401);
    const login = await fetch(`${url}/?token=tok%20en&x=1`, { redirect: 'manual' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/?x=1');
    const cookie = login.headers.get('set-cookie')!;
    assert.match(cookie, /^fluxo_token=tok%20en; HttpOnly; SameSite=Strict; Path=\//);
    const withCookie = { cookie: cookie.split(';')[0]! };
    assert.equal((await fetch(`${url}/api/snapshot`, { headers: withCookie })).status, 200);
    assert.equal((await fetch(`${url}/`, { headers: { ...withCookie, accept: 'text/html' } })).status, 200);
    assert.equal((await fetch(`${url}/api/snapshot`, { headers: { cookie: 'fluxo_token=nope' } })).status, 401);
    assert.equal((await fetch(`${url}/?token=nope`, { redirect: 'manual' })).status, 401);
  });
});

describe('redactedConfig', () => {
  it('masks every secret: by key, inside auth blocks, URL passwords and inline PEM; keeps the rest', () => {
    const config = {
      dataDir: '/d',
      api: { enabled: true, address: '0.0.0.0:8686', auth: { strategy: 'bearer', token: 'T0KEN' } },
      shutdownTimeoutMs: 1000,
      sources: new Map([
        ['in', { id: 'in', type: 'http', options: { auth: { strategy: 'basic', user: 'u', password: 'PW' } } }],
      ]),
      transforms: new Map([
        ['r', { id: 'r', type: 'remap', inputs: ['in'], options: { hash_key: 'HK', source: '.a = 1' } }],
      ]),
      sinks: new Map([
        [
          'out',
          {
            id: 'out',
            type: 'http',
            inputs: ['r'],
            buffer: { type: 'memory', maxEvents: 10, maxBytes: 100, whenFull: 'block' },
            options: {
              uri: 'https://user:URLPW@example.com/x',
              headers: { Authorization: 'Bearer HDR', 'X-Tenant': 'web' },
              secret_access_key: 'AWS',
              tls: { key_pem: '-----BEGIN PRIVATE KEY-----\nPEM' },
            },
          },
        ],
      ]),
    } as unknown as PipelineConfig;
    const text = JSON.stringify(redactedConfig(config));
    for (const secret of ['T0KEN', 'PW', 'HK', 'URLPW', 'HDR', 'AWS', 'PEM']) assert.ok(!text.includes(secret), secret);
    const shown = redactedConfig(config) as Record<string, Record<string, Record<string, unknown>>>;
    assert.deepEqual(shown.api!.auth, { strategy: 'bearer', token: '***' });
    assert.deepEqual((shown.sources!.in as Record<string, unknown>).auth, {
      strategy: 'basic',
      user: 'u',
      password: '***',
    });
    assert.equal((shown.sinks!.out as Record<string, unknown>).uri, 'https://user:***@example.com/x');
    assert.deepEqual((shown.sinks!.out as Record<string, unknown>).headers, {
      Authorization: '***',
      'X-Tenant': 'web',
    });
    assert.deepEqual((shown.sinks!.out as Record<string, unknown>).inputs, ['r']);
    assert.equal((shown.transforms!.r as Record<string, unknown>).source, '.a = 1');
  });
});
