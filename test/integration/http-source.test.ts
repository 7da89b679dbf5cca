import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { buffers } from '../../src/buffers/index.ts';
import { loadConfigTexts } from '../../src/config/load.ts';
import type { Event } from '../../src/core/event.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';
import { createRegistry } from '../../src/core/pipeline-config.ts';
import { Topology } from '../../src/core/topology.ts';
import { httpSource } from '../../src/sources/http.ts';
import { type ControlledSinkHandle, controlledSink } from '../helpers/components.ts';
import { tempDir, testLogger } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

const run = promisify(execFile);

/** A real Topology: an http source (options as YAML flow entries) → a controlled sink the test can stall. */
async function httpPipeline(t: TestContext, sourceOptions = '', sinkOptions = '') {
  const dir = tempDir(t);
  const sinks = new Map<string, ControlledSinkHandle>();
  const registry = createRegistry([httpSource, controlledSink(sinks)], buffers);
  const text = `data_dir: ${dir}
api: { enabled: false }
sources:
  web: { type: http, address: "127.0.0.1:0"${sourceOptions ? `, ${sourceOptions}` : ''} }
sinks:
  out: { type: controlled, inputs: [web]${sinkOptions ? `, ${sinkOptions}` : ''} }
`;
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  const topology = new Topology(loadConfigTexts([{ file: 'test.yaml', text }], registry).config, registry, {
    logger: testLogger(),
    metrics,
  });
  await topology.start();
  const sink = sinks.get('out')!;
  t.after(async () => {
    sink.release();
    await topology.stop(5000);
  });
  const endpoint = topology.describe().sources[0]!.endpoint!;
  const m = /^(https?) (\S+):(\d+) \(POST (\S+)\)$/.exec(endpoint);
  assert.ok(m, endpoint);
  const port = Number(m[3]);
  const scheme = m[1]!;
  const url = `${scheme}://${scheme === 'https' ? 'localhost' : '127.0.0.1'}:${port}${m[4]}`;
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const values = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
      .reduce((s, v) => s + v.value, 0);
  };
  const untilMetric = async (name: string, labels: Record<string, string>, value: number) => {
    for (let i = 0; (await metric(name, labels)) !== value; i++) {
      assert.ok(i < 20_000, `${name} never reached ${value} (last ${await metric(name, labels)})`);
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  return { url, port, sink, topology, dir, metric, untilMetric };
}

interface CurlResult {
  status: number;
  body: string;
  headers: string;
}

async function curl(curlPath: string, url: string, args: string[]): Promise<CurlResult> {
  const { stdout } = await run(curlPath, ['-sS', '-D', '-', '-o', '-', '-w', '\n%{http_code}', ...args, url], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const lines = stdout.split('\n');
  const status = Number(lines.pop());
  const text = lines.join('\n');
  // With Expect: 100-continue curl prints the interim answer's headers first; the last header block wins.
  const blocks = text.split('\r\n\r\n');
  return { status, body: blocks.pop()!, headers: blocks.join('\r\n\r\n') };
}

const post = (url: string, body: string | Buffer, headers: Record<string, string> = {}, dispatcher?: Agent) =>
  request(url, { method: 'POST', body, headers, dispatcher });

const strip = (e: Event) => {
  const { timestamp, _id, ...rest } = e;
  assert.equal(typeof timestamp, 'string');
  assert.equal(typeof _id, 'string');
  return rest;
};

describe('http source options', () => {
  it('has defaults and a description on every option; auth is checked', () => {
    const o = httpSource.options.parse({});
    assert.deepEqual(o, {
      address: '127.0.0.1:8080',
      path: '/',
      max_body_bytes: 10 * 1024 * 1024,
      max_decoded_body_bytes: 64 * 1024 * 1024,
      max_events_per_request: 100_000,
      max_nesting_depth: 100,
      max_pending_requests: 512,
      backpressure_threshold: 200,
      retry_after: 1000,
      max_connections: 1000,
      header_timeout: 10_000,
      request_timeout: 120_000,
      idle_timeout: 300_000,
      evict_idle_after: 10_000,
    });
    for (const [key, field] of Object.entries(httpSource.options.shape)) {
      assert.ok(field.description, `option ${key} has a description`);
    }
    const noToken = httpSource.options.safeParse({ auth: { strategy: 'bearer' } });
    assert.match(JSON.stringify(noToken.error?.issues), /bearer needs a token/);
    const noPassword = httpSource.options.safeParse({ auth: { strategy: 'basic', user: 'u' } });
    assert.match(JSON.stringify(noPassword.error?.issues), /basic needs user and password/);
    assert.equal(httpSource.options.safeParse({ path: 'logs' }).success, false);
  });
});

describe('http source with curl', { timeout: 60_000 }, () => {
  it('takes NDJSON, a JSON array, a JSON object, text lines and gzip, each answered once delivered', async (t) => {
    const curlPath = requireProgram(t, 'curl', 'curl');
    if (!curlPath) return;
    const { url, sink, dir } = await httpPipeline(t);
    const send = async (body: string | Buffer, contentType: string | undefined, extra: string[] = []) => {
      const file = join(dir, 'body');
      writeFileSync(file, body);
      const type = contentType === undefined ? ['-H', 'Content-Type:'] : ['-H', `Content-Type: ${contentType}`];
      return curl(curlPath, url, ['--data-binary', `@${file}`, ...type, ...extra]);
    };
    let r = await send('{"message":"nd 1","level":"info"}\n\n{"message":"nd 2","n":2}\r\n', 'application/x-ndjson');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { accepted: 2 });
    r = await send('[{"message":"arr 1"},"arr 2"]', 'application/json; charset=utf-8');
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { accepted: 2 }]);
    r = await send('{"message":"one object","user":{"id":7}}', 'application/json');
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { accepted: 1 }]);
    r = await send('text 1\r\ntext 2\n\ntext 3', 'text/plain');
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { accepted: 3 }]);
    r = await send('no content type\n', undefined);
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { accepted: 1 }]);
    r = await send(gzipSync('{"message":"zipped 1"}\n{"message":"zipped 2"}\n'), 'application/x-ndjson', [
      '-H',
      'Content-Encoding: gzip',
    ]);
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { accepted: 2 }]);

    const host = { host: '127.0.0.1', source_type: 'http' };
    assert.deepEqual(sink.written.map(strip), [
      { message: 'nd 1', level: 'info', ...host },
      { message: 'nd 2', n: 2, ...host },
      { message: 'arr 1', ...host },
      { message: 'arr 2', ...host },
      { message: 'one object', user: { id: 7 }, ...host },
      { message: 'text 1', ...host },
      { message: 'text 2', ...host },
      { message: 'text 3', ...host },
      { message: 'no content type', ...host },
      { message: 'zipped 1', ...host },
      { message: 'zipped 2', ...host },
    ]);
    assert.equal(new Set(sink.written.map((e) => e._id)).size, 11);
  });

  it('answers 401 without or with wrong credentials; bearer and basic accepted', async (t) => {
    const curlPath = requireProgram(t, 'curl', 'curl');
    if (!curlPath) return;
    const bearer = await httpPipeline(t, 'auth: { strategy: bearer, token: s3cret }');
    let r = await curl(curlPath, bearer.url, ['-d', 'x', '-H', 'Content-Type: text/plain']);
    assert.equal(r.status, 401);
    assert.match(r.headers, /www-authenticate: Bearer realm="fluxo"/i);
    r = await curl(curlPath, bearer.url, [
      '-d',
      'x',
      '-H',
      'Content-Type: text/plain',
      '-H',
      'Authorization: Bearer nope',
    ]);
    assert.equal(r.status, 401);
    r = await curl(curlPath, bearer.url, ['-d', 'ok', '-H', 'Content-Type: text/plain', '--oauth2-bearer', 's3cret']);
    assert.equal(r.status, 200);
    assert.deepEqual(
      bearer.sink.written.map((e) => e.message),
      ['ok'],
    );
    assert.equal(await bearer.metric('fluxo_component_errors_total', { error_type: 'unauthorized' }), 2);

    const basic = await httpPipeline(t, 'auth: { strategy: basic, user: agent, password: "pa:ss" }');
    r = await curl(curlPath, basic.url, ['-d', 'x', '-H', 'Content-Type: text/plain', '-u', 'agent:wrong']);
    assert.equal(r.status, 401);
    assert.match(r.headers, /www-authenticate: Basic/i);
    r = await curl(curlPath, basic.url, ['-d', 'ok', '-H', 'Content-Type: text/plain', '-u', 'agent:pa:ss']);
    assert.equal(r.status, 200);
  });

  it('answers 413 over max_body_bytes: declared, chunked, and after gunzip; 100-continue saves the upload', async (t) => {
    const curlPath = requireProgram(t, 'curl', 'curl');
    if (!curlPath) return;
    const { url, sink, dir, metric } = await httpPipeline(t, 'max_body_bytes: 64KiB, max_decoded_body_bytes: 1MiB');
    const file = join(dir, 'big');
    writeFileSync(file, `${'x'.repeat(100)}\n`.repeat(1000));
    let r = await curl(curlPath, url, ['--data-binary', `@${file}`, '-H', 'Content-Type: text/plain']);
    assert.equal(r.status, 413);
    assert.match(JSON.parse(r.body).error, /body larger than max_body_bytes \(65536 bytes\)/);
    r = await curl(curlPath, url, [
      '--data-binary',
      `@${file}`,
      '-H',
      'Content-Type: text/plain',
      '-H',
      'Expect: 100-continue',
    ]);
    assert.equal(r.status, 413);
    assert.doesNotMatch(r.headers, /100 Continue/, 'refused before the body was sent');

    // chunked: no Content-Length, the limit trips while reading
    const chunked = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: Readable.from(
        (function* () {
          for (let i = 0; i < 200; i++) yield Buffer.from(`${'y'.repeat(1023)}\n`);
        })(),
      ),
    });
    assert.equal(chunked.statusCode, 413);
    await chunked.body.dump();
    // a gzip bomb: 10 KiB on the wire, 10 MiB inflated
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x61));
    assert.ok(bomb.length < 64 * 1024);
    const res = await post(url, bomb, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    assert.equal(res.statusCode, 413);
    assert.match(
      ((await res.body.json()) as { error: string }).error,
      /decompressed body larger than max_decoded_body_bytes \(1048576 bytes\)/,
    );
    assert.equal(sink.written.length, 0);
    assert.ok((await metric('fluxo_component_errors_total', { error_type: 'body_too_large' })) >= 3);
    assert.equal(await metric('fluxo_component_errors_total', { error_type: 'decoded_body_too_large' }), 1);
  });

  it('answers 400 with the reason for a malformed body, and nothing of it is taken', async (t) => {
    const curlPath = requireProgram(t, 'curl', 'curl');
    if (!curlPath) return;
    const { url, sink } = await httpPipeline(t);
    const cases: [string, string, RegExp][] = [
      ['application/json', '{"message": "unterminated', /^malformed JSON: /],
      ['application/x-ndjson', '{"message":"fine"}\n{"message": nope}\n', /^malformed JSON on line 2: /],
      ['application/json', '[{"message":"a"}, 42]', /^element 1 is a number: expected an event object or a string$/],
      ['application/json', '"just a string"', /must be an object or an array of events, found a string/],
      ['application/x-ndjson', '{"a":1}\n[1,2]\n', /^line 2 is an array/],
    ];
    for (const [type, body, reason] of cases) {
      const r = await curl(curlPath, url, ['--data-binary', body, '-H', `Content-Type: ${type}`]);
      assert.equal(r.status, 400, body);
      assert.match(JSON.parse(r.body).error, reason);
    }
    const badGzip = await post(url, 'not gzip', { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    assert.equal(badGzip.statusCode, 400);
    assert.match(((await badGzip.body.json()) as { error: string }).error, /invalid gzip body/);
    assert.equal(sink.written.length, 0);
  });
});

