import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import type { Compressors } from 'hyparquet';
import { type Decompress, zstdDecompressor } from '../../codecs/zstd.ts';
import { lazyImport } from '../../core/lazy-import.ts';

/** The Parquet reader, loaded when a `.parquet` file is found: a run of simulate that sends never loads it. */
const hyparquet = lazyImport(() => import('hyparquet'));
/** The page codecs the file sink writes besides snappy, which the reader has built in. */
const parquetDecompressors = lazyImport(
  async (): Promise<Compressors> => ({
    ZSTD: (await zstdDecompressor()) satisfies Decompress,
    GZIP: (input: Uint8Array) => gunzipSync(input),
  }),
);

/**
 * `fluxo simulate --verify DIR`: reads a file sink's output back (NDJSON or text, gzip by the `.gz` extension,
 * or Parquet by `.parquet`, the default config's master dataset) and checks that every sequence number of a
 * run arrived, and how many arrived more than once. Files whose name starts with `.` are skipped: the file
 * sink writes there until it closes a file and renames it into place. Visible files never change again, so a
 * checker that polls reads each file once.
 */
export interface VerifyReport {
  dir: string;
  run_id: string | undefined;
  files: number;
  unreadable_files: string[];
  /** Lines of this run found (duplicates included). */
  found: number;
  expected: number;
  missing: number;
  /** The first missing numbers, as ranges (`17`, `1001-1050`). */
  missing_sample: string[];
  /** Numbers that arrived more than once (at-least-once delivery allows it; each copy has the same `_id`). */
  duplicated: number;
  duplicated_sample: number[];
}

const SAMPLE = 20;

export class SequenceChecker {
  private counts: Uint8Array;
  private readonly filesRead = new Set<string>();
  private readonly unreadable = new Set<string>();
  private readonly pattern: RegExp;
  private found = 0;
  private maxSeen = 0;

  /** `expected`: the run sent 1..expected (grows the table when undefined). `runId`: only that run's lines. */
  constructor(
    readonly dir: string,
    readonly runId: string | undefined,
    private expected: number | undefined,
  ) {
    this.counts = new Uint8Array((expected ?? 1024) + 1);
    const run = runId === undefined ? '' : `run=${runId.replace(/[^A-Za-z0-9_-]/g, '')}&`;
    // Not followed by a digit: matches the raw line (`…&seq=12 HTTP/1.1`) and a parsed event (`"path":"…&seq=12"`).
    this.pattern = new RegExp(`[?&]${run}seq=(\\d+)(?![0-9])`);
  }

  /** Reads the visible files not read yet. */
  async scan(): Promise<void> {
    for (const file of visibleFiles(this.dir)) {
      if (this.filesRead.has(file)) continue;
      try {
        await (file.endsWith('.parquet') ? this.readParquet(file) : this.readFile(file));
        this.filesRead.add(file);
        this.unreadable.delete(file);
      } catch (error) {
        this.unreadable.add(`${file}: ${(error as Error).message}`);
      }
    }
  }

  report(): VerifyReport {
    const expected = this.expected ?? this.maxSeen;
    const missingSample: string[] = [];
    let missing = 0;
    let runStart = 0;
    for (let n = 1; n <= expected + 1; n++) {
      const absent = n <= expected && (n >= this.counts.length || this.counts[n] === 0);
      if (absent) {
        missing++;
        if (runStart === 0) runStart = n;
      } else if (runStart !== 0) {
        if (missingSample.length < SAMPLE)
          missingSample.push(runStart === n - 1 ? `${runStart}` : `${runStart}-${n - 1}`);
        runStart = 0;
      }
    }
    let duplicated = 0;
    const duplicatedSample: number[] = [];
    for (let n = 1; n < this.counts.length; n++) {
      if (this.counts[n]! > 1) {
        duplicated++;
        if (duplicatedSample.length < SAMPLE) duplicatedSample.push(n);
      }
    }
    return {
      dir: this.dir,
      run_id: this.runId,
      files: this.filesRead.size,
      unreadable_files: [...this.unreadable],
      found: this.found,
      expected,
      missing,
      missing_sample: missingSample,
      duplicated,
      duplicated_sample: duplicatedSample,
    };
  }

  private async readFile(file: string): Promise<void> {
    let stream: Readable = createReadStream(file);
    if (file.endsWith('.gz')) stream = stream.pipe(createGunzip());
    // Count into a copy so that a file failing halfway is not counted twice when read again.
    const seen: number[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('error', reject);
      const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      lines.on('line', (line) => {
        const m = this.pattern.exec(line);
        if (m) seen.push(Number(m[1]));
      });
      lines.on('close', resolve);
    });
    for (const n of seen) this.count(n);
  }

  /**
   * A Parquet file, a row group at a time: the string columns of each row are matched as a line is, and a row
   * counts once, at its first column that matches (an access log's `path` and its raw `message` both hold it).
   */
  private async readParquet(file: string): Promise<void> {
    const parquet = await hyparquet();
    const compressors = await parquetDecompressors();
    const buffer = await parquet.asyncBufferFromFile(file);
    const metadata = await parquet.parquetMetadataAsync(buffer);
    const columns = parquet
      .parquetSchema(metadata)
      .children.filter((c) => c.children.length === 0 && c.element.type === 'BYTE_ARRAY')
      .map((c) => c.element.name);
    const seen: number[] = [];
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const rowEnd = rowStart + Number(group.num_rows);
      const rows = await parquet.parquetReadObjects({ file: buffer, metadata, columns, rowStart, rowEnd, compressors });
      for (const row of rows) {
        for (const column of columns) {
          const value = row[column];
          const m = typeof value === 'string' ? this.pattern.exec(value) : null;
          if (m) {
            seen.push(Number(m[1]));
            break;
          }
        }
      }
      rowStart = rowEnd;
    }
    for (const n of seen) this.count(n);
  }

  private count(n: number): void {
    this.found++;
    if (n > this.maxSeen) this.maxSeen = n;
    if (n >= this.counts.length) {
      if (this.expected !== undefined) return; // another run's numbering; not ours to judge
      const grown = new Uint8Array(Math.max(n + 1, this.counts.length * 2));
      grown.set(this.counts);
      this.counts = grown;
    }
    if (this.counts[n]! < 255) this.counts[n]!++;
  }
}

function visibleFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // not created yet: nothing written so far
      throw error;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      const stat = statSync(p, { throwIfNoEntry: false });
      if (stat?.isDirectory()) walk(p);
      else if (stat?.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}
