import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SequenceChecker } from '../../src/cli/simulate/verify.ts';
import { declaredColumns } from '../../src/sinks/file/parquet-schema.ts';
import { type ParquetCompression, writeParquetFile } from '../../src/sinks/file/parquet-writer.ts';
import { tempDir } from '../helpers/context.ts';

/*
 * `fluxo simulate --verify` reads back what the file sink wrote: NDJSON lines, and Parquet files (the default
 * config's master dataset) in every page codec the sink writes.
 */

/** An access-log event as the default config's parse leaves it: the number in `path` and in the raw `message`. */
function event(run: string, n: number): string {
  const path = `/sim/item?run=${run}&seq=${n}`;
  return JSON.stringify({
    _id: `${run}:${n}`,
    timestamp: new Date(Date.UTC(2026, 11, 3) + n).toISOString(),
    message: `10.0.0.1 - - [03/Dec/2026:06:00:00 +0000] "GET ${path} HTTP/1.1" 200 512`,
    path,
    status: 200,
  });
}

/** Writes `numbers` as one Parquet file through the file sink's own writer (staging NDJSON → sealed file). */
async function parquetFile(
  dir: string,
  name: string,
  numbers: number[],
  compression: ParquetCompression,
  run = 'r1',
  rowGroupMaxRows = 1_000,
): Promise<string> {
  const staging = join(dir, `${name}.staging`).replace(/([^/]+)$/, '.$1');
  writeFileSync(staging, `${numbers.map((n) => event(run, n)).join('\n')}\n`);
  const out = join(dir, name);
  const written = await writeParquetFile(staging, out, {
    columns: declaredColumns(undefined, []),
    mode: 'infer',
    compression,
    rowGroupBytes: 32 * 1024 * 1024,
    rowGroupMaxRows,
  });
  assert.equal(written.events, numbers.length);
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('simulate --verify', () => {
  for (const compression of ['zstd', 'snappy', 'gzip', 'none'] as const) {
    it(`counts a run's numbers in Parquet files (${compression}), several row groups, duplicates and gaps`, async (t) => {
      const dir = tempDir(t);
      mkdirSync(join(dir, 'dt=2026-12-03', 'hour=06'), { recursive: true });
      // 1..2500 except 1001-1010, with 7 and 2000 twice; row groups of 1,000 rows.
      await parquetFile(dir, 'dt=2026-12-03/hour=06/a.parquet', range(1, 1000), compression);
      await parquetFile(dir, 'dt=2026-12-03/hour=06/b.parquet', [...range(1011, 2500), 7, 2000], compression);
      // Another run's lines in the same dataset are not counted.
      await parquetFile(dir, 'dt=2026-12-03/hour=06/other.parquet', range(1001, 1010), compression, 'r2');
      const checker = new SequenceChecker(dir, 'r1', 2500);
      await checker.scan();
      const report = checker.report();
      assert.deepEqual(report.unreadable_files, []);
      assert.equal(report.files, 3);
      assert.equal(report.found, 2492);
      assert.equal(report.missing, 10);
      assert.deepEqual(report.missing_sample, ['1001-1010']);
      assert.equal(report.duplicated, 2);
      assert.deepEqual(report.duplicated_sample, [7, 2000]);
    });
  }

  it('Parquet and NDJSON side by side; a file that is not Parquet is named unreadable with the reason', async (t) => {
    const dir = tempDir(t);
    await parquetFile(dir, 'part-1.parquet', range(1, 50), 'zstd');
    writeFileSync(
      join(dir, 'part-2.ndjson'),
      `${range(51, 100)
        .map((n) => event('r1', n))
        .join('\n')}\n`,
    );
    writeFileSync(join(dir, 'broken.parquet'), 'not a parquet file\n');
    const checker = new SequenceChecker(dir, 'r1', 100);
    await checker.scan();
    const report = checker.report();
    assert.equal(report.missing, 0);
    assert.equal(report.found, 100);
    assert.equal(report.unreadable_files.length, 1);
    assert.match(report.unreadable_files[0]!, /broken\.parquet: .+/);
  });
});
