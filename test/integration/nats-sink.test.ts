import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type ConnectionOptions, connect } from '@nats-io/transport-node';
import { stringify } from 'yaml';
import type { AckStatus } from '../../src/core/ack.ts';
import { FluxoError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { natsSink } from '../../src/sinks/nats.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { type NatsServer, startNatsServer } from '../helpers/servers/nats.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

interface Stored {
  subject: string;
  seq: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** Every message of `stream`, in stream order, read back with an ordered JetStream consumer. */
async function readStream(url: string, stream: string, auth: Partial<ConnectionOptions> = {}): Promise<Stored[]> {
  const nc = await connect({ servers: url, ...auth });
  try {
    const jsm = await jetstreamManager(nc);
    const total = (await jsm.streams.info(stream)).state.messages;
    const out: Stored[] = [];
    if (total === 0) return out;
    const consumer = await jetstream(nc).consumers.get(stream);
    const messages = await consumer.consume();
    for await (const m of messages) {
      const headers: Record<string, string> = {};
      for (const [k] of m.headers ?? []) headers[k] = m.headers!.get(k);
      out.push({ subject: m.subject, seq: m.seq, headers, body: m.json() });
      if (out.length >= total) break;
    }
    await messages.close();
    return out;
  } finally {
    await nc.close();
  }
}

function numbered(from: number, count: number, extra: (n: number) => Record<string, unknown> = () => ({})): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: `n-${from + i}`,
    message: `event ${from + i}`,
    timestamp: new Date(Date.UTC(2026, 11, 2, 3, 0, 0)).toISOString(),
    n: from + i,
    ...extra(from + i),
  }));
}

/** A Topology with a manual source `in`, the nats sink `out` and a controlled sink reading dead_letter. */
async function pipeline(t: TestContext, options: Record<string, unknown>) {
  const dataDir = tempDir(t, 'fluxo-nats-sink-');
  const config = {
    sources: { in: { type: 'manual' } },
    sinks: {
      out: {
        type: 'nats',
        inputs: ['in'],
        retry: { initial_backoff: '20ms', max_backoff: '500ms' },
        batch: { timeout: '0ms' },
        ...options,
      },
      dead: { type: 'controlled', inputs: ['dead_letter'] },
    },
  };
  const p = testPipeline(stringify(config), dataDir, [natsSink]);
  t.after(() => p.topology.stop(2000));
  await p.topology.start();
  const settled: AckStatus[] = [];
  const emit = (events: Event[]) =>
    p.source('in').ctx!.emit(events, {
      onSettled: (s) => {
        settled.push(s);
      },
    });
  const metric = async (name: string) => {
    const m = p.metrics.registry.getSingleMetric(name);
    if (!m) return 0;
    let sum = 0;
    for (const v of (await m.get()).values) if (v.labels.component_id === 'out') sum += v.value;
    return sum;
  };
  return { ...p, emit, settled, metric, dead: () => p.sink('dead').written };
}

async function server(t: TestContext, authorization?: string, config?: string): Promise<NatsServer> {
  const s = await startNatsServer(t, { authorization, config });
  if (!s) throw new Error('unreachable: skipped');
  return s;
}

function build(t: TestContext, options: Record<string, unknown>) {
  const sink = natsSink.build(natsSink.options.parse(options), componentContext('out', '/tmp'));
  t.after(() => sink.stop());
  return sink;
}

const never = new AbortController().signal;

