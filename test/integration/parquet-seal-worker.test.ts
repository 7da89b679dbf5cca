import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalCommitter } from '../../src/sinks/file/commit.ts';
import type { StagedFile } from '../../src/sinks/file/open-file.ts';
import { declaredColumns } from '../../src/sinks/file/parquet-schema.ts';
import { type ParquetFileOptions, writeParquetFile } from '../../src/sinks/file/parquet-writer.ts';
import { SealThread, sealThread } from '../../src/sinks/file/seal-thread.ts';
import { Sealer } from '../../src/sinks/file/sealer.ts';
import { type FileSink, fileSink } from '../../src/sinks/file.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { until } from '../helpers/pipeline.ts';
import { driven } from '../helpers/sink-driver.ts';

/*
 * The Parquet seal runs in a worker thread (src/sinks/file/seal-thread.ts): the event loop keeps turning while
 * a big file is encoded, and a thread that dies mid-seal costs a retry, never the staging file or the process.
 */

const OWNER = '0badcafe';
const signal = new AbortController().signal;
const options: ParquetFileOptions = {
  columns: declaredColumns(undefined, []),
  mode: 'infer',
  compression: 'zstd',
  rowGroupBytes: 32 * 1024 * 1024,
  rowGroupMaxRows: 1_000_000,
};

function eventLine(n: number): string {
  return JSON.stringify({
    _id: `id-${n}`,
    timestamp: new Date(Date.UTC(2026, 11, 2) + n).toISOString(),
    message: `10.0.${n % 256}.${n % 7} - - "GET /item/${n}?q=${(n * 7919) % 100_003} HTTP/1.1" 200 ${n % 5000}`,
    host: 'web-1',
    status: 200 + (n % 4),
    bytes: n % 5000,
    n,
  });
}

/** A staging file as the file sink leaves it when it rolls: `events` NDJSON lines, `extra` lines spliced in. */
function stage(dir: string, events: number, extra: Record<number, string> = {}): StagedFile {
  const finalPath = join(dir, 'part-0001.parquet');
  const path = join(dir, `.part-0001.parquet.${OWNER}.inprogress`);
  const lines: string[] = [];
  for (let n = 1; n <= events; n++) {
    if (extra[n] !== undefined) lines.push(extra[n]!);
    lines.push(eventLine(n));
  }
  const text = `${lines.join('\n')}\n`;
  writeFileSync(path, text);
  return { path, finalPath, bytes: Buffer.byteLength(text), events: lines.length };
}

function sealer(dir: string, thread: SealThread): Sealer {
  return new Sealer({
    root: dir,
    committer: new LocalCommitter(dir),
    parquet: options,
    gzip: false,
    format: 'parquet',
    owner: OWNER,
    thread,
  });
}

/** Timer callbacks that ran while `work` was in progress, and the longest time between two of them. */
async function loopTurns(work: () => Promise<unknown>): Promise<{ turns: number; longestGap: number; spent: number }> {
  let turns = 0;
  let longestGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
    turns++;
  }, 2);
  const t0 = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const end = performance.now();
  longestGap = Math.max(longestGap, end - last);
  return { turns, longestGap, spent: end - t0 };
}

async function parquetRows(dir: string): Promise<Record<string, unknown>[]> {
  return duckQuery(
    `SELECT n, _id, status, _extra FROM read_parquet(${sqlString(join(dir, '*.parquet'))}) ORDER BY n NULLS LAST`,
  );
}

