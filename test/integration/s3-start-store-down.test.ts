import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { Event } from '../../src/core/event.ts';
import { fileSinkOptions, fileSinkOptionsShape, stagedFileSink } from '../../src/sinks/file.ts';
import { s3Sink } from '../../src/sinks/s3.ts';
import { tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { type S3Server, startS3Server } from '../helpers/servers/s3.ts';

const s3SinkDefinition = s3Sink({ shape: fileSinkOptionsShape, schema: fileSinkOptions, build: stagedFileSink });
const BUCKET = 'fluxo-master';

function pipeline(t: TestContext, s3: S3Server, dataDir: string, extra: Record<string, unknown>) {
  const sink = {
    type: 's3',
    inputs: ['in'],
    bucket: BUCKET,
    endpoint: s3.endpoint,
    force_path_style: true,
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
    key: 'logs/dt=%Y-%m-%d/part.parquet',
    encoding: 'parquet',
    request_timeout: '2s',
    retry: { initial_backoff: '50ms', max_backoff: '500ms' },
    ...extra,
  };
  const p = testPipeline(stringify({ sources: { in: { type: 'manual' } }, sinks: { out: sink } }), dataDir, [
    s3SinkDefinition,
  ]);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await p.topology.stop(5_000);
  });
  return {
    p,
    stop: (ms: number) => {
      stopped = true;
      return p.topology.stop(ms);
    },
  };
}

const numbered = (from: number, to: number): Event[] =>
  Array.from({ length: to - from + 1 }, (_, k) => ({
    _id: `e-${from + k}`,
    message: `line ${from + k}`,
    timestamp: new Date().toISOString(),
  }));

/** Regular files under the sink's staging directory (`<data_dir>/sinks/<id>/`). */
function stagedFiles(dataDir: string): string[] {
  const root = join(dataDir, 'sinks', 'out');
  try {
    return (readdirSync(root, { recursive: true }) as string[]).filter((n) => statSync(join(root, n)).isFile());
  } catch {
    return [];
  }
}

async function gauge(p: ReturnType<typeof testPipeline>, name: string): Promise<number> {
  const m = p.metrics.registry.getSingleMetric(name);
  let sum = 0;
  for (const v of (await m?.get())?.values ?? []) sum += v.value;
  return sum;
}

describe('s3 sink: the store down at start', { timeout: 180_000 }, () => {
  it('starts and accepts events while the staged files of the last run wait; the store back: every event once', async (t) => {
    const s3 = await startS3Server(t, { buckets: [BUCKET] });
    if (!s3) return;
    const dataDir = tempDir(t);

    // Run 1: events staged with the store up; nothing rolls, then the store dies and the sink stops.
    const first = pipeline(t, s3, dataDir, { max_file_age: '1h', idle_timeout: 0, shutdown_upload_timeout: '300ms' });
    await first.p.topology.start();
    const source1 = first.p.source('in');
    await source1.emit(numbered(1, 100));
    await until(() => source1.acks.length === 1, 'run 1 acknowledged', 30_000);
    assert.deepEqual(source1.acks, ['delivered']);
    await s3.kill9();
    await first.stop(10_000);
    const left = stagedFiles(dataDir);
    assert.ok(left.length > 0, 'run 1 left its staged file (the store was down)');

    // Run 2, store still down: start returns, the staging of run 1 counts, new events are acknowledged.
    const second = pipeline(t, s3, dataDir, { max_file_age: '500ms', shutdown_upload_timeout: '60s' });
    await second.p.topology.start();
    assert.ok(
      (await gauge(second.p, 'fluxo_s3_sink_staged_bytes')) > 0,
      'the staged bytes of run 1 count toward max_staged_size',
    );
    const source2 = second.p.source('in');
    await source2.emit(numbered(101, 150));
    await source2.emit(numbered(151, 200));
    await until(() => source2.acks.length === 2, 'run 2 acknowledged while the store is down', 30_000);
    assert.deepEqual(source2.acks, ['delivered', 'delivered']);
    assert.ok(
      left.every((name) => stagedFiles(dataDir).includes(name)),
      'the files of run 1 wait for the store',
    );

    // The store back: the background uploads finish without a restart.
    await s3.restart();
    await until(() => stagedFiles(dataDir).length === 0, 'the staging emptied by uploads', 60_000);
    assert.equal(await second.stop(60_000), true, 'drained');

    const dir = tempDir(t);
    const keys: string[] = [];
    for (const o of await s3.list(BUCKET, 'logs/')) {
      const path = join(dir, o.key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, await s3.get(BUCKET, o.key));
      keys.push(o.key);
    }
    const stagingIds = keys.map((k) => /part-(.+)-\d+-\d+\.parquet$/.exec(k)?.[1]);
    assert.equal(new Set(stagingIds).size, keys.length, `one object per staging file: ${keys.join(', ')}`);
    const rows = (await duckQuery(
      `SELECT CAST(substr(message, 6) AS INTEGER) AS n, count(*) AS c
       FROM read_parquet(${sqlString(`${dir}/logs/**/*.parquet`)}) GROUP BY 1 ORDER BY 1`,
    )) as { n: number; c: string }[];
    assert.deepEqual(
      rows.map((r) => r.n),
      Array.from({ length: 200 }, (_, k) => k + 1),
      'every event arrived',
    );
    assert.deepEqual(
      rows.filter((r) => Number(r.c) !== 1).map((r) => r.n),
      [],
      'each once',
    );
  });
});
