import { type FileHandle, open } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import type { ParquetWriter } from 'hyparquet-writer';
import { type Compress, zstdCompressor } from '../../codecs/zstd.ts';
import type { Event } from '../../core/event.ts';
import { writeFully } from './open-file.ts';
import {
  type ColumnSpec,
  InferringRowGroupBuilder,
  parquetSchema,
  RowGroupBuilder,
  type SchemaElement,
  type SchemaMode,
} from './parquet-schema.ts';

export type ParquetCompression = 'zstd' | 'snappy' | 'gzip' | 'none';

export interface ParquetFileOptions {
  /** Declared columns (with `_id`, `timestamp` and the path's fields). */
  readonly columns: readonly ColumnSpec[];
  readonly mode: SchemaMode;
  readonly compression: ParquetCompression;
  /** Staged (NDJSON) bytes per row group. */
  readonly rowGroupBytes: number;
  readonly rowGroupMaxRows: number;
}

/** zstd level 3: zstd's and DuckDB's default, the one the writer benchmark measured. */
const ZSTD_LEVEL = 3;
let zstd: Promise<Compress> | undefined;

const CODEC = { zstd: 'ZSTD', snappy: 'SNAPPY', gzip: 'GZIP', none: 'UNCOMPRESSED' } as const;

async function compressors(compression: ParquetCompression): Promise<Record<string, Compress>> {
  if (compression === 'zstd') {
    zstd ??= zstdCompressor(ZSTD_LEVEL);
    return { ZSTD: await zstd };
  }
  if (compression === 'gzip') return { GZIP: (input) => zlib.gzipSync(input) };
  return {};
}

type Library = typeof import('hyparquet-writer');
let library: Promise<Library> | undefined;
/** Loaded on the first seal: a config without Parquet never pays for it at start. */
const loadLibrary = (): Promise<Library> => {
  library ??= import('hyparquet-writer');
  return library;
};

/**
 * A hyparquet-writer Writer that keeps one row group in memory and appends it to `handle` when the library
 * flushes after the group: the file never holds more than one compressed row group in RAM.
 */
function fileHandleWriter(lib: Library, handle: FileHandle) {
  const writer = new lib.ByteWriter(1 << 20);
  let position = 0;
  const flush = async (): Promise<void> => {
    const bytes = Buffer.from(writer.buffer, 0, writer.index);
    await writeFully(handle, bytes, position);
    position += bytes.length;
    writer.index = 0;
  };
  return Object.assign(writer, { flush, finish: flush });
}

/**
 * The string columns of the first row group whose values are mostly distinct (ids, raw lines): written PLAIN
 * from the start, since the library would build a dictionary for them only to drop it (it keeps one only
 * when it halves the column), which costs a third of a seal's CPU on access logs; and without min/max
 * statistics. Decided once per file, from its first row group.
 */
function mostlyDistinct(columns: readonly { name: string; data: unknown[] }[], rows: number): Set<string> {
  const out = new Set<string>();
  if (rows < 1000) return out;
  for (const { name, data } of columns) {
    let strings = 0;
    const seen = new Set<unknown>();
    // A sample is enough to tell a high-cardinality column; the rest would only cost time.
    const step = Math.max(1, Math.floor(rows / 2000));
    for (let i = 0; i < rows; i += step) {
      const v = data[i];
      if (typeof v !== 'string') continue;
      strings++;
      seen.add(v);
    }
    if (strings > 0 && seen.size > strings * 0.5) out.add(name);
  }
  return out;
}

/**
 * The values of a string column as UTF-8 views into one buffer (nulls kept). The library would otherwise
 * encode each value with TextEncoder into an allocation of its own, which costs ~1 µs for an access-log line;
 * one `buf.write` per value into a shared buffer costs a third of that and leaves less for the collector.
 * Same bytes as TextEncoder, lone surrogates included (both write U+FFFD).
 */
export function utf8Views(values: readonly unknown[]): unknown[] {
  let units = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string') units += v.length;
  }
  // At most 3 bytes per UTF-16 unit: enough for any value, so no write is ever cut.
  const buffer = Buffer.allocUnsafeSlow(units * 3);
  const out: unknown[] = new Array(values.length);
  let at = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'string') {
      out[i] = v;
      continue;
    }
    const n = buffer.write(v, at);
    out[i] = buffer.subarray(at, at + n);
    at += n;
  }
  return out;
}

export interface WrittenParquet {
  readonly events: number;
  readonly bytes: number;
}

/**
 * Yields the lines of an NDJSON file (without their `\n`), reading it in 1 MiB pieces. Each piece is decoded
 * once, up to its last `\n` (so no UTF-8 sequence is cut), and its lines are slices of that string: cheaper
 * than decoding line by line.
 */