describe('http source with undici', { timeout: 60_000 }, () => {
  it('answers only after the sink delivered the batch', async (t) => {
    const { url, sink } = await httpPipeline(t);
    sink.behaviour = 'stall';
    let answered = false;
    const pending = post(url, 'wait for me\n', { 'content-type': 'text/plain' }).then((r) => {
      answered = true;
      return r;
    });
    await sink.waitForAttempts(1);
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false, 'no answer while the sink has not delivered');
    sink.release();
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { accepted: 1 });
    assert.deepEqual(
      sink.written.map((e) => e.message),
      ['wait for me'],
    );
  });

  it('gives deterministic ids from Idempotency-Key; a forwarded event keeps its own fields', async (t) => {
    const { url, sink } = await httpPipeline(t);
    const body = '{"message":"a"}\n{"message":"b"}\n';
    for (let i = 0; i < 2; i++) {
      const res = await post(url, body, { 'content-type': 'application/x-ndjson', 'idempotency-key': 'batch-0042' });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    assert.deepEqual(
      sink.written.map((e) => e._id),
      ['batch-0042:0', 'batch-0042:1', 'batch-0042:0', 'batch-0042:1'],
    );
    const forwarded = {
      message: 'from an agent',
      timestamp: '2025-03-05T14:02:17.000Z',
      host: 'web-17',
      source_type: 'file',
      _id: 'f1e2d3:1234',
    };
    const res = await post(url, JSON.stringify(forwarded), { 'content-type': 'application/json' });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.deepEqual(sink.written.at(-1), forwarded);
    const bad = await post(url, body, { 'content-type': 'application/x-ndjson', 'idempotency-key': 'has space' });
    assert.equal(bad.statusCode, 400);
    await bad.body.dump();
  });

  it('answers 404, 405 and 415 with the reason', async (t) => {
    const { url } = await httpPipeline(t, 'path: /logs');
    assert.ok(url.endsWith('/logs'));
    const base = url.slice(0, -'/logs'.length);
    const cases: [string, string, Record<string, string>, number, RegExp][] = [
      [`${base}/other`, 'POST', { 'content-type': 'text/plain' }, 404, /POST to \/logs/],
      [url, 'GET', {}, 405, /only POST/],
      [url, 'POST', { 'content-type': 'application/xml' }, 415, /unsupported Content-Type "application\/xml"/],
      [url, 'POST', { 'content-type': 'text/plain', 'content-encoding': 'br' }, 415, /Content-Encoding "br"/],
    ];
    for (const [target, method, headers, status, reason] of cases) {
      const res = await request(target, { method: method as 'GET', headers, body: method === 'GET' ? null : 'x' });
      assert.equal(res.statusCode, status, `${method} ${target}`);
      assert.match(((await res.body.json()) as { error: string }).error, reason);
    }
    const ok = await post(`${url}?source=test`, 'query strings are ignored', { 'content-type': 'text/plain' });
    assert.equal(ok.statusCode, 200);
    await ok.body.dump();
  });

  it('answers 503 with Retry-After while the pipeline is full, then takes requests again', async (t) => {
    const { url, sink, metric, untilMetric } = await httpPipeline(
      t,
      'backpressure_threshold: 0, retry_after: 2s',
      'buffer: { type: memory, max_events: 4 }',
    );
    sink.behaviour = 'stall';
    const four = 'a\nb\nc\nd\n';
    const first = post(url, four, { 'content-type': 'text/plain' });
    await sink.waitForAttempts(1); // the buffer is full while the write stalls
    const second = post(url, four, { 'content-type': 'text/plain' });
    // the second batch is emitted and waits for room in the buffer
    await untilMetric('fluxo_pending_acknowledgements', { component_id: 'web' }, 2);
    const refused = await post(url, 'one more\n', { 'content-type': 'text/plain' });
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.headers['retry-after'], '2');
    assert.match(((await refused.body.json()) as { error: string }).error, /pipeline is full/);
    assert.equal(await metric('fluxo_http_backpressure_rejections_total'), 1);
    sink.release();
    assert.equal((await first).statusCode, 200);
    assert.equal((await second).statusCode, 200);
    const again = await post(url, 'one more\n', { 'content-type': 'text/plain' });
    assert.equal(again.statusCode, 200);
    await again.body.dump();
    assert.equal(sink.written.length, 9, 'every accepted event once, the refused one only when sent again');
  });

  it('answers 429 with Retry-After over max_pending_requests', async (t) => {
    const { url, sink, untilMetric } = await httpPipeline(t, 'max_pending_requests: 2');
    sink.behaviour = 'stall';
    const a = post(url, 'a\n', { 'content-type': 'text/plain' });
    await sink.waitForAttempts(1);
    const b = post(url, 'b\n', { 'content-type': 'text/plain' });
    await untilMetric('fluxo_http_pending_requests', {}, 2);
    const res = await post(url, 'c\n', { 'content-type': 'text/plain' });
    assert.equal(res.statusCode, 429);
    assert.equal(res.headers['retry-after'], '1');
    assert.match(((await res.body.json()) as { error: string }).error, /more than 2 requests pending/);
    sink.release();
    assert.equal((await a).statusCode, 200);
    assert.equal((await b).statusCode, 200);
  });

  it('answers 503 when the pipeline stops before delivering, so the client sends again', async (t) => {
    const { url, sink, topology } = await httpPipeline(t);
    sink.behaviour = 'stall';
    const pending = post(url, 'never delivered\n', { 'content-type': 'text/plain' });
    await sink.waitForAttempts(1);
    await topology.stop(50);
    const res = await pending;
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '1');
    assert.match(((await res.body.json()) as { error: string }).error, /not delivered/);
  });

  it('closes connections over max_connections and counts them', async (t) => {
    const { port, metric, untilMetric } = await httpPipeline(t, 'max_connections: 1');
    const first = connect({ host: '127.0.0.1', port });
    t.after(() => first.destroy());
    await once(first, 'connect');
    const second = connect({ host: '127.0.0.1', port });
    second.on('error', () => {});
    t.after(() => second.destroy());
    await once(second, 'close');
    await untilMetric('fluxo_http_connections_rejected_total', {}, 1);
    first.end('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n');
    let answer = '';
    for await (const chunk of first) answer += chunk;
    assert.match(answer, /^HTTP\/1\.1 200 /, 'the connection within the limit is served');
    assert.equal(await metric('fluxo_http_connections_rejected_total'), 1);
  });

  it('serves HTTPS with the shared tls options', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t));
    const { url, sink } = await httpPipeline(
      t,
      `tls: { crt_file: "${certs.serverCrt}", key_file: "${certs.serverKey}" }`,
    );
    assert.match(url, /^https:/);
    const agent = new Agent({ connect: { ca: readFileSync(certs.caFile) } });
    t.after(() => agent.close());
    const res = await post(url, '{"message":"over tls"}', { 'content-type': 'application/json' }, agent);
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.deepEqual(
      sink.written.map((e) => e.message),
      ['over tls'],
    );
  });
});
