import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import {
  type ColumnSpec,
  columnValue,
  declaredColumns,
  EXTRA_COLUMN,
  inferColumns,
  NO_FIT,
  RowGroupBuilder,
  strictMisfit,
  timestampValue,
  widen,
} from '../../src/sinks/file/parquet-schema.ts';
import { utf8Views } from '../../src/sinks/file/parquet-writer.ts';
import { sealedParquetPath } from '../../src/sinks/file/sealer.ts';
import { type FileSink, fileSink } from '../../src/sinks/file.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { driven } from '../helpers/sink-driver.ts';

const signal = new AbortController().signal;
const byName = (columns: ColumnSpec[]) => new Map(columns.map((c) => [c.name, c]));
const types = (columns: ColumnSpec[]) => Object.fromEntries(columns.map((c) => [c.name, c.type]));

describe('parquet schema: declared columns', () => {
  it('_id, timestamp and the path fields are always columns, declared types win', () => {
    const columns = declaredColumns(
      { status: 'int64', host: 'string', timestamp: { type: 'timestamp', unit: 'us', zone: 'utc', required: true } },
      ['host', 'app'],
    );
    assert.deepEqual(types(columns), {
      _id: 'string',
      timestamp: 'timestamp',
      host: 'string',
      app: 'string',
      status: 'int64',
    });
    assert.equal(columns.find((c) => c.name === 'timestamp')!.unit, 'us');
    assert.equal(columns.find((c) => c.name === 'timestamp')!.required, true);
    // A path field not declared takes numbers as text: a `{{ port }}` partition never rejects an event.
    assert.equal(columnValue(8080, columns.find((c) => c.name === 'app')!), '8080');
  });

  it('the config schema takes shorthands and objects, and rejects unknown types and keys', () => {
    const parse = (schema: unknown) =>
      fileSink.options.safeParse({ path: 'x/part.parquet', encoding: 'parquet', schema_mode: 'strict', schema });
    assert.ok(
      parse({ a: 'int64', b: { type: 'list', items: 'double' }, c: { type: 'timestamp', unit: 'ns', zone: 'local' } })
        .success,
    );
    assert.equal(parse({ a: 'integer' }).success, false);
    assert.equal(parse({ a: { type: 'string', nope: 1 } }).success, false);
    assert.equal(
      fileSink.options.safeParse({ path: 'x/part.parquet', encoding: 'parquet', schema_mode: 'strict' }).success,
      false,
    );
    assert.equal(fileSink.options.safeParse({ path: 'x/part.ndjson', compression: 'zstd' }).success, false);
  });
});

describe('parquet schema: strict mode', () => {
  const columns = byName(
    declaredColumns(
      {
        message: { type: 'string', required: true, unit: 'ms', zone: 'utc' },
        status: 'int64',
        ratio: 'double',
        ok: 'boolean',
        tags: { type: 'list', items: 'string', unit: 'ms', zone: 'utc', required: false },
        labels: 'map',
        anything: 'json',
      },
      [],
    ),
  );
  const table: [string, Event, string | undefined][] = [
    [
      'fits',
      {
        _id: 'a',
        timestamp: '2026-12-02T03:00:00Z',
        message: 'm',
        status: 200,
        ratio: 0.5,
        ok: true,
        tags: ['x'],
        labels: { a: 1 },
        anything: [1, 'a'],
      },
      undefined,
    ],
    ['an integer is a double too', { message: 'm', ratio: 1 }, undefined],
    ['null counts as missing', { message: 'm', status: null }, undefined],
    ['unknown field', { message: 'm', other: 1 }, 'field `other` is not in the schema (schema_mode: strict)'],
    ['missing required', { status: 1 }, 'required field `message` is missing (schema_mode: strict)'],
    ['string for int64', { message: 'm', status: '200' }, 'field `status` is a string, the schema says int64'],
    ['fraction for int64', { message: 'm', status: 1.5 }, 'field `status` is a number, the schema says int64'],
    ['number for boolean', { message: 'm', ok: 1 }, 'field `ok` is an integer, the schema says boolean'],
    [
      'list with a wrong element',
      { message: 'm', tags: ['a', 1] },
      'field `tags` is an array, the schema says list of string',
    ],
    ['array for map', { message: 'm', labels: [1] }, 'field `labels` is an array, the schema says map'],
    [
      'unparseable timestamp',
      { message: 'm', timestamp: 'yesterday' },
      'field `timestamp` is a string, the schema says timestamp',
    ],
  ];
  for (const [name, event, reason] of table) {
    it(name, () => assert.equal(strictMisfit(event, columns), reason));
  }
});

