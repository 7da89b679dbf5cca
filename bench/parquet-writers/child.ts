/**
 * One Parquet writer candidate in its own process, so its peak RSS and CPU are its own. Started by
 * bench/parquet-writers.ts; prints one JSON line. Events are generated batch by batch while writing (holding
 * 1M events in memory would hide each writer's own footprint); the CPU and wall time of the generation are
 * measured around each batch and subtracted, so the figures are the writer's: transposing rows into columns,
 * encoding, compressing, writing the file.
 *
 *   node --import tsx bench/parquet-writers/child.ts <candidate> <codec> <out.parquet> <events> <batch> <deps>
 */

import { closeSync, createWriteStream, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import * as zlib from 'node:zlib';
import type { Event } from '../../src/core/event.ts';
import { AccessEventSource, appendColumns, COLUMNS, type ColumnValues, emptyColumns, isoToMs } from './events.ts';

export const ROW_GROUP_ROWS = 100_000;
export type Codec = 'zstd' | 'snappy';
/** zstd level for the writers that let us choose: 3 is zstd's and DuckDB's default. */
const ZSTD_LEVEL = 3;

const [candidate, codec, outPath, eventsArg, batchArg, depsDir] = process.argv.slice(2) as [
  string,
  Codec,
  string,
  string,
  string,
  string,
];
const totalEvents = Number(eventsArg);
const batchSize = Number(batchArg);
const requireDep = createRequire(join(depsDir, 'package.json'));
// biome-ignore lint/suspicious/noExplicitAny: the candidates are not project dependencies, so they have no types here
type Any = any;
const load = async (name: string): Promise<Any> => import(pathToFileURL(requireDep.resolve(name)).href);

/** Generation time, measured around each batch, to subtract from the totals. */
const generation = { cpuUs: 0, wallMs: 0 };
const source = new AccessEventSource();

/** Runs `work` with its CPU and wall time counted as generation (subtracted from the candidate's). */
function asGeneration<T>(work: () => T): T {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const out = work();
  const cpu = process.cpuUsage(cpu0);
  generation.cpuUs += cpu.user + cpu.system;
  generation.wallMs += performance.now() - t0;
  return out;
}

function nextBatch(remaining: number): Event[] {
  return asGeneration(() => source.batch(Math.min(batchSize, remaining)));
}

/** Yields the batches a sink would be handed, until `totalEvents`. */
function* batches(): Generator<Event[]> {
  for (let done = 0; done < totalEvents; ) {
    const batch = nextBatch(totalEvents - done);
    done += batch.length;
    yield batch;
  }
}

type Writer = { setup?: () => Promise<void>; run: () => Promise<void>; version: string };

function version(name: string): string {
  // Read from the folder: some packages do not export their package.json.
  return JSON.parse(readFileSync(join(depsDir, 'node_modules', name, 'package.json'), 'utf8')).version as string;
}

/** Baseline: generation only, nothing written. Its RSS is what every candidate starts from. */
function none(): Writer {
  return {
    version: '-',
    run: async () => {
      for (const batch of batches()) batch.length = 0;
      closeSync(openSync(outPath, 'w'));
    },
  };
}

async function hyparquetWriter(): Promise<Writer> {
  const hw: Any = await load('hyparquet-writer');
  let zstdCompress: ((input: Uint8Array) => Uint8Array) | undefined;
  let zstdVia = 'none';
  if (codec === 'zstd') {
    const native = (zlib as Any).zstdCompressSync as ((b: Uint8Array, o: object) => Buffer) | undefined;
    if (native) {
      // Node ≥ 22.15 has zstd in zlib; Node 20 does not, so a WebAssembly zstd is the pure-JS-install fallback.
      const level = { params: { [(zlib.constants as Any).ZSTD_c_compressionLevel]: ZSTD_LEVEL } };
      zstdCompress = (input) => native(input, level);
      zstdVia = 'node:zlib';
    } else {
      const wasm: Any = await load('@bokuweb/zstd-wasm');
      await wasm.init();
      zstdCompress = (input) => wasm.compress(input, ZSTD_LEVEL);
      zstdVia = `@bokuweb/zstd-wasm ${version('@bokuweb/zstd-wasm')}`;
    }
  }
  const schema = [
    { name: 'root', num_children: COLUMNS.length },
    ...COLUMNS.map(({ name, kind, nullable }) => {
      const repetition_type = nullable ? 'OPTIONAL' : 'REQUIRED';
      if (kind === 'string') return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type };
      if (kind === 'int32') return { name, type: 'INT32', repetition_type };
      if (kind === 'int64') return { name, type: 'INT64', repetition_type };
      return {
        name,
        type: 'INT64',
        repetition_type,
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' },
      };
    }),
  ];
  return {
    version: `${version('hyparquet-writer')}${codec === 'zstd' ? ` + zstd via ${zstdVia}` : ''}`,
    run: async () => {
      const writer = new hw.ParquetWriter({
        writer: hw.fileWriter(outPath),
        schema,
        codec: codec === 'zstd' ? 'ZSTD' : 'SNAPPY',
        ...(zstdCompress ? { compressors: { ZSTD: zstdCompress } } : {}),
      });
      // One write() per row group: ParquetWriter turns every call into at least one row group.
      let columns = emptyColumns();
      const flush = async () => {
        await writer.write({
          columnData: COLUMNS.map(({ name, kind }, c) => ({
            name,
            // INT64 columns take bigints; timestamps are converted from numbers by the library itself.
            data: kind === 'int64' ? columns[c]!.map((v) => (v === null ? null : BigInt(v))) : columns[c]!,
          })),
          rowGroupSize: ROW_GROUP_ROWS,
        });
        columns = emptyColumns();
      };
      for (const batch of batches()) {
        appendColumns(columns, batch);
        if (columns[0]!.length >= ROW_GROUP_ROWS) await flush();
      }
      if (columns[0]!.length > 0) await flush();
      await writer.finish();
    },
  };
}

