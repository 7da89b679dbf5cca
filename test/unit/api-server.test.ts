import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiServer } from '../../src/api/server.ts';
import { HttpAuthenticator } from '../../src/codecs/http-auth.ts';
import { testLogger } from '../helpers/context.ts';

describe('ApiServer', () => {
  it('answers /health 503 unless running, and serves /metrics', async (t) => {
    let state = 'starting';
    const api = new ApiServer(
      '127.0.0.1:0',
      { state: () => state, metrics: async () => 'm_total 1\n', describe: () => ({ ok: 1 }) },
      testLogger(),
    );
    const url = await api.start();
    t.after(() => api.stop());
    assert.equal((await fetch(`${url}/health`)).status, 503);
    state = 'running';
    assert.equal((await fetch(`${url}/health`)).status, 200);
    state = 'draining';
    const draining = await fetch(`${url}/health`);
    assert.equal(draining.status, 503);
    assert.deepEqual(await draining.json(), { status: 'draining' });
    const metrics = await fetch(`${url}/metrics`);
    assert.match(metrics.headers.get('content-type')!, /text\/plain/);
    assert.equal(await metrics.text(), 'm_total 1\n');
    assert.deepEqual(await (await fetch(`${url}/`)).json(), { ok: 1 });
    assert.equal((await fetch(`${url}/health`, { method: 'POST' })).status, 405);
  });

  it('with api.auth, answers 401 without the credentials, except /health', async (t) => {
    const api = new ApiServer(
      '127.0.0.1:0',
      { state: () => 'running', metrics: async () => 'm_total 1\n', describe: () => ({ ok: 1 }) },
      testLogger(),
      new HttpAuthenticator({ strategy: 'bearer', token: 's3cret' }),
    );
    const url = await api.start();
    t.after(() => api.stop());
    assert.equal((await fetch(`${url}/health`)).status, 200);
    for (const path of ['/metrics', '/', '/tap?component=x']) {
      const refused = await fetch(`${url}${path}`, { headers: { authorization: 'Bearer wrong' } });
      assert.equal(refused.status, 401, path);
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="fluxo"');
      assert.equal((await fetch(`${url}${path}`)).status, 401, path);
    }
    const metrics = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer s3cret' } });
    assert.equal(metrics.status, 200);
    assert.equal(await metrics.text(), 'm_total 1\n');
  });

  it('reports a busy port clearly', async (t) => {
    const first = new ApiServer(
      '127.0.0.1:0',
      { state: () => 'running', metrics: async () => '', describe: () => ({}) },
      testLogger(),
    );
    const url = await first.start();
    t.after(() => first.stop());
    const second = new ApiServer(
      url.replace('http://', ''),
      { state: () => 'running', metrics: async () => '', describe: () => ({}) },
      testLogger(),
    );
    await assert.rejects(second.start(), /API cannot listen on .*EADDRINUSE.*api\.address/);
  });
});

describe('ApiServer /tap', () => {
  it('streams a component’s events as NDJSON up to the limit, with sampling; 404 for an unknown id', async (t) => {
    const listeners = new Set<(events: readonly Record<string, unknown>[], output: string) => void>();
    const api = new ApiServer(
      '127.0.0.1:0',
      {
        state: () => 'running',
        metrics: async () => '',
        describe: () => ({}),
        tap: (id, listener) => {
          if (id !== 'web') return undefined;
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      },
      testLogger(),
    );
    const url = await api.start();
    t.after(() => api.stop());
    assert.equal((await fetch(`${url}/tap?component=nope`)).status, 404);
    const res = await fetch(`${url}/tap?component=web&limit=3&sample=2`);
    assert.equal(res.status, 200);
    assert.equal(listeners.size, 1);
    for (const l of listeners)
      l(
        Array.from({ length: 10 }, (_, i) => ({ n: i })),
        '',
      );
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.slice(0, 3).map((l) => l.event.n),
      [0, 2, 4],
    );
    assert.deepEqual(lines[3], { tap_end: true, component: 'web', sent: 3, skipped: 0 });
    assert.equal(listeners.size, 0, 'tap removed at the limit');
  });
});
