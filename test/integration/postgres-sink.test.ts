import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { AckStatus } from '../../src/core/ack.ts';
import type { Event } from '../../src/core/event.ts';
import { quoteTable } from '../../src/sinks/postgres/rows.ts';
import { postgresSink } from '../../src/sinks/postgres.ts';
import { socketSource } from '../../src/sources/socket.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { type PostgresServer, startPostgres } from '../helpers/servers/postgres.ts';
import { driven } from '../helpers/sink-driver.ts';
import { startProxy } from '../helpers/tcp-proxy.ts';
import { sendNumberedLines } from '../helpers/tcp-senders.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

const never = new AbortController().signal;

function events(from: number, count: number, extra: (n: number) => Record<string, unknown> = () => ({})): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: `e-${from + i}`,
    message: `line ${from + i}`,
    timestamp: '2026-12-02T03:00:00.000Z',
    n: from + i,
    ...extra(from + i),
  }));
}

async function build(t: TestContext, options: Record<string, unknown>) {
  const sink = postgresSink.build(postgresSink.options.parse(options), componentContext('serving', '/tmp'));
  t.after(() => sink.stop());
  await sink.connect!(never);
  return sink;
}

async function logsTable(pg: PostgresServer, name = 'logs'): Promise<void> {
  await pg.query(`CREATE TABLE ${name} (_id text PRIMARY KEY, message text NOT NULL, n integer, ts timestamptz)`);
}

const columns = { message: 'message', n: 'n', ts: 'timestamp' };

/** How often each number of `line <n>` messages is in the table, checked against 1..total. */
async function checkNumbers(pg: PostgresServer, total: number, table = 'logs') {
  const rows = await pg.query<{ n: number; c: number }>(
    `SELECT substring(message from 6)::int AS n, count(*)::int AS c FROM ${table} GROUP BY 1`,
  );
  const counts = new Map(rows.map((r) => [r.n, r.c]));
  const missing: number[] = [];
  for (let n = 1; n <= total; n++) if (!counts.has(n)) missing.push(n);
  const twice = rows.filter((r) => r.c > 1).map((r) => r.n);
  const extra = rows.filter((r) => r.n < 1 || r.n > total).map((r) => r.n);
  return { missing, twice, extra };
}