describe('parquet schema: inference', () => {
  it('widens int64 → double → string, and anything with objects or arrays → json', () => {
    assert.equal(widen('int64', 'double'), 'double');
    assert.equal(widen('double', 'int64'), 'double');
    assert.equal(widen('int64', 'string'), 'string');
    assert.equal(widen('boolean', 'int64'), 'string');
    assert.equal(widen('string', 'json'), 'json');
    assert.equal(widen(undefined, 'boolean'), 'boolean');
  });

  it('columns from the sample, in first-seen order, after the declared ones', () => {
    const sample: Event[] = [
      { _id: 'a', timestamp: 1, n: 1, x: 1, flag: true, obj: { a: 1 }, nothing: null },
      { _id: 'b', timestamp: 2, n: 2, x: 1.5, flag: false, obj: [1], mixed: 'a' },
      { _id: 'c', timestamp: 3, n: 3, x: 'three', mixed: 3 },
    ];
    const columns = inferColumns(declaredColumns(undefined, []), sample);
    assert.deepEqual(types(columns), {
      _id: 'string',
      timestamp: 'timestamp',
      n: 'int64',
      x: 'string',
      flag: 'boolean',
      obj: 'json',
      nothing: 'string',
      mixed: 'string',
    });
    // A widened string column takes the numbers as text; nothing goes to _extra.
    const b = new RowGroupBuilder(columns);
    for (const e of sample) b.add(e);
    const data = Object.fromEntries(b.take().map((c) => [c.name, c.data]));
    assert.deepEqual(data.x, ['1', '1.5', 'three']);
    assert.deepEqual(data.n, [1n, 2n, 3n]);
    assert.deepEqual(data[EXTRA_COLUMN], [null, null, null]);
  });

  it('a value that fits no column goes to _extra with the unknown fields', () => {
    const columns = declaredColumns({ status: 'int64' }, []);
    const b = new RowGroupBuilder(columns);
    b.add({ _id: 'a', status: 'oops', extra: { deep: true } });
    b.addRaw('not json');
    const data = Object.fromEntries(b.take().map((c) => [c.name, c.data]));
    assert.deepEqual(data.status, [null, null]);
    assert.deepEqual(data[EXTRA_COLUMN], [{ status: 'oops', extra: { deep: true } }, { _raw: 'not json' }]);
  });
});

describe('parquet schema: timestamps', () => {
  const spec = (unit: 'ms' | 'us' | 'ns', zone: 'utc' | 'local' = 'utc'): ColumnSpec => ({
    name: 't',
    type: 'timestamp',
    unit,
    zone,
    required: false,
  });
  it('ISO strings keep their sub-millisecond digits in us and ns, epoch ms numbers work', () => {
    assert.equal(timestampValue('2026-12-02T03:00:00.123456789Z', spec('ms')), 1796180400123n);
    assert.equal(timestampValue('2026-12-02T03:00:00.123456789Z', spec('us')), 1796180400123456n);
    assert.equal(timestampValue('2026-12-02T03:00:00.123456789Z', spec('ns')), 1796180400123456789n);
    assert.equal(timestampValue('2026-12-02T03:00:00.5Z', spec('us')), 1796180400500000n);
    assert.equal(timestampValue(1796180400123, spec('us')), 1796180400123000n);
    assert.equal(timestampValue('nope', spec('ms')), NO_FIT);
    assert.equal(timestampValue(true, spec('ms')), NO_FIT);
  });
  it('a run of one string converts the same for each column, whatever its unit and zone', () => {
    const ms = spec('ms');
    const us = spec('us');
    const local = spec('ms', 'local');
    const at = '2026-12-02T03:00:00.123456Z';
    const offset = BigInt(new Date(Date.parse(at)).getTimezoneOffset() * 60_000);
    for (let i = 0; i < 3; i++) {
      assert.equal(timestampValue(at, ms), 1796180400123n);
      assert.equal(timestampValue(at, ms), 1796180400123n);
      assert.equal(timestampValue(at, us), 1796180400123456n);
      assert.equal(timestampValue(at, local), 1796180400123n - offset);
      assert.equal(timestampValue('nope', ms), NO_FIT);
      assert.equal(timestampValue('2026-12-02T03:00:01Z', ms), 1796180401000n);
    }
  });
});

