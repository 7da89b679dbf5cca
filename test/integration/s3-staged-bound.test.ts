import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { Event } from '../../src/core/event.ts';
import { fileSinkOptions, fileSinkOptionsShape, stagedFileSink } from '../../src/sinks/file.ts';
import { s3Sink } from '../../src/sinks/s3.ts';
import { recordingLogger, tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { startS3Server } from '../helpers/servers/s3.ts';

const s3SinkDefinition = s3Sink({ shape: fileSinkOptionsShape, schema: fileSinkOptions, build: stagedFileSink });
const BUCKET = 'fluxo-master';
const MAX_STAGED = 256 * 1024;
const FILE_SIZE = 32 * 1024;
const BATCH = 50;
const BATCHES = 120;
/** ~250 bytes per event: 120 batches of 50 are about 1.5 MiB, six times the bound. */
const PAD = 'x'.repeat(180);

/** Bytes of the regular files under `root` (staging files and sealed files waiting for their upload). */
function bytesUnder(root: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(root, { recursive: true }) as string[];
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      const s = statSync(join(root, name));
      if (s.isFile()) total += s.size;
    } catch {
      // uploaded and removed meanwhile
    }
  }
  return total;
}

describe('s3 sink: max_staged_size', { timeout: 240_000 }, () => {
  it('the store down: the staging fills to the bound, then the source is pushed back; the store back: all arrive once', async (t) => {
    const s3 = await startS3Server(t, { buckets: [BUCKET] });
    if (!s3) return;
    await s3.kill9();
    const dataDir = tempDir(t);
    const { logger, lines } = recordingLogger('info');
    const config = {
      sources: { in: { type: 'manual' } },
      sinks: {
        out: {
          type: 's3',
          inputs: ['in'],
          bucket: BUCKET,
          endpoint: s3.endpoint,
          force_path_style: true,
          access_key_id: s3.accessKeyId,
          secret_access_key: s3.secretAccessKey,
          key: 'logs/dt=%Y-%m-%d/part.parquet',
          encoding: 'parquet',
          max_staged_size: `${MAX_STAGED / 1024}KiB`,
          max_file_size: `${FILE_SIZE / 1024}KiB`,
          max_file_age: '1h',
          idle_timeout: 0,
          request_timeout: '2s',
          shutdown_upload_timeout: '60s',
          batch: { max_events: BATCH },
          buffer: { type: 'memory', max_events: 2 * BATCH },
        },
      },
    };
    const p = testPipeline(stringify(config), dataDir, [s3SinkDefinition], logger);
    let stopped = false;
    t.after(async () => {
      if (!stopped) await p.topology.stop(5_000);
    });
    await p.topology.start();
    const root = join(dataDir, 'sinks', 'out');
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, bytesUnder(root));
    }, 5);
    t.after(() => clearInterval(sampler));

    const source = p.source('in');
    let accepted = 0;
    let n = 0;
    const batchBytes: number[] = [];
    const emitting = (async () => {
      for (let b = 0; b < BATCHES; b++) {
        const events: Event[] = Array.from({ length: BATCH }, () => {
          n++;
          return { _id: `e-${n}`, message: `line ${n} ${PAD}`, timestamp: new Date().toISOString() };
        });
        batchBytes.push(events.reduce((sum, e) => sum + JSON.stringify(e).length + 1, 0));
        await source.emit(events);
        accepted++;
      }
    })();

    await until(
      () => lines.some((l) => String(l.msg).includes('staging is full')) && bytesUnder(root) >= MAX_STAGED,
      'the sink says its staging is full, and it is',
      60_000,
    );
    // Pushed back: the emits stop being accepted and acknowledged while the store stays down, across several
    // of the sink's re-measures of its staging (one a second while it waits).
    const acked = source.acks.length;
    const acceptedThen = accepted;
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(source.acks.length, acked, 'nothing more acknowledged while the staging is full');
    assert.equal(accepted, acceptedThen, 'emit waits');
    assert.ok(accepted < BATCHES, `the source is held back (${accepted} of ${BATCHES} batches accepted)`);
    assert.ok(acked < BATCHES, `${acked} of ${BATCHES} batches acknowledged`);
    // Past the bound by one write and the one file it may have rolled (its staging and its sealed copy) at most.
    const slack = Math.max(...batchBytes) + 2 * (FILE_SIZE + Math.max(...batchBytes));
    assert.ok(most >= MAX_STAGED, `the staging reached the bound (${most} bytes)`);
    assert.ok(most <= MAX_STAGED + slack, `staging ${most} bytes ≤ ${MAX_STAGED} + ${slack}`);

    await s3.restart();
    await emitting;
    await until(() => source.acks.length === BATCHES, 'every batch acknowledged once the store is back', 120_000);
    assert.ok(
      source.acks.every((s) => s === 'delivered'),
      'all delivered',
    );
    stopped = true;
    assert.equal(await p.topology.stop(60_000), true, 'drained');
    clearInterval(sampler);
    assert.ok(most <= MAX_STAGED + slack, `staging stayed within the bound after the store came back (${most})`);

    const dir = tempDir(t);
    for (const o of await s3.list(BUCKET, 'logs/')) {
      const path = join(dir, o.key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, await s3.get(BUCKET, o.key));
    }
    const rows = (await duckQuery(
      `SELECT count(*) AS c, count(DISTINCT _id) AS d FROM read_parquet(${sqlString(`${dir}/logs/**/*.parquet`)})`,
    )) as { c: string; d: string }[];
    assert.deepEqual(
      { events: Number(rows[0]!.c), distinct: Number(rows[0]!.d) },
      { events: n, distinct: n },
      'every event once',
    );
  });
});