describe('postgres sink', { timeout: 180_000 }, () => {
  it('300 connections × 20 lines through the socket source: every number exactly once', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    await logsTable(pg);
    const config = {
      sources: { tcp: { type: 'socket', mode: 'tcp', address: '127.0.0.1:0' } },
      sinks: {
        out: {
          type: 'postgres',
          inputs: ['tcp'],
          endpoint: pg.url,
          table: 'logs',
          columns: { message: 'message' },
          concurrency: 2,
          batch: { max_events: 500, timeout: '20ms' },
        },
      },
    };
    const p = testPipeline(stringify(config), tempDir(t), [socketSource, postgresSink]);
    t.after(() => p.topology.stop(5000));
    await p.topology.start();
    const endpoint = p.topology.describe().sources[0]!.endpoint!;
    const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
    const total = 300 * 20;
    await sendNumberedLines(port, { connections: 300, total });
    for (;;) {
      const [{ c }] = (await pg.query<{ c: number }>('SELECT count(*)::int AS c FROM logs')) as [{ c: number }];
      if (c >= total) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(await checkNumbers(pg, total), { missing: [], twice: [], extra: [] });
  });

  it('a replayed write inserts only its new rows; text and csv COPY keep every character', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    const nasty = ['tab\there', 'new\nline', 'cr\rlf', 'back\\slash', '\\N', '\\.', '', '"quoted", comma', 'ünï €𝄞'];
    for (const format of ['text', 'csv'] as const) {
      const table = `logs_${format}`;
      await pg.query(`CREATE TABLE ${table} (_id text PRIMARY KEY, message text, attrs jsonb, ok boolean)`);
      const sink = await build(t, {
        endpoint: pg.url,
        table,
        copy_format: format,
        columns: { message: 'message', attrs: 'attrs', ok: 'ok' },
      });
      const batch = nasty.map((message, i) => ({
        _id: `x-${i}`,
        message,
        attrs: { message, i },
        ok: i % 2 === 0,
      }));
      await driven(sink).write(batch, never);
      await driven(sink).write([...batch, { _id: 'x-new', message: null }], never);
      type Row = { _id: string; message: string | null; attrs: unknown; ok: boolean | null };
      const rows: Row[] = await pg.query<Row>(`SELECT _id, message, attrs, ok FROM ${table} ORDER BY _id`);
      assert.equal(rows.length, nasty.length + 1, `${format}: one row per _id`);
      for (const e of batch) {
        const row = rows.find((r) => r._id === e._id)!;
        assert.equal(row.message, e.message, `${format}: ${JSON.stringify(e.message)}`);
        assert.deepEqual(row.attrs, e.attrs);
        assert.equal(row.ok, e.ok);
      }
      assert.equal(rows.find((r) => r._id === 'x-new')!.message, null, `${format}: null stays NULL`);
    }
  });

  it('rows PostgreSQL refuses are dead-lettered with its reason, the rest of the batch inserted', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    await logsTable(pg);
    await pg.query('ALTER TABLE logs ADD CONSTRAINT small CHECK (n < 1000)');
    const dataDir = tempDir(t);
    const config = {
      sources: { in: { type: 'manual' } },
      sinks: {
        out: { type: 'postgres', inputs: ['in'], endpoint: pg.url, table: 'logs', columns, batch: { timeout: '0ms' } },
        dead: { type: 'controlled', inputs: ['dead_letter'] },
      },
    };
    const p = testPipeline(stringify(config), dataDir, [postgresSink]);
    t.after(() => p.topology.stop(2000));
    await p.topology.start();
    // 40 rows: a value integer does not take (found at its COPY line), a NOT NULL and a CHECK violation
    // (found by splitting the write), an unparsable timestamp.
    const batch = events(1, 40, (n) => {
      if (n === 7) return { n: 'seven' };
      if (n === 19) return { message: null };
      if (n === 23) return { n: 5000 };
      if (n === 31) return { timestamp: 'yesterday-ish' };
      return {};
    });
    let status: AckStatus | undefined;
    await p.source('in').ctx!.emit(batch, { onSettled: (s) => (status = s) });
    await until(() => status !== undefined, 'the acknowledgement', 30_000);
    assert.equal(status, 'delivered');
    const dead = p.sink('dead').written;
    const reasons = new Map(dead.map((e) => [e._id, String((e._dead_letter as { reason: string }).reason)]));
    assert.deepEqual([...reasons.keys()].sort(), ['e-19', 'e-23', 'e-31', 'e-7']);
    assert.match(reasons.get('e-7')!, /22P02.*invalid input syntax for type integer: "seven"/);
    assert.match(reasons.get('e-19')!, /23502.*null value in column "message"/);
    assert.match(reasons.get('e-23')!, /23514.*check constraint "small"/);
    assert.match(reasons.get('e-31')!, /22007.*yesterday-ish/);
    const rows = await pg.query<{ _id: string }>('SELECT _id FROM logs');
    assert.equal(rows.length, 36);
    assert.ok(!rows.some((r) => reasons.has(r._id)));
  });

  it('jsonb mode with create_table in a schema, the password from the environment', async (t) => {
    const pg = await startPostgres(t, { password: 'pa$$ word' });
    if (!pg) return;
    await pg.query('CREATE SCHEMA serving');
    const yaml = `
sources: { in: { type: manual } }
sinks:
  out:
    type: postgres
    inputs: [in]
    endpoint: ${pg.url}
    password: "\${FLUXO_TEST_PG_PASSWORD}"
    table: serving.Events
    mode: jsonb
    columns: { host: host, status: { field: http.status, type: integer } }
    create_table: true
    batch: { timeout: 0ms }
`;
    process.env.FLUXO_TEST_PG_PASSWORD = 'pa$$ word';
    const p = testPipeline(yaml, tempDir(t), [postgresSink]);
    delete process.env.FLUXO_TEST_PG_PASSWORD;
    t.after(() => p.topology.stop(2000));
    await p.topology.start();
    const batch = events(1, 5, (n) => ({ host: `web-${n}`, http: { status: 200 + n }, tags: ['a', "b'c"] }));
    let status: AckStatus | undefined;
    await p.source('in').ctx!.emit(batch, { onSettled: (s) => (status = s) });
    await until(() => status !== undefined, 'the acknowledgement', 20_000);
    assert.equal(status, 'delivered');
    const rows = await pg.query<{ _id: string; host: string; status: number; event: Event }>(
      'SELECT _id, host, status, event FROM serving."Events" ORDER BY _id',
    );
    assert.deepEqual(
      rows.map((r) => r.event),
      batch,
    );
    assert.deepEqual(
      rows.map((r) => [r._id, r.host, r.status]),
      batch.map((e, i) => [e._id, `web-${i + 1}`, 201 + i]),
    );
    const key = await pg.query<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'serving."Events"'::regclass`,
    );
    assert.deepEqual(
      key.map((k) => k.def),
      ['PRIMARY KEY (_id)'],
    );
  });

  it('a missing table or a table without a key on _id fails connect with what to do', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    const options = postgresSink.options.parse({ endpoint: pg.url, table: 'nope', columns });
    const sink = postgresSink.build(options, componentContext('serving', '/tmp'));
    t.after(() => sink.stop());
    await assert.rejects(sink.connect!(never), /42P01.*"nope" does not exist.*create_table: true/);
    await pg.query('CREATE TABLE nope (_id text, message text, n int, ts timestamptz)');
    await assert.rejects(sink.connect!(never), /no primary key or unique index/);
    await pg.query('ALTER TABLE nope ADD PRIMARY KEY (_id)');
    await sink.connect!(never);
    assert.throws(() => postgresSink.options.parse({ endpoint: pg.url, table: 't' }), /at least one column/);
    assert.throws(() => postgresSink.options.parse({ endpoint: 'http://x', table: 't', columns }), /postgres/);
  });

  it('a server that stops answering in the middle of connect or a healthcheck: an abort ends them', async (t) => {
    // Without it, a stop during such a connect waited for the runner's connect forever (a conformance hang).
    const pg = await startPostgres(t);
    if (!pg) return;
    await logsTable(pg);
    const proxy = await startProxy(t, { host: '127.0.0.1', port: pg.port });
    const endpoint = `postgres://postgres@127.0.0.1:${proxy.port}/postgres`;
    const sink = postgresSink.build(
      postgresSink.options.parse({ endpoint, table: 'logs', columns, connect_timeout: '2s' }),
      componentContext('serving', '/tmp'),
    );
    t.after(() => sink.stop());
    // The login passes; the answer to the first simple query ('Q', the table check) is held.
    const isQuery = (chunk: Buffer) => chunk[0] === 0x51;
    proxy.stallWhenClientSends(isQuery);
    const abort = new AbortController();
    const connecting = sink.connect!(abort.signal);
    await until(() => proxy.stalling, 'the table check sent');
    abort.abort(new Error('stopping'));
    await assert.rejects(connecting, /stopping/);
    proxy.resume();

    await sink.connect!(never);
    proxy.stallWhenClientSends(isQuery);
    const checking = new AbortController();
    const health = sink.healthcheck!(checking.signal);
    await until(() => proxy.stalling, 'the healthcheck sent');
    checking.abort(new Error('stopping'));
    await assert.rejects(health, /stopping/);
    proxy.resume();
    await sink.healthcheck!(never);
  });

  it('TLS: verified against the CA it is given; without TLS the server refuses the login', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t));
    const pg = await startPostgres(t, { tls: { crtFile: certs.serverCrt, keyFile: certs.serverKey } });
    if (!pg) return;
    await logsTable(pg);
    const sink = await build(t, { endpoint: pg.url, table: 'logs', columns, tls: { ca_file: certs.caFile } });
    await driven(sink).write(events(1, 3), never);
    const ssl = await pg.query<{ ssl: boolean }>(
      "SELECT bool_and(s.ssl) AS ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'fluxo serving'",
    );
    assert.deepEqual(ssl, [{ ssl: true }]);
    assert.equal((await pg.query('SELECT _id FROM logs')).length, 3);
    const plain = postgresSink.build(
      postgresSink.options.parse({ endpoint: pg.url, table: 'logs', columns }),
      componentContext('plain', '/tmp'),
    );
    t.after(() => plain.stop());
    await assert.rejects(plain.connect!(never), /no encryption/);
    const otherCa = makeTestCertificates(openssl, tempDir(t));
    const wrong = postgresSink.build(
      postgresSink.options.parse({ endpoint: pg.url, table: 'logs', columns, tls: { ca_file: otherCa.caFile } }),
      componentContext('wrong', '/tmp'),
    );
    t.after(() => wrong.stop());
    await assert.rejects(wrong.connect!(never), /certificate/);
  });

  it('TLS with a scram password from ${PGPASSWORD}: the CA it is given delivers, without it a clear error', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t));
    const pg = await startPostgres(t, {
      password: 'tls pa$$',
      tls: { crtFile: certs.serverCrt, keyFile: certs.serverKey },
    });
    if (!pg) return;
    await logsTable(pg);
    const yaml = `
sources: { in: { type: manual } }
sinks:
  out:
    type: postgres
    inputs: [in]
    endpoint: ${pg.url}
    password: "\${PGPASSWORD}"
    table: logs
    columns: { message: message, n: n, ts: timestamp }
    tls: { ca_file: ${certs.caFile} }
    retry: { initial_backoff: 50ms, max_backoff: 200ms }
    batch: { timeout: 0ms }
`;
    // Read when the config is loaded, then gone: the login cannot come from pg's own PGPASSWORD fallback.
    process.env.PGPASSWORD = 'tls pa$$';
    const p = testPipeline(yaml, tempDir(t), [postgresSink]);
    delete process.env.PGPASSWORD;
    t.after(() => p.topology.stop(2000));
    await p.topology.start();
    let status: AckStatus | undefined;
    await p.source('in').ctx!.emit(events(1, 4), { onSettled: (s) => (status = s) });
    await until(() => status !== undefined, 'the acknowledgement', 20_000);
    assert.equal(status, 'delivered');
    assert.deepEqual(await checkNumbers(pg, 4), { missing: [], twice: [], extra: [] });
    const ssl = await pg.query<{ ssl: boolean }>(
      "SELECT bool_and(s.ssl) AS ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'fluxo out'",
    );
    assert.deepEqual(ssl, [{ ssl: true }]);
    // Without the CA the server's certificate is not trusted: connect fails and says why.
    const untrusted = postgresSink.build(
      postgresSink.options.parse({ endpoint: pg.url, table: 'logs', columns, password: 'tls pa$$', tls: {} }),
      componentContext('untrusted', '/tmp'),
    );
    t.after(() => untrusted.stop());
    await assert.rejects(untrusted.connect!(never), /self[- ]signed certificate|unable to verify|certificate/i);
    const wrong = postgresSink.build(
      postgresSink.options.parse({
        endpoint: pg.url,
        table: 'logs',
        columns,
        password: 'wrong',
        tls: { ca_file: certs.caFile },
      }),
      componentContext('wrong', '/tmp'),
    );
    t.after(() => wrong.stop());
    await assert.rejects(wrong.connect!(never), /28P01.*password authentication failed/);
  });

  it('table names: schema-qualified, case kept, quotes for dots and quotes', () => {
    assert.equal(quoteTable('logs'), '"logs"');
    assert.equal(quoteTable('serving.Events'), '"serving"."Events"');
    assert.equal(quoteTable('"a.b"."c""d"'), '"a.b"."c""d"');
    assert.throws(() => quoteTable('a.b.c'), /schema.table/);
    assert.throws(
      () =>
        postgresSink.build(
          postgresSink.options.parse({ endpoint: 'postgres://x/y', table: 'a..b', columns }),
          componentContext('x', '/tmp'),
        ),
      /FLUXO|table/,
    );
  });

  // A fast shutdown disconnects the sink's connections (57P01), and for 20 s every connect is refused; the
  // writes back off and retry, then go through once it is up again.
  it('the server stopped for 20 s mid-stream: nothing lost, nothing doubled', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    await logsTable(pg);
    const config = {
      sources: { in: { type: 'manual' } },
      sinks: {
        out: {
          type: 'postgres',
          inputs: ['in'],
          endpoint: pg.url,
          table: 'logs',
          columns,
          retry: { initial_backoff: '100ms', max_backoff: '1s' },
          batch: { max_events: 100, timeout: '5ms' },
        },
      },
    };
    const p = testPipeline(stringify(config), tempDir(t), [postgresSink]);
    t.after(() => p.topology.stop(2000));
    await p.topology.start();
    const source = p.source('in');
    const total = 4000;
    const statuses: (AckStatus | undefined)[] = [];
    let restarted: Promise<void> | undefined;
    let timer: NodeJS.Timeout | undefined;
    t.after(() => clearTimeout(timer));
    for (let b = 0; b < total / 100; b++) {
      const at = statuses.length;
      statuses.push(undefined);
      await source.ctx!.emit(events(1 + b * 100, 100), { onSettled: (s) => (statuses[at] = s) });
      if (b === 10) {
        await pg.stop();
        restarted = new Promise((resolve) => {
          timer = setTimeout(resolve, 20_000);
        }).then(() => pg.start());
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await restarted;
    await until(() => statuses.every((s) => s !== undefined), 'every batch settled', 60_000);
    assert.ok(statuses.every((s) => s === 'delivered'));
    assert.deepEqual(await checkNumbers(pg, total), { missing: [], twice: [], extra: [] });
    const retries = p.metrics.registry.getSingleMetric('fluxo_sink_retries_total');
    const retried = retries ? (await retries.get()).values.reduce((sum, v) => sum + v.value, 0) : 0;
    assert.ok(retried >= 1, 'the outage did not fail a write: it was not mid-stream');
  });
});
