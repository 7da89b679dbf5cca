import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type FileSink, fileSink } from '../../src/sinks/file.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { checkSequence, readNdjsonDir, runFluxo, visibleFiles } from '../helpers/fluxo-process.ts';
import { driven } from '../helpers/sink-driver.ts';
import { sendNumberedLines } from '../helpers/tcp-senders.ts';

const CONNECTIONS = 300;
const PER_CONNECTION = 60;
const TOTAL = CONNECTIONS * PER_CONNECTION;

/** Event n: its hour (05, 06, 07 of 2026-11-24) and service come from n, so the partitions can be checked. */
const hourOf = (n: number) => 5 + (n % 3);
const svcOf = (n: number) => (n % 2 === 0 ? 'web' : 'api');
/** Every 97th event has a string status, every 89th a field no schema declares: they do not fit strict mode. */
const badStatus = (n: number) => n % 97 === 0;
const surprise = (n: number) => n % 89 === 0;
const misfit = (n: number) => badStatus(n) || surprise(n);

function payload(n: number): string {
  const event: Record<string, unknown> = {
    n,
    timestamp: `2026-11-24T0${hourOf(n)}:00:00.${String(n % 1000).padStart(3, '0')}456Z`,
    svc: svcOf(n),
    status: badStatus(n) ? 'bad' : 200 + (n % 5),
    ratio: n / 8,
    ok: n % 2 === 0,
    tags: [`t${n % 4}`],
  };
  if (surprise(n)) event.surprise = { k: n };
  return JSON.stringify(event);
}

const schema = `
        n: int64
        status: int64
        ratio: double
        ok: boolean
        tags: { type: list, items: string }
        timestamp: { type: timestamp, unit: us }
        host: string
        port: int64
        source_type: string`;

function parquetSink(dir: string, name: string, extra: string): string {
  return `
  ${name}:
    type: file
    inputs: [json]
    path: "${dir}/${name}/dt=%Y-%m-%d/hour=%H/svc={{ svc }}/part.parquet"
    encoding: parquet
    max_file_size: 256KiB
${extra}`;
}

function config(dir: string): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 60s
sources:
  tcp: { type: socket, mode: tcp, address: 127.0.0.1:0 }
transforms:
  json: { type: parse, inputs: [tcp], format: json, drop_field: true }
sinks:
${parquetSink(dir, 'relaxed', `    schema_mode: relaxed\n    schema:${schema}`)}
${parquetSink(dir, 'strict', `    schema_mode: strict\n    compression: snappy\n    schema:${schema}`)}
${parquetSink(dir, 'infer_zstd', '    compression: zstd')}
${parquetSink(dir, 'infer_gzip', '    compression: gzip')}
${parquetSink(dir, 'infer_none', '    compression: none\n    row_group_size: 16KiB')}
  dead:
    type: file
    inputs: [dead_letter]
    path: "${dir}/dead/part.ndjson"
