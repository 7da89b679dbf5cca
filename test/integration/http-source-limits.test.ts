import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { httpSource } from '../../src/sources/http.ts';
import { closedOrReset } from '../helpers/tcp-senders.ts';
import { eventually, settlingContext } from './fixtures/forward-helpers.ts';

/** An http source on 127.0.0.1:0 whose batches the test sees and settles (`manual`) or that settle at once. */
async function startSource(t: TestContext, raw: Record<string, unknown> = {}, mode: 'auto' | 'manual' = 'auto') {
  const rec = settlingContext('web', mode);
  const source = httpSource.build(httpSource.options.parse({ address: '127.0.0.1:0', ...raw }), rec.ctx);
  await source.start();
  t.after(async () => {
    rec.settle('failed');
    await source.stop();
  });
  const hostPort = /^http (\S+) /.exec(source.endpoint!()!)![1];
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const values = (await rec.pipelineMetrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
      .reduce((s, v) => s + v.value, 0);
  };
  return { rec, url: `http://${hostPort}/`, metric };
}

const post = async (url: string, body: string | Buffer, headers: Record<string, string>) => {
  const res = await request(url, { method: 'POST', body, headers });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
};

const errors = 'fluxo_component_errors_total';

/** `{"a":{"a":…{"a":1}…}}` with `depth` objects. */
const nested = (depth: number) => `${'{"a":'.repeat(depth - 1)}{"a":1}${'}'.repeat(depth - 1)}`;

describe('http source limits on decoded requests (issue 13)', { timeout: 120_000 }, () => {
  it('answers 413 to 5M short lines in 10 KB of gzip, and the pipeline gets none of them', async (t) => {
    const { rec, url, metric } = await startSource(t);
    const bomb = gzipSync(Buffer.from('a\n'.repeat(5_000_000)), { level: 9 });
    assert.ok(bomb.length < 16 * 1024, `${bomb.length} bytes on the wire`);
    const r = await post(url, bomb, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    assert.equal(r.status, 413);
    assert.match(String(r.body.error), /more than max_events_per_request \(100000\) events/);
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'too_many_events' }), 1);
    assert.ok(
      rec.logs.some((l) => /max_events_per_request/.test(String(l.msg))),
      'logged',
    );
  });

  it('stops inflating at max_decoded_body_bytes: the inflater never produces more than the cap + one chunk', async (t) => {
    const { rec, url, metric } = await startSource(t, { max_decoded_body_bytes: '1MiB' });
    const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024, 0x61), { level: 9 });
    assert.ok(bomb.length < 256 * 1024, `${bomb.length} bytes on the wire`);
    for (let i = 0; i < 4; i++) {
      const r = await post(url, bomb, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
      assert.equal(r.status, 413);
      assert.match(String(r.body.error), /decompressed body larger than max_decoded_body_bytes \(1048576 bytes\)/);
    }
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'decoded_body_too_large' }), 4);
    const inflated = await metric('fluxo_http_decompressed_bytes_total');
    assert.ok(inflated > 4 * 1024 * 1024, `${inflated}`);
    assert.ok(inflated <= 4 * (1024 * 1024 + 16 * 1024), `inflated ${inflated} bytes for 4 bombs`);
  });

  it('counts events per request for text, NDJSON and JSON arrays: max_events_per_request is taken, one more is 413', async (t) => {
    const { rec, url, metric } = await startSource(t, { max_events_per_request: 10 });
    const bodies = (n: number): [string, string][] => [
      ['text/plain', 'line\n'.repeat(n)],
      ['application/x-ndjson', '{"m":1}\n'.repeat(n)],
      ['application/json', JSON.stringify(Array.from({ length: n }, (_, i) => (i % 2 ? 'x' : { m: [1, { n: 2 }] })))],
    ];
    for (const [type, body] of bodies(11)) {
      const r = await post(url, body, { 'content-type': type });
      assert.equal(r.status, 413, type);
    }
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'too_many_events' }), 3);
    for (const [type, body] of bodies(10)) {
      const r = await post(url, body, { 'content-type': type });
      assert.deepEqual([r.status, r.body], [200, { accepted: 10 }], type);
    }
  });

  it('splits a large request into batches of at most 1,000, in order, answered after all of them settled', async (t) => {
    const { rec, url } = await startSource(t, {}, 'manual');
    const lines = Array.from({ length: 2500 }, (_, i) => `line ${i}`);
    let answered = false;
    const pending = post(url, `${lines.join('\n')}\n`, { 'content-type': 'text/plain' }).then((r) => {
      answered = true;
      return r;
    });
    await eventually(() => rec.batches.length === 3, 'three batches emitted');
    assert.deepEqual(
      rec.batches.map((b) => b.events.length),
      [1000, 1000, 500],
    );
    assert.deepEqual(
      rec.events().map((e) => e.message),
      lines,
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(answered, false, 'no answer before the batches settled');
    rec.settle('delivered');
    const r = await pending;
    assert.deepEqual([r.status, r.body], [200, { accepted: 2500 }]);
  });

  it('answers 503 when one batch of a split request was not delivered', async (t) => {
    const { rec, url } = await startSource(t, {}, 'manual');
    const pending = post(url, 'x\n'.repeat(1500), { 'content-type': 'text/plain' });
    await eventually(() => rec.unsettled === 2, 'two batches waiting');
    rec.settle('failed');
    const r = await pending;
    assert.equal(r.status, 503);
  });

  it('refuses JSON nested deeper than max_nesting_depth with 400 (100,000 deep included); what it takes can be encoded', async (t) => {
    const { rec, url, metric } = await startSource(t);
    const cases: [string, string][] = [
      ['application/json', nested(100_000)],
      ['application/json', `[${nested(101)}]`],
      ['application/x-ndjson', `{"ok":1}\n${nested(101)}\n`],
      ['application/json', `{"a":${'['.repeat(200)}${']'.repeat(200)}}`],
    ];
    for (const [type, body] of cases) {
      const r = await post(url, body, { 'content-type': type });
      assert.equal(r.status, 400, body.slice(0, 40));
      assert.match(String(r.body.error), /JSON nested deeper than max_nesting_depth \(100 levels\)/);
    }
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'nesting_too_deep' }), cases.length);
    // The limit itself is taken, as an object and inside an array; brackets in strings do not count.
    for (const [type, body] of [
      ['application/json', nested(100)],
      ['application/json', `[${nested(100)}]`],
      ['application/x-ndjson', `${nested(100)}\n{"s":"${'[{'.repeat(500)}\\"]"}\n`],
    ] as const) {
      const r = await post(url, body, { 'content-type': type });
      assert.equal(r.status, 200, body.slice(0, 40));
    }
    for (const e of rec.events()) assert.equal(typeof JSON.stringify(e), 'string');
  });
});

