import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { httpSource } from '../../src/sources/http.ts';
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
