import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileSink } from '../../src/sinks/file.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';

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

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
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
    const blocker = join(out, 'hour=03');
    if (down) writeFileSync(blocker, 'not a directory');
    const lateBlocker = join(out, 'hour=04');
    return {
      options: {
        path: `${out}/hour=%H/part.parquet`,
        encoding: 'parquet',
        idle_timeout: '0s',
        max_file_age: '0s',
      },
      received: () => {
        const ids: string[] = [];
        const files = filesUnder(out).filter((f) => f !== blocker && f !== lateBlocker);
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
      up: async () => rmSync(blocker, { force: true }),
      partial: {
        events: Array.from({ length: 6 }, (_, i) => ({
          _id: `p-${1 + i}`,
          message: `partial ${1 + i}`,
          timestamp: new Date(Date.UTC(2026, 11, 2, i < 3 ? 3 : 4, 0, 0, i)).toISOString(),
        })),
        answered: ['p-1', 'p-2', 'p-3'],
        arm: () => {
          writeFileSync(lateBlocker, 'not a directory');
          setTimeout(() => rmSync(lateBlocker, { force: true }), 100).unref();
        },
      },
    };
  },
};

sinkConformance(parquetFileHarness);
