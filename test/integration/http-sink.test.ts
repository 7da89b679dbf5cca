import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { zstdDecompressor } from '../../src/codecs/zstd.ts';
import { PermanentError, RetryableError } from '../../src/core/errors.ts';
import { httpSink, parseRetryAfter } from '../../src/sinks/http.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { driven } from '../helpers/sink-driver.ts';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Responder = (req: Received, res: ServerResponse) => void;

// node:zlib's decoder or the WebAssembly one, as the sink's encoder.
const zstdDecode = await zstdDecompressor();

/** A real HTTP(S) server on 127.0.0.1:0 that records each request (gunzipped or zstd-decoded) and answers with `respond`. */
async function startServer(
  t: { after: (fn: () => Promise<void> | void) => void },
  tls?: { cert: Buffer; key: Buffer },
) {
  const received: Received[] = [];
  let respond: Responder = (_req, res) => res.writeHead(200).end('ok');
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const encoding = req.headers['content-encoding'];
      const decoded = encoding === 'gzip' ? gunzipSync(raw) : encoding === 'zstd' ? zstdDecode(raw) : raw;
      const body = Buffer.from(decoded).toString('utf8');
      const r = { method: req.method!, url: req.url!, headers: req.headers, body };
      received.push(r);
      respond(r, res);
    });
  };
  const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return {
    received,
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/ingest`,
    answer(fn: Responder) {
      respond = fn;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A started sink, as the topology runs it (start() loads undici). */
async function build(t: { after: (fn: () => Promise<void>) => void }, options: Record<string, unknown>) {
  const sink = httpSink.build(httpSink.options.parse(options), componentContext('web', '/tmp'));
  t.after(() => sink.stop());
  await sink.start?.();
  return sink;
}

const never = new AbortController().signal;
const events = [
  { message: 'GET /a 200', n: 1 },
  { message: 'GET /b 500', n: 2, nested: { ok: true } },
];

describe('http sink', { timeout: 60_000 }, () => {
  it('POSTs a JSON array by default; 2xx is delivered', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, { uri: server.url });
    await driven(sink).write(events, never);
    assert.equal(server.received.length, 1);
    const [r] = server.received;
    assert.equal(r!.method, 'POST');
    assert.equal(r!.url, '/ingest');
    assert.equal(r!.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r!.body), events);
  });

  it('ndjson, gzip, PUT, extra headers and a bearer token', async (t) => {
    const server = await startServer(t);
    server.answer((_r, res) => res.writeHead(204).end());
    const sink = await build(t, {
      uri: server.url,
      method: 'put',
      encoding: 'ndjson',
      compression: 'gzip',
      headers: { 'X-Tenant': 'web' },
      auth: { strategy: 'bearer', token: 's3cret' },
    });
    await driven(sink).write(events, never);
    const [r] = server.received;
    assert.equal(r!.method, 'PUT');
    assert.equal(r!.headers['content-type'], 'application/x-ndjson');
    assert.equal(r!.headers['content-encoding'], 'gzip');
    assert.equal(r!.headers['x-tenant'], 'web');
    assert.equal(r!.headers.authorization, 'Bearer s3cret');
    assert.equal(r!.body, `${JSON.stringify(events[0])}\n${JSON.stringify(events[1])}\n`);
  });

  it('zstd compresses the body on every Node (Content-Encoding: zstd)', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, { uri: server.url, encoding: 'ndjson', compression: 'zstd' });
    await driven(sink).write(events, never);
    const [r] = server.received;
    assert.equal(r!.headers['content-encoding'], 'zstd');
    assert.equal(r!.body, `${JSON.stringify(events[0])}\n${JSON.stringify(events[1])}\n`);
  });

  it('text encoding sends the messages, one per line, with basic auth', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, {
      uri: server.url,
      encoding: 'text',
      auth: { strategy: 'basic', user: 'u', password: 'p:w' },
    });
    await driven(sink).write(events, never);
    const [r] = server.received;
    assert.equal(r!.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r!.headers.authorization, `Basic ${Buffer.from('u:p:w').toString('base64')}`);
    assert.equal(r!.body, 'GET /a 200\nGET /b 500\n');
  });

  it('429 and 5xx are retryable and honour Retry-After; 408 too', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, { uri: server.url });
    const cases: [number, Record<string, string>, number | undefined][] = [
      [429, { 'retry-after': '3' }, 3000],
      [503, { 'retry-after': new Date(Date.now() + 60_000).toUTCString() }, 60_000],
      [500, {}, undefined],
      [408, {}, undefined],
    ];
    for (const [status, headers, retryAfter] of cases) {
      server.answer((_r, res) => res.writeHead(status, headers).end('busy'));
      const error = await driven(sink)
        .write(events, never)
        .catch((e: unknown) => e);
      assert.ok(error instanceof RetryableError, `${status} is retryable`);
      assert.match(error.message, new RegExp(`answered ${status}: busy`));
      if (retryAfter === undefined) assert.equal(error.retryAfterMs, undefined);
      else assert.ok(Math.abs(error.retryAfterMs! - retryAfter) <= 1000, `${status}: ${error.retryAfterMs}`);
    }
  });

  it('other 4xx (and redirects) reject the events permanently, with the answer as the reason', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, { uri: server.url });
    for (const status of [400, 401, 404, 413, 301]) {
      server.answer((_r, res) => res.writeHead(status).end(`{"error":"no ${status}"}`));
      const error = await driven(sink)
        .write(events, never)
        .catch((e: unknown) => e);
      assert.ok(error instanceof PermanentError, `${status} is permanent`);
      assert.equal(error.events, undefined, 'the whole batch');
      assert.match(error.reason, new RegExp(`answered ${status}: \\{"error":"no ${status}"\\}`));
    }
  });

  it('a refused connection is retryable, and the next write succeeds once the server is back', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, { uri: server.url });
    await server.close();
    const error = await driven(sink)
      .write(events, never)
      .catch((e: unknown) => e);
    assert.ok(error instanceof RetryableError);
    assert.match(error.message, /ECONNREFUSED/);
    const again = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200).end());
    });
    again.listen(server.port, '127.0.0.1');
    await once(again, 'listening');
    t.after(() => {
      again.closeAllConnections();
      again.close();
    });
    await driven(sink).write(events, never);
  });

  it('no answer within request_timeout is retryable; an abort from the runner is passed on', async (t) => {
    const server = await startServer(t);
    server.answer(() => {});
    const sink = await build(t, { uri: server.url, request_timeout: '150ms' });
    const error = await driven(sink)
      .write(events, never)
      .catch((e: unknown) => e);
    assert.ok(error instanceof RetryableError);
    assert.match(error.message, /no answer within 150 ms/);
    const patient = await build(t, { uri: server.url, request_timeout: '60s' });
    const abort = new AbortController();
    const writing = driven(patient)
      .write(events, abort.signal)
      .catch((e: unknown) => e);
    while (server.received.length < 2) await new Promise((r) => setTimeout(r, 5));
    abort.abort(new Error('shutdown'));
    const aborted = await writing;
    assert.ok(!(aborted instanceof RetryableError) && !(aborted instanceof PermanentError), String(aborted));
  });

  it('events that cannot be encoded are rejected alone; the rest are sent', async (t) => {
    const server = await startServer(t);
    const sink = await build(t, { uri: server.url });
    const bad = { message: 'big', n: 10n };
    const error = await driven(sink)
      .write([events[0]!, bad, events[1]!], never)
      .catch((e: unknown) => e);
    assert.ok(error instanceof PermanentError);
    assert.deepEqual(error.events, [bad]);
    assert.deepEqual(JSON.parse(server.received[0]!.body), events);
  });

  it('https with a private CA (tls.ca_file); an unknown CA fails the write as retryable', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const dir = tempDir(t);
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const made = spawnSync(
      openssl,
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    const server = await startServer(t, { cert: readFileSync(cert), key: readFileSync(key) });
    const trusted = await build(t, { uri: server.url, tls: { ca_file: cert } });
    await driven(trusted).write(events, never);
    assert.equal(server.received.length, 1);
    const untrusted = await build(t, { uri: server.url, tls: {} });
    const error = await driven(untrusted)
      .write(events, never)
      .catch((e: unknown) => e);
    assert.ok(error instanceof RetryableError);
    assert.match(error.message, /self[- ]signed|certificate/i);
  });

  it('rejects tls with an http:// uri and a non-http uri at validation', () => {
    assert.throws(
      () =>
        httpSink.build(httpSink.options.parse({ uri: 'http://127.0.0.1:1/', tls: {} }), componentContext('w', '/tmp')),
      { code: 'FLUXO_SINK_INVALID_OPTIONS' },
    );
    assert.equal(httpSink.options.safeParse({ uri: 'ftp://x/' }).success, false);
    assert.equal(httpSink.options.safeParse({ uri: 'not a url' }).success, false);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    assert.equal(parseRetryAfter('999999', now), 3_600_000);
  });
});