`;
}

const glob = (dir: string, name: string) => sqlString(`${dir}/${name}/**/*.parquet`);
const hive = (dir: string, name: string, more = '') =>
  `read_parquet(${glob(dir, name)}, hive_partitioning = true${more})`;

function leftovers(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.startsWith('.')) out.push(p);
    }
  };
  walk(root);
  return out;
}

describe('file sink, encoding: parquet, through the real CLI', { timeout: 240_000 }, () => {
  it(`${CONNECTIONS} connections × ${PER_CONNECTION} events → DuckDB reads every one, typed and partitioned`, async (t) => {
    const dir = tempDir(t);
    const fluxo = runFluxo(t, dir, config(dir));
    // A start from the TypeScript sources on a loaded 2-core machine can take over 20 s.
    await fluxo.waitFor(/api (http:\/\/\S+)/, 120_000);
    const port = await fluxo.port('tcp');
    await sendNumberedLines(port, { connections: CONNECTIONS, total: TOTAL, payload });
    const misfits = Array.from({ length: TOTAL }, (_, i) => i + 1).filter(misfit);
    for (const id of ['relaxed', 'infer_zstd', 'infer_gzip', 'infer_none']) {
      await fluxo.waitForMetric('fluxo_component_sent_events_total', { component_id: id }, (v) => v >= TOTAL, 120_000);
    }
    await fluxo.waitForMetric(
      'fluxo_component_sent_events_total',
      { component_id: 'strict' },
      (v) => v >= TOTAL - misfits.length,
      120_000,
    );
    assert.equal(await fluxo.stop(), 0, fluxo.stderr);
    for (const id of ['relaxed', 'strict', 'infer_zstd', 'infer_gzip', 'infer_none']) {
      assert.deepEqual(leftovers(join(dir, id)), [], `${id}: staging files left after a clean stop`);
      const names = visibleFiles(join(dir, id));
      assert.ok(names.length > 3, `${id}: several files (${names.length})`);
      for (const f of names) assert.match(f, /\/part-\d{8}T\d{6}Z-[0-9a-f]{8}-1-\d+\.parquet$/);
    }

    // relaxed: every number once, the declared types, the partitions, and the misfits' values in _extra.
    const relaxed = hive(dir, 'relaxed');
    const numbers = (await duckQuery(`SELECT n FROM ${relaxed}`)).map((r) => Number(r.n));
    const seq = checkSequence(numbers, TOTAL);
    assert.deepEqual(seq.missing, [], `relaxed: missing ${seq.missing.length}`);
    assert.deepEqual(seq.duplicated, [], `relaxed: duplicated ${seq.duplicated.length}`);
    assert.equal(numbers.length, TOTAL);
    const described = Object.fromEntries(
      (await duckQuery(`DESCRIBE SELECT * FROM ${relaxed}`)).map((r) => [r.column_name, r.column_type]),
    );
    for (const [column, type] of Object.entries({
      _id: 'VARCHAR',
      timestamp: 'TIMESTAMP WITH TIME ZONE',
      n: 'BIGINT',
      status: 'BIGINT',
      ratio: 'DOUBLE',
      ok: 'BOOLEAN',
      tags: 'VARCHAR[]',
      _extra: 'JSON',
      dt: 'DATE',
      svc: 'VARCHAR',
    })) {
      assert.equal(described[column], type, `relaxed: column ${column}`);
    }
    const wrongPartition = await duckQuery(
      `SELECT n, dt, hour, svc, timestamp FROM ${relaxed}
       WHERE dt <> DATE '2026-11-24' OR CAST(hour AS INTEGER) <> 5 + n % 3
          OR svc <> (CASE WHEN n % 2 = 0 THEN 'web' ELSE 'api' END)
          OR hour(timestamp AT TIME ZONE 'UTC') <> CAST(hour AS INTEGER)
          OR epoch_us(timestamp) % 1000 <> 456
          OR ok <> (n % 2 = 0) OR ratio <> n / 8 OR tags[1] <> 't' || (n % 4)
       LIMIT 5`,
    );
    assert.deepEqual(wrongPartition, []);
    const extras = await duckQuery(
      `SELECT n, status, _extra->>'status' AS bad, (_extra->'surprise'->>'k')::BIGINT AS k FROM ${relaxed}
       WHERE _extra IS NOT NULL ORDER BY n`,
    );
    assert.deepEqual(
      extras.map((r) => Number(r.n)),
      misfits.filter((n) => badStatus(n) || surprise(n)),
    );
    for (const r of extras) {
      const n = Number(r.n);
      assert.equal(r.bad, badStatus(n) ? 'bad' : null, `relaxed: _extra of ${n}`);
      assert.equal(r.status, badStatus(n) ? null : String(200 + (n % 5)));
      assert.equal(r.k, surprise(n) ? String(n) : null);
    }

    // strict: exactly the misfits are dead-lettered, with their reason; the rest is in the files, typed.
    const strict = hive(dir, 'strict');
    const kept = (await duckQuery(`SELECT n FROM ${strict}`)).map((r) => Number(r.n)).sort((a, b) => a - b);
    assert.deepEqual(
      kept,
      Array.from({ length: TOTAL }, (_, i) => i + 1).filter((n) => !misfit(n)),
    );
    const strictTypes = Object.fromEntries(
      (await duckQuery(`DESCRIBE SELECT * FROM ${strict}`)).map((r) => [r.column_name, r.column_type]),
    );
    assert.equal(strictTypes.status, 'BIGINT');
    assert.equal(strictTypes.port, 'BIGINT');
    assert.deepEqual(await duckQuery(`SELECT n FROM ${strict} WHERE _extra IS NOT NULL`), []);
    const dead = readNdjsonDir(join(dir, 'dead'));
    const deadFromStrict = dead.filter((e) => (e._dead_letter as { component_id?: string })?.component_id === 'strict');
    assert.equal(deadFromStrict.length, dead.length, 'only the strict sink dead-letters');
    assert.deepEqual(
      deadFromStrict.map((e) => Number(e.n)).sort((a, b) => a - b),
      misfits,
    );
    for (const e of deadFromStrict) {
      const n = Number(e.n);
      const reason = String((e._dead_letter as { reason: string }).reason);
      if (badStatus(n)) assert.match(reason, /field `status` is a string, the schema says int64/);
      else assert.match(reason, /field `surprise` is not in the schema/);
    }

    // infer: every number once in each codec; the columns come from the events (union_by_name across files).
    for (const id of ['infer_zstd', 'infer_gzip', 'infer_none']) {
      const files = hive(dir, id, ', union_by_name = true');
      const [row] = await duckQuery(
        `SELECT count(*) AS c, count(DISTINCT n) AS d, min(n) AS lo, max(n) AS hi, count(DISTINCT _id) AS ids FROM ${files}`,
      );
      assert.deepEqual(row, { c: String(TOTAL), d: String(TOTAL), lo: '1', hi: String(TOTAL), ids: String(TOTAL) }, id);
      const types = Object.fromEntries(
        (await duckQuery(`DESCRIBE SELECT * FROM ${files}`)).map((r) => [r.column_name, r.column_type]),
      );
      assert.equal(types.n, 'BIGINT', `${id}: n`);
      assert.equal(types.ok, 'BOOLEAN', `${id}: ok`);
      assert.equal(types.timestamp, 'TIMESTAMP WITH TIME ZONE', `${id}: timestamp`);
      assert.equal(types.svc, 'VARCHAR', `${id}: svc`);
      // status is a string in the files that hold a "bad" one, so across files it widens to text.
      assert.ok(['BIGINT', 'VARCHAR'].includes(String(types.status)), `${id}: status ${types.status}`);
    }
    const codecs = await duckQuery(
      `SELECT DISTINCT regexp_extract(file_name, '/(infer_\\w+)/', 1) AS sink, compression
       FROM parquet_metadata(${sqlString(`${dir}/infer_*/**/*.parquet`)}) WHERE path_in_schema = 'n' ORDER BY 1`,
    );
    assert.deepEqual(codecs, [
      { sink: 'infer_gzip', compression: 'GZIP' },
      { sink: 'infer_none', compression: 'UNCOMPRESSED' },
      { sink: 'infer_zstd', compression: 'ZSTD' },
    ]);
    const [groups] = await duckQuery(
      `SELECT count(DISTINCT (file_name, row_group_id)) AS g, count(DISTINCT file_name) AS f
       FROM parquet_metadata(${glob(dir, 'infer_none')})`,
    );
    assert.ok(
      Number(groups!.g) > Number(groups!.f),
      `row_group_size 16KiB: several row groups per file (${JSON.stringify(groups)})`,
    );
  });
});

describe('file sink, encoding: parquet: a seal redone after a crash', () => {
  it('between the commit and the removal of the staging file: the same name, no second file', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const build = () =>
      fileSink.build(
        fileSink.options.parse({ path: `${out}/dt=%Y-%m-%d/part.parquet`, encoding: 'parquet' }),
        componentContext('master', join(dir, 'data'), 'sink', 'file'),
      ) as FileSink;
    const first = build();
    await first.start!();
    const events = Array.from({ length: 500 }, (_, i) => ({
      _id: `e${i}`,
      timestamp: '2026-12-02T03:00:00Z',
      n: i,
    }));
    await driven(first).write(events, new AbortController().signal);
    const partition = join(out, 'dt=2026-12-02');
    const [staging] = readdirSync(partition);
    assert.match(staging!, /^\.part-.*\.parquet\.[0-9a-f]{8}\.inprogress$/);
    copyFileSync(join(partition, staging!), join(dir, 'staging-copy'));
    await first.stop();
    const [sealed, ...more] = readdirSync(partition);
    assert.deepEqual(more, []);
    assert.match(sealed!, /^part-\d{8}T\d{6}Z-[0-9a-f]{8}-1-500\.parquet$/);
    // As if killed after the rename but before the staging file was deleted, in the middle of another seal.
    copyFileSync(join(dir, 'staging-copy'), join(partition, staging!));
    const leftover = staging!.replace(/\.inprogress$/, '.sealing');
    writeFileSync(join(partition, leftover), 'half a parquet file');
    const second = build();
    await second.start!();
    await second.stop();
    assert.deepEqual(readdirSync(partition), [sealed], 'the same name, staging and leftover gone');
    const [row] = await duckQuery(
      `SELECT count(*) AS c, count(DISTINCT _id) AS d, sum(n) AS s FROM read_parquet(${sqlString(`${out}/**/*.parquet`)})`,
    );
    assert.deepEqual(row, { c: '500', d: '500', s: String((499 * 500) / 2) });
  });
});
