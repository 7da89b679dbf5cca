import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { type FileSink, fileSink } from '../../src/sinks/file.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { driven } from '../helpers/sink-driver.ts';

const signal = new AbortController().signal;
const EVENTS = 200;

function setup(t: TestContext, encoding: 'ndjson' | 'parquet') {
  const dir = tempDir(t);
  const out = join(dir, 'out');
  const ctx = componentContext('master', join(dir, 'data'), 'sink', 'file');
  const parsed = fileSink.options.parse({
    path: join(out, `part.${encoding}`),
    encoding,
    // The file closes on its own, idle, while the test holds its commit back.
    idle_timeout: '500ms',
    max_file_age: 0,
  });
  const sink = fileSink.build(parsed, ctx) as FileSink;
  let stopped = false;
  t.after(() => (stopped ? undefined : sink.stop().catch(() => {})));
  return {
    out,
    sink,
    stop: () => {
      stopped = true;
      return sink.stop();
    },
    metric: async (name: string): Promise<number> => {
      const m = ctx.pipelineMetrics.registry.getSingleMetric(name);
      let sum = 0;
      for (const v of (await m?.get())?.values ?? []) sum += v.value;
      return sum;
    },
  };
}

async function eventually(check: () => Promise<boolean> | boolean, what: string, maxMs = 30_000): Promise<void> {
  const end = Date.now() + maxMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const events = (): Event[] =>
  Array.from({ length: EVENTS }, (_, k) => ({
    _id: `e${k + 1}`,
    message: `line ${k + 1}`,
    timestamp: '2026-11-24T07:45:01.123Z',
  }));

const stagingFiles = (out: string) => readdirSync(out).filter((n) => n.endsWith('.inprogress'));
const visibleFiles = (out: string) => readdirSync(out).filter((n) => !n.startsWith('.'));

/**
 * A real failure of the commit: a directory sits where the file must be renamed to (rename(2) gives EISDIR).
 * The staging file's name says which final name it commits to: `.part-<time>-<id>.<ext>.<owner>.inprogress`.
 */
function blockCommit(out: string, encoding: 'ndjson' | 'parquet'): string {
  const [staging] = stagingFiles(out);
  assert.ok(staging, 'a staging file is open');
  const final = /^\.(.+)\.[0-9a-f]{8}\.inprogress$/.exec(staging)![1]!;
  const target = encoding === 'parquet' ? final.replace(/\.parquet$/, `-1-${EVENTS}.parquet`) : final;
  const blocker = join(out, target);
  mkdirSync(blocker);
  writeFileSync(join(blocker, 'in-the-way'), 'x');
  return blocker;
}

/** A file of `events()` whose commit is blocked, through a sink stopped while still blocked; the blocker. */
async function blockedThroughStop(t: TestContext, encoding: 'ndjson' | 'parquet') {
  const { out, sink, stop, metric } = setup(t, encoding);
  await sink.start();
  await driven(sink).write(events(), signal);
  const blocker = blockCommit(out, encoding);
  await eventually(async () => (await metric('fluxo_file_sink_close_retries_total')) >= 1, 'a retry');
  await assert.rejects(stop(), { code: 'FLUXO_FILE_SINK_CLOSE_FAILED' });
  return { out, blocker };
}

/** The next start's sink: same data_dir and id → same owner, so it adopts the staging file. */
function nextSink(out: string, encoding: 'ndjson' | 'parquet') {
  const ctx = componentContext('master', join(out, '..', 'data'), 'sink', 'file');
  const sink = fileSink.build(
    fileSink.options.parse({ path: join(out, `part.${encoding}`), encoding, idle_timeout: '500ms' }),
    ctx,
  ) as FileSink;
  const metric = async (name: string) => {
    let sum = 0;
    for (const v of (await ctx.pipelineMetrics.registry.getSingleMetric(name)?.get())?.values ?? []) sum += v.value;
    return sum;
  };
  return { sink, metric };
}

for (const encoding of ['ndjson', 'parquet'] as const) {
  describe(`file sink (${encoding}): a file that failed to close`, { timeout: 120_000 }, () => {
    it('is tried again in the running process until its commit succeeds: it appears, nothing lost, one file', async (t) => {
      const { out, sink, stop, metric } = setup(t, encoding);
      await sink.start();
      await driven(sink).write(events(), signal);
      const blocker = blockCommit(out, encoding);

      // The idle close fails, then its retries fail, while the way stays blocked; the staging keeps the events.
      await eventually(async () => (await metric('fluxo_file_sink_close_retries_total')) >= 3, 'three retries');
      assert.equal(await metric('fluxo_file_sink_close_pending_files'), 1, 'one file waits for its commit');
      assert.ok((await metric('fluxo_component_errors_total')) >= 1, 'the close failure is counted');
      assert.equal(stagingFiles(out).length, 1, 'the staging file is kept');
      assert.deepEqual(visibleFiles(out), [blocker.slice(out.length + 1)], 'nothing committed yet');

      // Repaired: the file appears without a restart.
      rmSync(blocker, { recursive: true });
      await eventually(() => visibleFiles(out).length === 1, 'the file committed after the repair');
      await eventually(async () => (await metric('fluxo_file_sink_close_pending_files')) === 0, 'no file pending');
      assert.deepEqual(stagingFiles(out), [], 'the staging file is gone once committed');
      assert.equal(await metric('fluxo_file_sink_files_closed_total'), 1);

      const [name] = visibleFiles(out);
      let numbers: number[];
      if (encoding === 'parquet') {
        assert.match(name!, new RegExp(`^part-.+-1-${EVENTS}\\.parquet$`));
        const rows = await duckQuery(
          `SELECT CAST(substr(message, 6) AS INTEGER) AS n FROM read_parquet(${sqlString(join(out, name!))})`,
        );
        numbers = rows.map((r) => Number(r.n));
      } else {
        numbers = readFileSync(join(out, name!), 'utf8')
          .trimEnd()
          .split('\n')
          .map((l) => Number(String(JSON.parse(l).message).slice(5)));
      }
      assert.deepEqual(
        numbers.sort((a, b) => a - b),
        Array.from({ length: EVENTS }, (_, k) => k + 1),
        'every event once',
      );
      await stop();
      assert.deepEqual(readdirSync(out), [name], 'stop adds nothing: no second copy, no leftover');
    });

    it('still blocked at stop: stop ends the retries, reports it, and the next start commits it', async (t) => {
      const { out, blocker } = await blockedThroughStop(t, encoding);
      assert.equal(stagingFiles(out).length, 1, 'the staging file is kept for the next start');

      rmSync(blocker, { recursive: true });
      const { sink: again } = nextSink(out, encoding);
      await again.start();
      await again.stop();
      assert.deepEqual(stagingFiles(out), []);
      assert.equal(visibleFiles(out).length, 1, 'committed once');
    });

    it('still blocked at the next start: its recovery is tried again in that process until the way is clear', async (t) => {
      const { out, blocker } = await blockedThroughStop(t, encoding);

      // The next start cannot finish it either; it starts all the same, and keeps trying in the background.
      const { sink: again, metric: againMetric } = nextSink(out, encoding);
      let againStopped = false;
      t.after(() => (againStopped ? undefined : again.stop().catch(() => {})));
      await again.start();
      assert.equal(stagingFiles(out).length, 1, 'still staged after the start');
      await eventually(async () => (await againMetric('fluxo_file_sink_close_retries_total')) >= 2, 'retries');
      assert.equal(await againMetric('fluxo_file_sink_close_pending_files'), 1);

      rmSync(blocker, { recursive: true });
      // The retry loop ends (the gauge drops) only after the file is committed and counted; the staging file
      // disappears a little earlier, at the rename, so waiting on it alone races the counter.
      await eventually(
        async () => (await againMetric('fluxo_file_sink_close_pending_files')) === 0,
        'the staging file finished without a restart',
      );
      assert.deepEqual(stagingFiles(out), []);
      assert.equal(visibleFiles(out).length, 1, 'committed once');
      assert.equal(await againMetric('fluxo_file_sink_files_recovered_total'), 1);
      againStopped = true;
      await again.stop();
      assert.equal(visibleFiles(out).length, 1, 'stop adds nothing');
    });
  });
}