describe('parquet seal in a worker thread', () => {
  it('a Parquet sink starts the seal thread when it opens a staging file, not when built', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const sink = fileSink.build(
      fileSink.options.parse({ path: join(out, 'part.parquet'), encoding: 'parquet' }),
      componentContext('master', join(dir, 'data'), 'sink', 'file'),
    ) as FileSink;
    t.after(() => sink.stop().catch(() => {}));
    await sink.start();
    assert.equal(sealThread.running, false, 'an agent that has received nothing runs no seal thread');
    await driven(sink).write([{ _id: 'e1', message: 'first', timestamp: '2026-12-03T08:00:00.000Z' }], signal);
    assert.equal(sealThread.running, true, 'the first staging file starts it, ahead of its seal');
    await sink.stop();
    assert.equal(readdirSync(out).filter((n) => n.endsWith('.parquet')).length, 1, 'sealed at stop');
  });

  it('keeps the event loop turning during a big seal, which blocks it when done inline', async (t) => {
    const events = 40_000;
    const dir = tempDir(t);
    const thread = new SealThread(50);
    const staged = stage(dir, events);
    const inWorker = await loopTurns(() => sealer(dir, thread).finish(staged, new AbortController().signal));
    const rows = await parquetRows(dir);
    assert.equal(rows.length, events);
    assert.equal(existsSync(staged.path), false, 'the staging file goes once the seal is committed');

    // The same seal on this thread: one synchronous row group encode holds the loop for most of it.
    const inline = await loopTurns(() => writeParquetFile(stage(dir, events).path, join(dir, 'inline.tmp'), options));
    assert.ok(
      // One row group's encode is a single synchronous block: a quarter of the seal on a cold JIT, a fifth on a
      // warm one (CI: 128 of 524 ms), far above the worker's few milliseconds.
      inline.longestGap > inline.spent / 8,
      `inline: longest gap ${inline.longestGap.toFixed(0)} of ${inline.spent.toFixed(0)} (the comparison must be able to fail)`,
    );
    assert.ok(inWorker.turns >= 20, `only ${inWorker.turns} timer turns during the seal`);
    assert.ok(
      inWorker.longestGap < inWorker.spent / 5 && inWorker.longestGap < inline.longestGap / 2,
      `worker: longest gap ${inWorker.longestGap.toFixed(0)} of ${inWorker.spent.toFixed(0)}; inline ${inline.longestGap.toFixed(0)}`,
    );
    // Idle, the thread ends by itself (and it never kept this test's process alive meanwhile).
    await until(() => !thread.running, 'the idle seal thread to end', 30_000);
  });

  it('redoes a seal whose thread died in a new thread: same file, every event', async (t) => {
    const events = 5_000;
    const dir = tempDir(t);
    const thread = new SealThread(50);
    let killed = 0;
    thread.on('sealing', () => {
      if (killed++ === 0) void thread.terminate();
    });
    const staged = stage(dir, events);
    const sealed = await sealer(dir, thread).finish(staged, new AbortController().signal);
    assert.equal(thread.started, 2, 'a second thread sealed it');
    assert.equal(sealed?.events, events);
    assert.equal(sealed?.name, `part-0001-1-${events}.parquet`);
    const rows = await parquetRows(dir);
    assert.equal(rows.length, events);
    assert.deepEqual(
      rows.map((r) => Number(r.n)),
      Array.from({ length: events }, (_, i) => i + 1),
    );
    assert.deepEqual(readdirSync(dir), [`part-0001-1-${events}.parquet`], 'no staging or temporary file left');
  });

  it('a thread that keeps dying fails the seal with a clear error and keeps the staging file', async (t) => {
    const dir = tempDir(t);
    const thread = new SealThread(50);
    thread.on('sealing', () => void thread.terminate());
    const staged = stage(dir, 2_000);
    await assert.rejects(sealer(dir, thread).finish(staged, new AbortController().signal), (error: Error) => {
      assert.equal((error as { code?: string }).code, 'FLUXO_PARQUET_SEAL_WORKER_EXITED');
      assert.match(error.message, /seal thread ended while sealing .*inprogress.*the staging file is kept/);
      return true;
    });
    assert.equal(thread.started, 3, 'tried in three threads');
    assert.deepEqual(readdirSync(dir), [`.part-0001.parquet.${OWNER}.inprogress`], 'only the staging file is left');
    // Once the thread stops dying, the same staging file seals (as the sink's recovery would do).
    thread.removeAllListeners('sealing');
    const sealed = await sealer(dir, thread).finish(staged, new AbortController().signal);
    assert.equal(sealed?.events, 2_000);
    assert.equal((await parquetRows(dir)).length, 2_000);
  });

  it('a corrupt staging line is kept in _extra._raw, counted, and does not stop the seal', async (t) => {
    const dir = tempDir(t);
    const thread = new SealThread(50);
    const garbage = '{"_id": "torn-1", "message": "half a li';
    const staged = stage(dir, 3_000, { 1500: garbage, 2999: '[1,2,3]' });
    const sealed = await sealer(dir, thread).finish(staged, new AbortController().signal);
    assert.equal(sealed?.events, 3_002, 'every staged line is a row');
    const rows = await parquetRows(dir);
    assert.equal(rows.length, 3_002);
    const raw = rows.filter((r) => r.n === null).map((r) => JSON.parse(String(r._extra))._raw);
    assert.deepEqual(raw.sort(), [garbage, '[1,2,3]'].sort());
    assert.equal(thread.started, 1);
  });
});