describe('parquet writer: text columns', () => {
  const values = ['plain ascii', null, 'é, ß and 漢字', '😀 emoji', 'lone \ud800 surrogate', '', 'tail \udfff'];
  it('utf8Views gives the bytes TextEncoder gives, and keeps nulls', () => {
    const views = utf8Views(values);
    const encoder = new TextEncoder();
    assert.equal(views.length, values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'string') assert.equal(views[i], v);
      else assert.deepEqual(Buffer.from(views[i] as Uint8Array), Buffer.from(encoder.encode(v)), `value ${i}`);
    }
  });
  it('a column of mostly distinct text reads back the same from the file', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const options = fileSink.options.parse({ path: `${out}/part.parquet`, encoding: 'parquet' });
    const sink = fileSink.build(options, componentContext('m', join(dir, 'data'), 'sink', 'file')) as FileSink;
    await sink.start!();
    // Over 1,000 rows, so the writer picks the plain encoding for the distinct text columns.
    const events: Event[] = Array.from({ length: 1500 }, (_, i) => ({
      _id: `id-${i}`,
      timestamp: '2026-12-02T03:00:00.000Z',
      message: `${values[i % values.length] ?? 'none'} #${i}`,
    }));
    await driven(sink).write(events, signal);
    await sink.stop();
    const glob = sqlString(`${out}/*.parquet`);
    const rows = await duckQuery(`SELECT _id, message FROM read_parquet(${glob}) ORDER BY CAST(_id[4:] AS INT)`);
    // A lone surrogate has no UTF-8 form: the file holds U+FFFD there, as Buffer.from writes it.
    const expected = events.map((e) => ({ _id: e._id, message: Buffer.from(e.message as string).toString() }));
    assert.deepEqual(rows, expected);
    const encodings = await duckQuery(
      `SELECT DISTINCT path_in_schema AS col, encodings FROM parquet_metadata(${glob}) WHERE path_in_schema IN ('_id', 'message')`,
    );
    assert.deepEqual(encodings.map((r) => r.col).sort(), ['_id', 'message']);
    for (const r of encodings) assert.doesNotMatch(String(r.encodings), /DICTIONARY/, `${r.col} is written plain`);
  });
});

describe('parquet schema: names', () => {
  it('the sealed name adds the record range to the staging name', () => {
    assert.equal(
      sealedParquetPath('out/dt=2026-12-02/part-20261202T030000Z-1a2b3c4d.parquet', 500),
      'out/dt=2026-12-02/part-20261202T030000Z-1a2b3c4d-1-500.parquet',
    );
  });
});

describe('parquet schema: what DuckDB reads', () => {
  it('each declared type maps to its Parquet type', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const options = fileSink.options.parse({
      path: `${out}/part.parquet`,
      encoding: 'parquet',
      schema_mode: 'relaxed',
      schema: {
        s: 'string',
        i: 'int64',
        d: 'double',
        b: 'boolean',
        ms: 'timestamp',
        us: { type: 'timestamp', unit: 'us' },
        ns: { type: 'timestamp', unit: 'ns' },
        local: { type: 'timestamp', zone: 'local' },
        li: { type: 'list', items: 'int64' },
        m: 'map',
        j: 'json',
      },
    });
    const sink = fileSink.build(options, componentContext('m', join(dir, 'data'), 'sink', 'file')) as FileSink;
    await sink.start!();
    const at = '2026-12-02T03:00:00.123456Z';
    await driven(sink).write(
      [
        {
          _id: 'a',
          timestamp: at,
          s: 'x',
          i: 2 ** 40,
          d: 0.25,
          b: true,
          ms: at,
          us: at,
          ns: at,
          local: at,
          li: [1, 2],
          m: { k: 'v' },
          j: [1, 'a'],
          other: 7,
        },
        { _id: 'b', timestamp: at, s: 5 },
      ],
      signal,
    );
    await sink.stop();
    const glob = sqlString(`${out}/*.parquet`);
    const described = await duckQuery(`DESCRIBE SELECT * FROM read_parquet(${glob})`);
    assert.deepEqual(Object.fromEntries(described.map((r) => [r.column_name, r.column_type])), {
      _id: 'VARCHAR',
      timestamp: 'TIMESTAMP WITH TIME ZONE',
      s: 'VARCHAR',
      i: 'BIGINT',
      d: 'DOUBLE',
      b: 'BOOLEAN',
      ms: 'TIMESTAMP WITH TIME ZONE',
      us: 'TIMESTAMP WITH TIME ZONE',
      ns: 'TIMESTAMP WITH TIME ZONE', // DuckDB reads NANOS into its µs type
      local: 'TIMESTAMP',
      li: 'BIGINT[]',
      m: 'JSON',
      j: 'JSON',
      _extra: 'JSON',
    });
    const rows = await duckQuery(
      `SELECT _id, i, li, epoch_us(us) AS us, epoch_ns(ns) AS ns, _extra FROM read_parquet(${glob}) ORDER BY _id`,
    );
    assert.deepEqual(rows, [
      {
        _id: 'a',
        i: String(2 ** 40),
        li: ['1', '2'],
        us: '1796180400123456',
        ns: '1796180400123456000',
        _extra: '{"other":7}',
      },
      { _id: 'b', i: null, li: null, us: null, ns: null, _extra: '{"s":5}' },
    ]);
    assert.equal(readdirSync(out).filter((f) => f.startsWith('.')).length, 0, 'no staging left');
  });
});
