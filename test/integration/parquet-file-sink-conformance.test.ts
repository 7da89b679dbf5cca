import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileSink } from '../../src/sinks/file.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';
import { filesUnder, partitionBlockers } from './fixtures/sink-harnesses.ts';

/**
 * The `_id`s of sealed Parquet files, read by DuckDB in a child process: Destination.received() is synchronous.
 * Sealed files are immutable, so each is read once.
 */
const sealedIds = new Map<string, string[]>();
const READ_IDS = `
import { DuckDBInstance } from '@duckdb/node-api';
const c = await (await DuckDBInstance.create(':memory:')).connect();
const out = {};
for (const f of process.argv.slice(1)) {
  const r = await c.runAndReadAll("SELECT _id FROM read_parquet('" + f.replaceAll("'", "''") + "')");
  out[f] = r.getRowObjectsJson().map((row) => row._id);
}
process.stdout.write(JSON.stringify(out));
`;

function readSealed(files: string[]): void {
  const fresh = files.filter((f) => !sealedIds.has(f));
  if (fresh.length === 0) return;
  const text = execFileSync(process.execPath, ['--input-type=module', '-e', READ_IDS, ...fresh], {
    cwd: new URL('../..', import.meta.url).pathname,
    encoding: 'utf8',
  });
  for (const [f, ids] of Object.entries(JSON.parse(text) as Record<string, string[]>)) sealedIds.set(f, ids);
}

/**
 * The Parquet file sink on the local disk: an acknowledged event is in a staging file (NDJSON, fsync'd) or,
 * once it rolled, in a sealed Parquet file; received() reads both. A plain file where a partition's directory
 * must go makes its writes fail, as in the NDJSON harness.
 */
const parquetFileHarness: SinkHarness = {
  definition: fileSink,
  notApplicable: {
    'honours abort': 'an fdatasync cannot be held back or interrupted: a write to a local disk is not stalled',
    'a retried write sends the same bytes, once delivered':
      'a failed write leaves no attempt to compare: it is cut back to its last commit (test/unit/file-sink.test.ts: EBADF, each line once)',
  },
  async destination(_t: TestContext, { down, dataDir }): Promise<Destination> {
    const out = join(dataDir, 'out');
    mkdirSync(out, { recursive: true });
    const blockers = partitionBlockers(out, down);
    return {
      options: {
        path: `${out}/hour=%H/part.parquet`,
        encoding: 'parquet',
        idle_timeout: '0s',
        max_file_age: '0s',
      },
      received: () => {
        const ids: string[] = [];
        const files = filesUnder(out).filter((f) => !blockers.isBlocker(f));
        const sealed = files.filter((f) => f.endsWith('.parquet'));
        readSealed(sealed);
        for (const f of sealed) ids.push(...sealedIds.get(f)!);
        for (const f of files.filter((f) => f.endsWith('.inprogress'))) {
          for (const line of readFileSync(f, 'utf8').split('\n')) {
            if (line !== '') ids.push(String(JSON.parse(line)._id));
          }
        }
        return ids;
      },
      up: blockers.up,
      partial: blockers.partial,
    };
  },
};

sinkConformance(parquetFileHarness);