/** A raw TCP connection to `url`'s port that collects what the server sends until it closes. */
async function rawConnection(t: TestContext, url: string) {
  const { port } = new URL(url);
  const socket = connect({ host: '127.0.0.1', port: Number(port) });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  let received = '';
  socket.on('data', (chunk) => {
    received += chunk;
  });
  const closed = closedOrReset(socket).then(() => received);
  await once(socket, 'connect');
  return { socket, closed, received: () => received };
}

const OK_REQUEST = 'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n';

describe('http source against slow and idle clients (issue 13, item 4)', { timeout: 60_000 }, () => {
  it('at max_connections, a new client evicts the one longest without a request, not a served one', async (t) => {
    const { url, metric } = await startSource(t, { max_connections: 3, evict_idle_after: '100ms' });
    // Three slowloris clients: headers begun, never finished.
    const slow = [];
    for (let i = 0; i < 3; i++) {
      const c = await rawConnection(t, url);
      c.socket.write('POST / HTTP/1.1\r\nHost: x\r\n');
      slow.push(c);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const r = await post(url, '{"message":"legit"}', { 'content-type': 'application/json' });
    assert.equal(r.status, 200, 'the legitimate sender gets in');
    assert.equal(r.body.accepted, 1);
    assert.equal(await metric('fluxo_http_connections_evicted_total'), 1);
    assert.equal(await metric('fluxo_http_connections_rejected_total'), 0);
    const evicted = await Promise.race([
      Promise.any(slow.map((c) => c.closed.then(() => true))),
      new Promise((resolve) => setTimeout(() => resolve(false), 5_000)),
    ]);
    assert.equal(evicted, true, 'one slow client was closed');
  });

  it('refuses the newcomer, counted, while every slot is younger than evict_idle_after', async (t) => {
    const { url, metric } = await startSource(t, { max_connections: 2, evict_idle_after: '1m' });
    for (let i = 0; i < 2; i++) (await rawConnection(t, url)).socket.write('POST / HTTP/1.1\r\n');
    const third = await rawConnection(t, url);
    third.socket.write(OK_REQUEST);
    assert.equal(await third.closed, '', 'closed without an answer');
    await eventually(async () => (await metric('fluxo_http_connections_rejected_total')) === 1, 'refusal counted');
    assert.equal(await metric('fluxo_http_connections_evicted_total'), 0);
  });

  it('answers 408 and closes a connection whose headers trickle past header_timeout, counted', async (t) => {
    const { rec, url, metric } = await startSource(t, { header_timeout: '300ms', request_timeout: '10s' });
    const c = await rawConnection(t, url);
    const header =
      'POST / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    let sent = 0;
    const trickle = setInterval(() => c.socket.writable && c.socket.write(header[sent++ % header.length]!), 50);
    t.after(() => clearInterval(trickle));
    const answer = await c.closed;
    clearInterval(trickle);
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.equal(await metric('fluxo_http_connections_read_timeout_total'), 1);
    assert.equal(rec.batches.length, 0);
  });

  it('answers 408 to a body that does not arrive within request_timeout, taking nothing', async (t) => {
    const { rec, url, metric } = await startSource(t, { header_timeout: '200ms', request_timeout: '400ms' });
    const c = await rawConnection(t, url);
    c.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc');
    const answer = await c.closed;
    assert.match(answer, /HTTP\/1\.1 (408|400) /);
    await eventually(async () => (await metric('fluxo_http_connections_read_timeout_total')) >= 1, 'timeout counted');
    assert.equal(rec.batches.length, 0);
  });

  it('closes a keep-alive connection idle past idle_timeout', async (t) => {
    const { url } = await startSource(t, { idle_timeout: '300ms' });
    const c = await rawConnection(t, url);
    c.socket.write(OK_REQUEST);
    const answer = await c.closed;
    assert.match(answer, /^HTTP\/1\.1 200 /, 'served, then closed by the server while idle');
  });
});
