import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { AckStatus } from '../../src/core/ack.ts';
import { fileSinkOptions, fileSinkOptionsShape, stagedFileSink } from '../../src/sinks/file.ts';
import { s3Sink } from '../../src/sinks/s3.ts';
import { socketSource } from '../../src/sources/socket.ts';
import { tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { type S3Server, startS3Server } from '../helpers/servers/s3.ts';
import { sendNumberedLines } from '../helpers/tcp-senders.ts';

const s3SinkDefinition = s3Sink({ shape: fileSinkOptionsShape, schema: fileSinkOptions, build: stagedFileSink });
const BUCKET = 'fluxo-master';

function sinkOptions(s3: S3Server, extra: Record<string, unknown> = {}) {
  return {
    type: 's3',
    bucket: BUCKET,
    endpoint: s3.endpoint,
    force_path_style: true,
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
    key: 'logs/dt=%Y-%m-%d/hour=%H/part.parquet',
    encoding: 'parquet',
    max_file_age: '1s',
    idle_timeout: '300ms',
    retry: { initial_backoff: '50ms', max_backoff: '500ms' },
    ...extra,
  };
}

/** Downloads every object under `prefix` into `dir` (keys kept as paths), for DuckDB. */
async function download(s3: S3Server, prefix: string, dir: string): Promise<string[]> {
  const keys: string[] = [];
  for (const o of await s3.list(BUCKET, prefix)) {
    const path = join(dir, o.key);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, await s3.get(BUCKET, o.key));
    keys.push(o.key);
  }
  return keys;
}

/** Numbers from `line <n>` messages: how often each is in the Parquet objects, against 1..total. */
async function checkNumbers(dir: string, total: number) {
  const rows = (await duckQuery(
    `SELECT CAST(substr(message, 6) AS INTEGER) AS n, count(*) AS c, min(dt) AS dt, min(hour) AS hour
     FROM read_parquet(${sqlString(`${dir}/logs/**/*.parquet`)}, hive_partitioning = true) GROUP BY 1`,
  )) as { n: number; c: string; dt: string; hour: string }[];
  const counts = new Map(rows.map((r) => [r.n, Number(r.c)]));
  const missing: number[] = [];
  for (let n = 1; n <= total; n++) if (!counts.has(n)) missing.push(n);
  return { missing, twice: rows.filter((r) => Number(r.c) > 1).map((r) => r.n), rows };
}

/** Objects whose keys share a staging id (the same staging file uploaded twice, under two ranges). */
function sameStaging(keys: string[]): string[] {
  const seen = new Map<string, string>();
  const twice: string[] = [];
  for (const key of keys) {
    const m = /part-(.+)-\d+-\d+\.parquet$/.exec(key);
    assert.ok(m, `a sealed object name: ${key}`);
    const previous = seen.get(m[1]!);
    if (previous !== undefined) twice.push(`${previous} / ${key}`);
    seen.set(m[1]!, key);
  }
  return twice;
}

async function sentBy(p: ReturnType<typeof testPipeline>, id: string): Promise<number> {
  const m = p.metrics.registry.getSingleMetric('fluxo_component_sent_events_total');
  let sum = 0;
  for (const v of (await m!.get()).values) if (v.labels.component_id === id) sum += v.value;
  return sum;
}

async function startPipeline(t: TestContext, s3: S3Server, sources: object, extra: Record<string, unknown> = {}) {
  const config = { sources, sinks: { out: { inputs: Object.keys(sources), ...sinkOptions(s3, extra) } } };
  const p = testPipeline(stringify(config), tempDir(t), [socketSource, s3SinkDefinition]);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await p.topology.stop(5_000);
  });
  await p.topology.start();
  return {
    p,
    stop: async () => {
      stopped = true;
      return p.topology.stop(60_000);
    },
  };
}

describe('s3 sink', { timeout: 300_000 }, () => {
  it('300 connections × 20 numbered lines → Parquet objects, hive-partitioned: DuckDB finds every number once', async (t) => {
    const s3 = await startS3Server(t, { buckets: [BUCKET] });
    if (!s3) return;
    const { p, stop } = await startPipeline(t, s3, { tcp: { type: 'socket', mode: 'tcp', address: '127.0.0.1:0' } });
    const endpoint = p.topology.describe().sources[0]!.endpoint!;
    const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
    const total = 300 * 20;
    await sendNumberedLines(port, { connections: 300, total });
    // Every line staged (acknowledged by the sink); stop() seals and uploads what is still open.
    for (let staged = 0; staged < total; staged = await sentBy(p, 'out')) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await stop(), true, 'drained');
    const dir = tempDir(t);
    const keys = await download(s3, 'logs/', dir);
    assert.ok(keys.length > 0);
    for (const key of keys) assert.match(key, /^logs\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/part-.+-1-\d+\.parquet$/);
    assert.deepEqual(sameStaging(keys), []);
    const { missing, twice, rows } = await checkNumbers(dir, total);
    assert.deepEqual({ missing: missing.slice(0, 10), twice: twice.slice(0, 10) }, { missing: [], twice: [] });
    assert.match(String(rows[0]!.dt), /^\d{4}-\d{2}-\d{2}$/, 'the dt partition column');
  });

  it('the store down for 30 s mid-upload: writes keep being acknowledged, then nothing lost or duplicated', async (t) => {
    const s3 = await startS3Server(t, { buckets: [BUCKET] });
    if (!s3) return;
    const { p, stop } = await startPipeline(
      t,
      s3,
      { in: { type: 'manual' } },
      { max_file_age: '500ms', shutdown_upload_timeout: '60s' },
    );
    const source = p.source('in');
    const statuses: (AckStatus | undefined)[] = [];
    let n = 0;
    const emit = (count: number) => {
      const events = Array.from({ length: count }, () => {
        n++;
        return { _id: `e-${n}`, message: `line ${n}`, timestamp: new Date().toISOString() };
      });
      const at = statuses.push(undefined) - 1;
      void source.ctx!.emit(events, {
        onSettled: (status) => {
          statuses[at] = status;
        },
      });
    };
    const settled = () => statuses.filter((s) => s === 'delivered').length;
    // Uploads under way: objects appear.
    for (let i = 0; i < 20; i++) {
      emit(200);
      await new Promise((r) => setTimeout(r, 50));
    }
    await until(() => settled() === statuses.length, 'the first batches acknowledged', 30_000);
    await s3.kill9();
    const downAt = Date.now();
    const before = statuses.length;
    // While the store is down, every batch is still acknowledged (staged and fsync'd, under max_staged_size).
    while (Date.now() - downAt < 30_000) {
      emit(200);
      await new Promise((r) => setTimeout(r, 200));
    }
    await until(() => settled() === statuses.length, 'the batches of the outage acknowledged', 10_000);
    assert.ok(statuses.length - before >= 100, 'the source kept going during the outage');
    await s3.restart();
    assert.equal(await stop(), true, 'drained');
    assert.ok(statuses.every((s) => s === 'delivered'));
    const dir = tempDir(t);
    const keys = await download(s3, 'logs/', dir);
    assert.deepEqual(sameStaging(keys), [], 'no staging file uploaded under two names');
    const { missing, twice } = await checkNumbers(dir, n);
    assert.deepEqual({ missing: missing.slice(0, 10), twice: twice.slice(0, 10) }, { missing: [], twice: [] });
  });
});
