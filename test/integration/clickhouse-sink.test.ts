import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { AckStatus } from '../../src/core/ack.ts';
import { RetryableError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { readAnswer, readFeatures } from '../../src/sinks/clickhouse/server.ts';
import { clickhouseSink } from '../../src/sinks/clickhouse.ts';
import { componentContext, recordingLogger, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { type ClickHouseServer, startClickHouse } from '../helpers/servers/clickhouse.ts';
import { driven } from '../helpers/sink-driver.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

const never = new AbortController().signal;

function events(from: number, count: number, extra: (n: number) => Record<string, unknown> = () => ({})): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: `e-${from + i}`,
    message: `line ${from + i}`,
    timestamp: new Date(Date.UTC(2026, 11, 2, 3, 0, 0, from + i)).toISOString(),
    host: 'web-1',
    n: from + i,
    ...extra(from + i),
  }));
}

async function logsTable(ch: ClickHouseServer, engine = 'ReplacingMergeTree'): Promise<void> {
  await ch.query(
    `CREATE TABLE logs (_id String, timestamp DateTime, host String, message String, n UInt32) ENGINE = ${engine} ORDER BY _id`,
  );
}

/** A pipeline: manual source `in` → clickhouse sink `out`, dead letters into the controlled sink `dead`. */
async function pipeline(t: TestContext, ch: ClickHouseServer, extra: Record<string, unknown> = {}) {
  const config = {
    sources: { in: { type: 'manual' } },
    sinks: {
      out: {
        type: 'clickhouse',
        inputs: ['in'],
        endpoint: ch.url,
        table: 'logs',
        retry: { initial_backoff: '50ms', max_backoff: '500ms' },
        batch: { max_events: 500, timeout: '5ms' },
        ...extra,
      },
      dead: { type: 'controlled', inputs: ['dead_letter'] },
    },
  };
  const rec = recordingLogger('info');
  const p = testPipeline(stringify(config), tempDir(t), [clickhouseSink], rec.logger);
  t.after(() => p.topology.stop(2000));
  await p.topology.start();
  const emit = async (batch: Event[]) => {
    let status: AckStatus | undefined;
    await p.source('in').ctx!.emit(batch, { onSettled: (s) => (status = s) });
    return () => status;
  };
  return { ...p, emit, logs: rec.lines };
}