async function parquetWasm(): Promise<Writer> {
  const arrow: Any = await load('apache-arrow');
  const pw: Any = await load('parquet-wasm');
  const types = COLUMNS.map(({ kind }) =>
    kind === 'string'
      ? new arrow.Utf8()
      : kind === 'int32'
        ? new arrow.Int32()
        : kind === 'int64'
          ? new arrow.Int64()
          : new arrow.TimestampMillisecond('UTC'),
  );
  const props = new pw.WriterPropertiesBuilder()
    .setCompression(codec === 'zstd' ? pw.Compression.ZSTD : pw.Compression.SNAPPY)
    .setDictionaryEnabled(true)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .build();
  return {
    version: `parquet-wasm ${version('parquet-wasm')}, apache-arrow ${version('apache-arrow')}`,
    run: async () => {
      const it = batches();
      // Each sink batch becomes an Arrow record batch, copied into WebAssembly memory through Arrow IPC; the Rust
      // writer keeps rows until a row group is full.
      const input = new ReadableStream({
        pull(controller) {
          const next = it.next();
          if (next.done) {
            controller.close();
            return;
          }
          const columns: ColumnValues = emptyColumns();
          appendColumns(columns, next.value);
          const vectors: Record<string, unknown> = {};
          COLUMNS.forEach(({ name, kind }, c) => {
            const values = columns[c]!;
            vectors[name] = arrow.vectorFromArray(
              kind === 'int64' ? values.map((v) => (v === null ? null : BigInt(v))) : values,
              types[c],
            );
          });
          const ipc = arrow.tableToIPC(new arrow.Table(vectors), 'stream');
          const table = pw.Table.fromIPCStream(ipc);
          for (const rb of table.recordBatches()) controller.enqueue(rb);
        },
      });
      const output: ReadableStream = await pw.transformParquetStream(input, props);
      await output.pipeTo(Writable.toWeb(createWriteStream(outPath)));
    },
  };
}