async function* lines(handle: FileHandle): AsyncGenerator<string> {
  const piece = Buffer.allocUnsafe(1 << 20);
  let carry: Buffer | undefined;
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(piece, 0, piece.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    let data = piece.subarray(0, bytesRead);
    if (carry !== undefined) {
      data = Buffer.concat([carry, data]);
      carry = undefined;
    }
    const last = data.lastIndexOf(0x0a);
    if (last < 0) {
      carry = Buffer.from(data);
      continue;
    }
    const text = data.toString('utf8', 0, last + 1);
    let start = 0;
    for (let nl = text.indexOf('\n', start); nl >= 0; nl = text.indexOf('\n', start)) {
      if (nl > start) yield text.slice(start, nl);
      start = nl + 1;
    }
    if (last + 1 < data.length) carry = Buffer.from(data.subarray(last + 1));
  }
  // A line without its `\n` was torn by a crash before it was acknowledged; recovery cuts it off first.
}

/**
 * Writes the NDJSON staging file `stagingPath` as one Parquet file at `outPath` (created or replaced), fsync'd.
 * Row groups hold about `rowGroupBytes` of staged lines. In `infer` mode the columns come from the first row
 * group's events; later values that fit no column go to `_extra`. Returns the events written and the size.
 * Each line goes into the column arrays as soon as it is parsed: no event object outlives its line, which
 * keeps a row group's memory (and the garbage collector's work) to its column values.
 */
export async function writeParquetFile(
  stagingPath: string,
  outPath: string,
  options: ParquetFileOptions,
): Promise<WrittenParquet> {
  const input = await open(stagingPath, 'r');
  let output: FileHandle | undefined;
  try {
    let writer: ParquetWriter | undefined;
    let first: InferringRowGroupBuilder | undefined =
      options.mode === 'infer' ? new InferringRowGroupBuilder(options.columns) : undefined;
    let builder: RowGroupBuilder | undefined = first === undefined ? new RowGroupBuilder(options.columns) : undefined;
    let pendingBytes = 0;
    let events = 0;
    const codecs = await compressors(options.compression);
    const lib = await loadLibrary();
    let plain: Set<string> | undefined;
    /** The plain columns that hold text (a json column's strings are values to stringify, not bytes). */
    let plainText: Set<string> | undefined;
    /** The file's columns: the declared ones, and in `infer` mode those of its first row group. */
    let columns: readonly ColumnSpec[] = options.columns;
    const flushGroup = async () => {
      const rows = (first ?? builder)!.rows;
      if (rows === 0) return;
      let columnData: { name: string; data: unknown[] }[];
      if (first !== undefined) {
        const done = first.finish();
        columns = done.columns;
        columnData = done.data;
        first = undefined;
        builder = new RowGroupBuilder(columns);
      } else {
        columnData = builder!.take();
      }
      if (writer === undefined) {
        output = await open(outPath, 'w');
        writer = new lib.ParquetWriter({
          writer: fileHandleWriter(lib, output),
          schema: parquetSchema(columns) as never,
          codec: CODEC[options.compression],
          compressors: codecs,
          createdBy: 'fluxo (hyparquet-writer)',
        });
      }
      if (plain === undefined) {
        plain = mostlyDistinct(columnData, rows);
        const chosen = plain;
        plainText = new Set(columns.filter((c) => c.type === 'string' && chosen.has(c.name)).map((c) => c.name));
      }
      for (const column of columnData) {
        if (!plain.has(column.name)) continue;
        // Min/max of ids or raw lines prune nothing; computing them costs a sixth of the column's time.
        Object.assign(column, { encoding: 'PLAIN', statistics: false });
        if (plainText!.has(column.name)) column.data = utf8Views(column.data);
      }
      await writer.write({ columnData: columnData as never, rowGroupSize: rows });
      events += rows;
      pendingBytes = 0;
    };
    for await (const line of lines(input)) {
      const target = (first ?? builder)!;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) target.add(value as Event);
      else target.addRaw(line);
      pendingBytes += line.length + 1;
      if (pendingBytes >= options.rowGroupBytes || target.rows >= options.rowGroupMaxRows) await flushGroup();
    }
    await flushGroup();
    if (writer === undefined || output === undefined) return { events: 0, bytes: 0 };
    await writer.finish();
    // fsync (not fdatasync): the size must be durable before a rename or link can publish the name.
    await (output as FileHandle).sync();
    const { size } = await (output as FileHandle).stat();
    return { events, bytes: size };
  } finally {
    await input.close().catch(() => {});
    await (output as FileHandle | undefined)?.close().catch(() => {});
  }
}

export type { SchemaElement };