describe('clickhouse sink', { timeout: 120_000 }, () => {
  it('N numbered events arrive, each once with FINAL; a replay adds rows that FINAL collapses', async (t) => {
    const ch = await startClickHouse(t);
    if (!ch) return;
    await logsTable(ch);
    const p = await pipeline(t, ch);
    const total = 5000;
    const settled: (() => AckStatus | undefined)[] = [];
    for (let b = 0; b < total / 250; b++) settled.push(await p.emit(events(1 + b * 250, 250)));
    await until(() => settled.every((s) => s() !== undefined), 'every batch settled', 30_000);
    assert.ok(settled.every((s) => s() === 'delivered'));
    const counted = await ch.rows<{ c: string; d: string; lo: number; hi: number }>(
      'SELECT count() AS c, uniqExact(n) AS d, min(n) AS lo, max(n) AS hi FROM logs FINAL',
    );
    assert.deepEqual(counted, [{ c: '5000', d: '5000', lo: 1, hi: 5000 }]);
    const [row] = await ch.rows<Record<string, unknown>>("SELECT * FROM logs WHERE _id = 'e-7'");
    assert.deepEqual(row, { _id: 'e-7', timestamp: '2026-12-02 03:00:00', host: 'web-1', message: 'line 7', n: 7 });
    // A replayed write (a crash before the acknowledgement): the rows arrive again, FINAL shows each once.
    const again = await p.emit(events(1, 250));
    await until(() => again() !== undefined, 'the replay settled');
    const [raw] = await ch.rows<{ c: string }>('SELECT count() AS c FROM logs');
    const [final] = await ch.rows<{ c: string }>('SELECT count() AS c FROM logs FINAL');
    assert.equal(final!.c, '5000');
    assert.ok(Number(raw!.c) >= 5000);
    const features = p.logs.find((l) => l.msg === 'clickhouse server features')!;
    assert.ok(features, 'the features are logged at connect');
    assert.equal(features.version, '18.16.1');
    assert.deepEqual(features.missing, ['insert_deduplication_token', 'async_insert']);
  });

  it('a bad row is dead-lettered with the server’s reason, the rest of its write inserted', async (t) => {
    const ch = await startClickHouse(t);
    if (!ch) return;
    await logsTable(ch);
    const p = await pipeline(t, ch, { skip_unknown_fields: false });
    const batch = events(1, 60, (n) => {
      if (n === 13) return { n: 'thirteen' };
      if (n === 40) return { n: -40 };
      if (n === 52) return { surprise: true };
      return {};
    });
    const status = await p.emit(batch);
    await until(() => status() !== undefined, 'the acknowledgement', 30_000);
    assert.equal(status(), 'delivered');
    const dead = p.sink('dead').written;
    const reasons = new Map(dead.map((e) => [e._id, String((e._dead_letter as { reason: string }).reason)]));
    assert.deepEqual([...reasons.keys()].sort(), ['e-13', 'e-40', 'e-52']);
    assert.match(reasons.get('e-13')!, /code 27: .*Cannot parse input/);
    assert.match(reasons.get('e-40')!, /code 72: .*Unsigned type must not contain '-'/);
    assert.match(reasons.get('e-52')!, /code 117: .*Unknown field found while parsing JSONEachRow format: surprise/);
    const [{ c }] = (await ch.rows<{ c: string }>('SELECT count() AS c FROM logs')) as [{ c: string }];
    assert.equal(c, '57');
  });

  it('async_insert on a server without it inserts synchronously; a missing table fails connect by name', async (t) => {
    const ch = await startClickHouse(t);
    if (!ch) return;
    const options = clickhouseSink.options.parse({ endpoint: ch.url, table: 'logs', async_insert: true });
    const rec = recordingLogger('info');
    const ctx = { ...componentContext('columnar', '/tmp'), logger: rec.logger };
    const sink = clickhouseSink.build(options, ctx);
    t.after(() => sink.stop());
    await assert.rejects(sink.connect!(never), /the table does not exist; create it/);
    await logsTable(ch, 'MergeTree');
    await sink.connect!(never);
    assert.ok(rec.lines.some((l) => /async_insert is not supported/.test(String(l.msg))));
    assert.ok(rec.lines.some((l) => /the table does not deduplicate/.test(String(l.msg))));
    assert.throws(() => clickhouseSink.options.parse({ endpoint: 'redis://x', table: 't' }), /http/);
  });

  it('reads the error answers and settings of old and new servers alike', () => {
    const old = readAnswer(
      500,
      undefined,
      "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist., e.what() = DB::Exception\n",
    );
    assert.deepEqual(old, { status: 500, code: 60, message: "DB::Exception: Table x doesn't exist." });
    const recent = readAnswer(
      400,
      '27',
      'Code: 27. DB::Exception: Cannot parse input: (at row 3) (CANNOT_PARSE_INPUT_ASSERTION_FAILED)',
    );
    assert.equal(recent.code, 27);
    assert.match(recent.message, /at row 3/);
    assert.deepEqual(
      readFeatures('{"v":"24.3.1","s":["async_insert","insert_deduplication_token","wait_for_async_insert"]}\n'),
      { version: '24.3.1', deduplicationToken: true, asyncInsert: true },
    );
  });
});

