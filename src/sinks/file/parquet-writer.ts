import { type FileHandle, open } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import type { ParquetWriter } from 'hyparquet-writer';
import type { Event } from '../../core/event.ts';
import { writeFully } from './open-file.ts';
import {
  type ColumnSpec,
  inferColumns,
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

type Compressor = (input: Uint8Array) => Uint8Array;
/** zstd level 3: zstd's and DuckDB's default, the one the writer benchmark measured. */
const ZSTD_LEVEL = 3;
let zstd: Promise<Compressor> | undefined;

/** node:zlib's zstd where Node has it (≥ 22.15), else the WebAssembly build (Node 20). Loaded once. */
function zstdCompressor(): Promise<Compressor> {
  zstd ??= (async () => {
    const native = (zlib as unknown as Record<string, unknown>).zstdCompressSync as
      | ((b: Uint8Array, o: object) => Buffer)
      | undefined;
    if (native !== undefined) {
      const level = {
        params: { [(zlib.constants as unknown as Record<string, number>).ZSTD_c_compressionLevel!]: ZSTD_LEVEL },
      };
      return (input: Uint8Array) => native(input, level);
    }
    const wasm = await import('@bokuweb/zstd-wasm');
    await wasm.init();
    return (input: Uint8Array) => wasm.compress(input, ZSTD_LEVEL);
  })();
  return zstd;
}

const CODEC = { zstd: 'ZSTD', snappy: 'SNAPPY', gzip: 'GZIP', none: 'UNCOMPRESSED' } as const;

async function compressors(compression: ParquetCompression): Promise<Record<string, Compressor>> {
  if (compression === 'zstd') return { ZSTD: await zstdCompressor() };
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

export interface WrittenParquet {
  readonly events: number;
  readonly bytes: number;
}

/** Yields the lines of an NDJSON file (without their `\n`), reading it in 1 MiB pieces. */
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
    let start = 0;
    for (let nl = data.indexOf(0x0a, start); nl >= 0; nl = data.indexOf(0x0a, start)) {
      if (nl > start) yield data.toString('utf8', start, nl);
      start = nl + 1;
    }
    if (start < data.length) carry = Buffer.from(data.subarray(start));
  }
  // A line without its `\n` was torn by a crash before it was acknowledged; recovery cuts it off first.
}

/**
 * Writes the NDJSON staging file `stagingPath` as one Parquet file at `outPath` (created or replaced), fsync'd.
 * Row groups hold about `rowGroupBytes` of staged lines. In `infer` mode the columns come from the first row
 * group's events; later values that fit no column go to `_extra`. Returns the events written and the size.
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
    let builder: RowGroupBuilder | undefined;
    let pending: (Event | string)[] = [];
    let pendingBytes = 0;
    let events = 0;
    const codecs = await compressors(options.compression);
    const lib = await loadLibrary();
    let plain: Set<string> | undefined;
    const flushGroup = async () => {
      if (pending.length === 0) return;
      if (writer === undefined) {
        const columns =
          options.mode === 'infer'
            ? inferColumns(
                options.columns,
                pending.filter((e): e is Event => typeof e !== 'string'),
              )
            : [...options.columns];
        builder = new RowGroupBuilder(columns);
        output = await open(outPath, 'w');
        writer = new lib.ParquetWriter({
          writer: fileHandleWriter(lib, output),
          schema: parquetSchema(columns) as never,
          codec: CODEC[options.compression],
          compressors: codecs,
          createdBy: 'fluxo (hyparquet-writer)',
        });
      }
      for (const item of pending) {
        if (typeof item === 'string') builder!.addRaw(item);
        else builder!.add(item);
      }
      const rows = builder!.rows;
      const columnData = builder!.take();
      plain ??= mostlyDistinct(columnData, rows);
      for (const column of columnData) {
        if (!plain.has(column.name)) continue;
        // Min/max of ids or raw lines prune nothing; computing them costs a sixth of the column's time.
        Object.assign(column, { encoding: 'PLAIN', statistics: false });
      }
      await writer.write({ columnData: columnData as never, rowGroupSize: rows });
      events += rows;
      pending = [];
      pendingBytes = 0;
    };
    for await (const line of lines(input)) {
      let parsed: Event | string;
      try {
        const value: unknown = JSON.parse(line);
        parsed = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Event) : line;
      } catch {
        parsed = line;
      }
      pending.push(parsed);
      pendingBytes += line.length + 1;
      if (pendingBytes >= options.rowGroupBytes || pending.length >= options.rowGroupMaxRows) await flushGroup();
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