describe('nats sink', { timeout: 120_000 }, () => {
  it('publishes each event in order, with Nats-Msg-Id = _id and headers from fields; the subject routes', async (t) => {
    const nats = await server(t);
    const p = await pipeline(t, {
      servers: [nats.url],
      subject: 'logs.{{ app }}',
      headers: { 'X-Host': 'host', 'X-Meta': 'meta' },
      create_stream: { name: 'LOGS', subjects: ['logs.>'] },
    });
    const events = numbered(1, 50, (n) => ({ app: n % 2 === 0 ? 'web' : 'db', host: `h${n}`, meta: { n } }));
    await p.emit(events);
    await until(() => p.settled.length === 1, 'the acknowledgement');
    assert.deepEqual(p.settled, ['delivered']);
    const stored = await readStream(nats.url, 'LOGS');
    assert.deepEqual(
      stored.map((m) => m.body._id),
      events.map((e) => e._id),
    );
    for (const [i, m] of stored.entries()) {
      const n = i + 1;
      assert.equal(m.subject, n % 2 === 0 ? 'logs.web' : 'logs.db');
      assert.equal(m.headers['Nats-Msg-Id'], `n-${n}`);
      assert.equal(m.headers['X-Host'], `h${n}`);
      assert.equal(m.headers['X-Meta'], JSON.stringify({ n }));
      assert.deepEqual(m.body, events[i]);
    }
  });

  it('an event without the subject field is dead-lettered with the reason; a value with spaces is made safe', async (t) => {
    const nats = await server(t);
    const p = await pipeline(t, {
      servers: [nats.url],
      subject: 'logs.{{ app }}',
      create_stream: { name: 'LOGS', subjects: ['logs.>'] },
    });
    await p.emit([
      { _id: 'a', message: 'ok', app: 'my app' },
      { _id: 'b', message: 'no app' },
    ]);
    await until(() => p.settled.length === 1, 'the acknowledgement');
    const stored = await readStream(nats.url, 'LOGS');
    assert.deepEqual(
      stored.map((m) => [m.subject, m.body._id]),
      [['logs.my_app', 'a']],
    );
    const dead = p.dead();
    assert.equal(dead.length, 1);
    assert.match(String((dead[0]!._dead_letter as { reason: string }).reason), /\{\{ app \}\}/);
  });

  it('a retried publish of the same _id within the duplicate window is stored once, and counted', async (t) => {
    const nats = await server(t);
    const p = await pipeline(t, {
      servers: [nats.url],
      subject: 'dup',
      create_stream: { name: 'DUP', duplicate_window: '1m' },
    });
    const events = numbered(1, 20);
    await p.emit(events);
    await p.emit(events.map((e) => ({ ...e })));
    await until(() => p.settled.length === 2, 'both acknowledgements');
    const stored = await readStream(nats.url, 'DUP');
    assert.deepEqual(
      stored.map((m) => m.body._id),
      events.map((e) => e._id),
    );
    assert.equal(await p.metric('fluxo_nats_sink_duplicates_total'), 20);
  });

  it('a missing stream is a clear error naming the subject; create_stream creates it', async (t) => {
    const nats = await server(t);
    const missing = build(t, { servers: [nats.url], subject: 'orders.created' });
    await assert.rejects(missing.connect!(never), (error: unknown) => {
      assert.ok(error instanceof FluxoError);
      assert.equal(error.code, 'FLUXO_NATS_STREAM_MISSING');
      assert.match(error.message, /no JetStream stream captures subject "orders\.created"/);
      assert.match(error.message, /create_stream/);
      return true;
    });
    const creating = build(t, {
      servers: [nats.url],
      subject: 'orders.created',
      create_stream: { name: 'ORDERS', storage: 'memory' },
    });
    await creating.connect!(never);
    const nc = await connect({ servers: nats.url });
    t.after(() => nc.close());
    const info = await (await jetstreamManager(nc)).streams.info('ORDERS');
    assert.deepEqual(info.config.subjects, ['orders.created']);
    assert.equal(info.config.storage, 'memory');
    assert.equal(info.config.duplicate_window, 120_000_000_000);
    // And the first sink connects now that the stream is there.
    await missing.connect!(never);
  });

  it('token auth and user/password auth work; a wrong password is a clear error', async (t) => {
    const withToken = await server(t, 'token: s3cret');
    const p = await pipeline(t, {
      servers: [withToken.url],
      subject: 'auth',
      auth: { strategy: 'token', token: 's3cret' },
      create_stream: { name: 'AUTH' },
    });
    await p.emit(numbered(1, 3));
    await until(() => p.settled.length === 1, 'the acknowledgement');
    assert.equal((await readStream(withToken.url, 'AUTH', { token: 's3cret' })).length, 3);

    const withUser = await server(t, 'user: fluxo, password: "pa55"');
    const good = build(t, {
      servers: [withUser.url],
      subject: 'auth',
      auth: { strategy: 'user', user: 'fluxo', password: 'pa55' },
      create_stream: { name: 'AUTH' },
    });
    await good.connect!(never);
    const bad = build(t, {
      servers: [withUser.url],
      subject: 'auth',
      auth: { strategy: 'user', user: 'fluxo', password: 'wrong' },
    });
    await assert.rejects(bad.connect!(never), (error: unknown) => {
      assert.ok(error instanceof FluxoError);
      assert.equal(error.code, 'FLUXO_NATS_AUTH');
      assert.match(error.message, /refused the credentials/);
      return true;
    });
  });

  it('TLS: publishes to a server whose certificate the ca_file signs; an unknown CA does not connect', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t, 'fluxo-nats-tls-'));
    const nats = await server(t, undefined, `tls { cert_file: "${certs.serverCrt}", key_file: "${certs.serverKey}" }`);
    const url = `tls://127.0.0.1:${nats.port}`;
    const p = await pipeline(t, {
      servers: [url],
      subject: 'secure',
      tls: { ca_file: certs.caFile },
      create_stream: { name: 'SECURE' },
    });
    await p.emit(numbered(1, 3));
    await until(() => p.settled.length === 1, 'the acknowledgement');
    assert.deepEqual(p.settled, ['delivered']);
    const stored = await readStream(url, 'SECURE', { tls: { caFile: certs.caFile } });
    assert.equal(stored.length, 3);
    const untrusted = build(t, { servers: [url], subject: 'secure', tls: {}, connect_timeout: '2s' });
    await assert.rejects(untrusted.connect!(never), /cannot connect to NATS/);
  });

  it('a message larger than the stream takes is dead-lettered with the reason; the rest is delivered', async (t) => {
    const nats = await server(t);
    const p = await pipeline(t, {
      servers: [nats.url],
      subject: 'big',
      create_stream: { name: 'BIG', max_msg_size: '1KiB' },
    });
    const events = numbered(1, 5);
    events[2] = { ...events[2]!, message: 'x'.repeat(4096) };
    await p.emit(events);
    await until(() => p.settled.length === 1, 'the acknowledgement');
    assert.deepEqual(p.settled, ['delivered']);
    const stored = await readStream(nats.url, 'BIG');
    assert.deepEqual(
      stored.map((m) => m.body._id),
      ['n-1', 'n-2', 'n-4', 'n-5'],
    );
    const dead = p.dead();
    assert.deepEqual(
      dead.map((e) => e._id),
      ['n-3'],
    );
    assert.match(String((dead[0]!._dead_letter as { reason: string }).reason), /maximum|size/i);
    assert.equal(await p.metric('fluxo_sink_retries_total'), 0);
  });

  it('nats-server killed -9 mid-stream and restarted: every event is in the stream exactly once', async (t) => {
    const nats = await server(t);
    const p = await pipeline(t, {
      servers: [nats.url],
      subject: 'crash',
      ack_timeout: '1s',
      reconnect_wait: '200ms',
      batch: { timeout: '0ms', max_events: 100 },
      create_stream: { name: 'CRASH', duplicate_window: '5m' },
    });
    const total = 5000;
    const per = 100;
    const emitting = (async () => {
      for (let from = 1; from <= total; from += per) await p.emit(numbered(from, per));
    })();
    await until(() => p.settled.length >= 10, 'the first writes', 30_000);
    await nats.kill9();
    await new Promise((r) => setTimeout(r, 3000));
    await nats.restart();
    await emitting;
    await until(() => p.settled.length === total / per, 'every acknowledgement', 90_000);
    assert.ok(p.settled.every((s) => s === 'delivered'));
    assert.ok((await p.metric('fluxo_sink_retries_total')) >= 1, 'the kill caused no retry');
    const stored = await readStream(nats.url, 'CRASH');
    const counts = new Map<string, number>();
    for (const m of stored) counts.set(m.body._id as string, (counts.get(m.body._id as string) ?? 0) + 1);
    const missing: string[] = [];
    const twice: string[] = [];
    for (let n = 1; n <= total; n++) {
      const c = counts.get(`n-${n}`) ?? 0;
      if (c === 0) missing.push(`n-${n}`);
      if (c > 1) twice.push(`n-${n}`);
    }
    assert.deepEqual(missing, [], 'lost events');
    assert.deepEqual(twice, [], 'duplicated events');
    assert.equal(stored.length, total);
  });
});