describe('clickhouse sink: create_table, auth and TLS', { timeout: 120_000 }, () => {
  it('create_table makes the documented layout (DateTime where 18.16 has no DateTime64) and delivers', async (t) => {
    const ch = await startClickHouse(t);
    if (!ch) return;
    await ch.query('CREATE DATABASE serving');
    const rec = recordingLogger('info');
    const ctx = { ...componentContext('columnar', '/tmp'), logger: rec.logger };
    const options = clickhouseSink.options.parse({
      endpoint: ch.url,
      database: 'serving',
      table: 'Access',
      create_table: true,
      columns: { timestamp: 'DateTime64(3)', host: 'String', message: 'String', n: 'UInt32' },
      partition_by: 'toYYYYMMDD(timestamp)',
    });
    const sink = clickhouseSink.build(options, ctx);
    t.after(() => sink.stop());
    await sink.connect!(never);
    // A second connect finds the table there (IF NOT EXISTS) and changes nothing.
    await sink.connect!(never);
    const [table] = await ch.rows<{ engine: string; sorting_key: string; partition_key: string }>(
      "SELECT engine, sorting_key, partition_key FROM system.tables WHERE database = 'serving' AND name = 'Access'",
    );
    assert.deepEqual(table, {
      engine: 'ReplacingMergeTree',
      sorting_key: '_id',
      partition_key: 'toYYYYMMDD(timestamp)',
    });
    const types = await ch.rows<{ name: string; type: string }>(
      "SELECT name, type FROM system.columns WHERE database = 'serving' AND table = 'Access'",
    );
    const version = (await ch.query('SELECT version()')).trim();
    const hasDateTime64 = Number(version.split('.')[0]) >= 20;
    assert.deepEqual(
      types.map((c) => [c.name, c.type]),
      [
        ['_id', 'String'],
        ['timestamp', hasDateTime64 ? 'DateTime64(3)' : 'DateTime'],
        ['host', 'String'],
        ['message', 'String'],
        ['n', 'UInt32'],
      ],
    );
    assert.equal(
      rec.lines.some((l) => /no DateTime64/.test(String(l.msg))),
      !hasDateTime64,
    );
    await driven(sink).write(events(1, 20), never);
    await driven(sink).write(events(1, 20), never);
    const [counted] = await ch.rows<{ c: string }>('SELECT count() AS c FROM serving.Access FINAL');
    assert.equal(counted!.c, '20');
    assert.throws(() => clickhouseSink.options.parse({ endpoint: ch.url, table: 't', columns: { n: '' } }), /columns/);
  });

  it('a wrong password fails with a clear authentication error; the right one delivers', async (t) => {
    const ch = await startClickHouse(t, { password: 's3cret&<x' });
    if (!ch) return;
    await logsTable(ch);
    const wrong = clickhouseSink.build(
      clickhouseSink.options.parse({ endpoint: ch.url, table: 'logs', password: 'nope' }),
      componentContext('wrong', '/tmp'),
    );
    t.after(() => wrong.stop());
    await assert.rejects(wrong.connect!(never), (error: Error) => {
      assert.ok(error instanceof RetryableError, 'a setup error is retried, never dead-lettered');
      assert.match(error.message, /code 19[23]: .*authentication failed for user default: check username and password/);
      assert.doesNotMatch(error.message, /nope/);
      return true;
    });
    process.env.FLUXO_TEST_CH_PASSWORD = 's3cret&<x';
    const p = await pipeline(t, ch, { password: '${FLUXO_TEST_CH_PASSWORD}' });
    delete process.env.FLUXO_TEST_CH_PASSWORD;
    const status = await p.emit(events(1, 10));
    await until(() => status() !== undefined, 'the acknowledgement', 30_000);
    assert.equal(status(), 'delivered');
    assert.equal((await ch.rows('SELECT _id FROM logs')).length, 10);
  });

  it('https: verified against the CA it is given delivers; without that CA a clear certificate error', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t));
    const ch = await startClickHouse(t, { tls: { crtFile: certs.serverCrt, keyFile: certs.serverKey } });
    if (!ch) return;
    await logsTable(ch);
    const sink = clickhouseSink.build(
      clickhouseSink.options.parse({ endpoint: ch.httpsUrl, table: 'logs', tls: { ca_file: certs.caFile } }),
      componentContext('columnar', '/tmp'),
    );
    t.after(() => sink.stop());
    await sink.connect!(never);
    await driven(sink).write(events(1, 7), never);
    assert.equal((await ch.rows('SELECT _id FROM logs')).length, 7);
    const untrusted = clickhouseSink.build(
      clickhouseSink.options.parse({ endpoint: ch.httpsUrl, table: 'logs' }),
      componentContext('untrusted', '/tmp'),
    );
    t.after(() => untrusted.stop());
    await assert.rejects(untrusted.connect!(never), /certificate/i);
    assert.throws(
      () =>
        clickhouseSink.build(
          clickhouseSink.options.parse({ endpoint: ch.url, table: 'logs', tls: { ca_file: certs.caFile } }),
          componentContext('plain', '/tmp'),
        ),
      /tls is set but endpoint .* is http:\/\/; use https:\/\//,
    );
  });
});