async function duckdb(): Promise<Writer> {
  const duck: Any = await load('@duckdb/node-api');
  const sqlType = { string: 'VARCHAR', int32: 'INTEGER', int64: 'BIGINT', timestamp_ms: 'TIMESTAMPTZ' } as const;
  return {
    version: version('@duckdb/node-api'),
    run: async () => {
      const instance = await duck.DuckDBInstance.create(':memory:');
      const conn = await instance.connect();
      await conn.run(
        `CREATE TABLE events (${COLUMNS.map(({ name, kind, nullable }) => `"${name}" ${sqlType[kind]}${nullable ? '' : ' NOT NULL'}`).join(', ')})`,
      );
      const appender = await conn.createAppender('events');
      const kinds = COLUMNS.map((c) => c.kind);
      const names = COLUMNS.map((c) => c.name);
      for (const batch of batches()) {
        for (const event of batch) {
          for (let c = 0; c < names.length; c++) {
            const v = event[names[c]!];
            if (v === undefined || v === null) appender.appendNull();
            else if (kinds[c] === 'string') appender.appendVarchar(v as string);
            else if (kinds[c] === 'int32') appender.appendInteger(v as number);
            else if (kinds[c] === 'int64') appender.appendBigInt(BigInt(v as number));
            else appender.appendTimestampTZ(duck.timestampTZValue(BigInt(isoToMs(v as string)) * 1000n));
          }
          appender.endRow();
        }
        appender.flushSync();
      }
      appender.closeSync();
      await conn.run(
        `COPY events TO '${outPath.replaceAll("'", "''")}' (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE ${ROW_GROUP_ROWS})`,
      );
      conn.closeSync();
      instance.closeSync();
    },
  };
}

/**
 * DuckDB reading the events back from NDJSON, as a seal would from Fluxo's staging file: the lines are written
 * batch by batch (JSON.stringify and the write are counted as generation, since the sink's staging already
 * pays for them), then one `COPY (SELECT … FROM read_ndjson(…, columns = …)) TO …` parses and encodes them in
 * native code, in one thread. Unlike the other candidates it parses the JSON itself.
 */
async function duckdbNdjson(): Promise<Writer> {
  const duck: Any = await load('@duckdb/node-api');
  const sqlType = { string: 'VARCHAR', int32: 'INTEGER', int64: 'BIGINT', timestamp_ms: 'TIMESTAMPTZ' } as const;
  return {
    version: version('@duckdb/node-api'),
    run: async () => {
      const staging = `${outPath}.ndjson`;
      const fd = openSync(staging, 'w');
      for (const batch of batches()) {
        asGeneration(() => {
          let text = '';
          for (const event of batch) text += `${JSON.stringify(event)}\n`;
          writeSync(fd, text);
        });
      }
      closeSync(fd);
      const instance = await duck.DuckDBInstance.create(':memory:', { threads: '1' });
      const conn = await instance.connect();
      const columns = COLUMNS.map(({ name, kind }) => `'${name}': '${sqlType[kind]}'`).join(', ');
      const q = (path: string) => `'${path.replaceAll("'", "''")}'`;
      await conn.run(
        `COPY (SELECT * FROM read_ndjson(${q(staging)}, columns = {${columns}})) TO ${q(outPath)} ` +
          `(FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE ${ROW_GROUP_ROWS})`,
      );
      conn.closeSync();
      instance.closeSync();
      rmSync(staging);
    },
  };
}

const CANDIDATES: Record<string, () => Writer | Promise<Writer>> = {
  none,
  'hyparquet-writer': hyparquetWriter,
  'parquet-wasm': parquetWasm,
  duckdb,
  'duckdb-ndjson': duckdbNdjson,
};

async function main(): Promise<void> {
  const make = CANDIDATES[candidate];
  if (!make) throw new Error(`unknown candidate ${candidate}`);
  // Loading the library and its WebAssembly or native code is part of the candidate's cost; start-up is not.
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const writer = await make();
  const loaded = process.cpuUsage(cpu0);
  await writer.run();
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - t0 - generation.wallMs;
  const cpuS = (cpu.user + cpu.system - generation.cpuUs) / 1e6;
  const result = {
    candidate,
    codec,
    version: writer.version,
    events: totalEvents,
    batch: batchSize,
    wall_s: wallMs / 1000,
    cpu_s: cpuS,
    cpu_user_s: cpu.user / 1e6,
    cpu_sys_s: cpu.system / 1e6,
    load_cpu_s: (loaded.user + loaded.system) / 1e6,
    generation_cpu_s: generation.cpuUs / 1e6,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    file_bytes: statSync(outPath).size,
    status_sum: source.statusSum,
    node: process.version,
  };
  writeSync(1, `${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    writeSync(1, `${JSON.stringify({ candidate, codec, error: String((error as Error).stack ?? error) })}\n`);
    process.exit(1);
  },
);
