import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { FluxoProcess } from '../helpers/fluxo-process.ts';

const KILLS = 10;
const PER_REQUEST = 200;
const CONCURRENCY = 4;
/** The banner's last line; a start from the TypeScript sources on a loaded 2-core machine can take 20 s. */
const STARTED = /api (http:\/\/\S+)/;
const START_TIMEOUT_MS = 120_000;

function config(dir: string): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 30s
sources:
  http: { type: http, address: 127.0.0.1:0, path: /logs }
sinks:
  master:
    type: file
    inputs: [http]
    path: "${dir}/out/dt=%Y-%m-%d/hour=%H/part.parquet"
    encoding: parquet
    max_file_age: 150ms
    idle_timeout: 100ms
    schema: { n: int64 }
`;
}

/** A seeded PRNG, so a failing sequence of kill moments can be repeated. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Posts numbered events in requests of PER_REQUEST, each with its own Idempotency-Key (so its events' `_id`s
 * are the same on every resend). A request counts as acknowledged only on 200; any other outcome (the process
 * was killed) leaves it pending, to be sent again to the next run.
 */
class Sender {
  readonly acked = new Set<number>();
  private readonly pending: number[] = [];
  private next = 0;
  sent = 0;

  private body(request: number): string {
    let text = '';
    for (let i = 1; i <= PER_REQUEST; i++) {
      const n = request * PER_REQUEST + i;
      text += `${JSON.stringify({ n, message: `event ${n}`, level: n % 3 === 0 ? 'warn' : 'info' })}\n`;
    }
    return text;
  }

  private take(): number | undefined {
    return (
      this.pending.shift() ?? (this.stopAfter === undefined || this.next < this.stopAfter ? this.next++ : undefined)
    );
  }

  /** With a limit, only requests below it (and the pending ones) are sent, then run() ends. */
  stopAfter: number | undefined;

  /** Sends until `until()` says stop (or, with stopAfter, nothing is left); failed requests stay pending. */
  async run(url: string, until: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (!until()) {
          const request = this.take();
          if (request === undefined) return;
          this.sent++;
          let ok = false;
          try {
            const res = await fetch(url, {
              method: 'POST',
              headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': `req-${request}` },
              body: this.body(request),
              signal: AbortSignal.timeout(30_000),
            });
            await res.arrayBuffer();
            ok = res.status === 200;
          } catch {
            ok = false;
          }
          if (ok) {
            for (let i = 1; i <= PER_REQUEST; i++) this.acked.add(request * PER_REQUEST + i);
          } else {
            this.pending.push(request);
            // The process is gone (or busy): the next run gets it.
            if (!until()) await new Promise((r) => setTimeout(r, 20));
          }
        }
      }),
    );
  }

  get requested(): number {
    return this.next;
  }
}

function hiddenFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.startsWith('.')) out.push(p);
    }
  };
  walk(root);
  return out;
}

describe('parquet file sink: kill -9 loop through the real CLI', { timeout: 300_000 }, () => {
  it(`kill -9 ×${KILLS} while staging and sealing: every acknowledged event is read back, no file sealed twice`, async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'fluxo.yaml');
    writeFileSync(file, config(dir));
    const seed = Number(process.env.FLUXO_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = prng(seed);
    t.diagnostic(`seed ${seed} (FLUXO_CRASH_SEED=${seed} repeats the kill moments)`);
    const sender = new Sender();
    let recovered = 0;
    for (let run = 1; run <= KILLS; run++) {
      const fluxo = new FluxoProcess(['run', '-c', file]);
      t.after(() => fluxo.stop('SIGKILL'));
      await fluxo.waitFor(STARTED, START_TIMEOUT_MS);
      const port = await fluxo.port('http');
      await fluxo.apiUrl();
      recovered += await fluxo.metric('fluxo_file_sink_files_recovered_total', { component_id: 'master' });
      let killed = false;
      const sending = sender.run(`http://127.0.0.1:${port}/logs`, () => killed);
      // Past the first seals (max_file_age 150ms), at a random moment: staging, sealing or committing.
      await new Promise((r) => setTimeout(r, 200 + Math.floor(random() * 900)));
      killed = true;
      assert.equal(await fluxo.stop('SIGKILL'), null, `run ${run} killed`);
      await sending;
    }
    const beforeLast = sender.acked.size;
    assert.ok(beforeLast > 0, 'some requests were acknowledged before the kills');

    // The last run gets what is pending and a few more, then stops gracefully: every staging file is sealed.
    const last = new FluxoProcess(['run', '-c', file]);
    t.after(() => last.stop('SIGKILL'));
    await last.waitFor(STARTED, START_TIMEOUT_MS);
    const port = await last.port('http');
    await last.apiUrl();
    recovered += await last.metric('fluxo_file_sink_files_recovered_total', { component_id: 'master' });
    sender.stopAfter = sender.requested + 5;
    await sender.run(`http://127.0.0.1:${port}/logs`, () => false);
    assert.equal(await last.stop(), 0, last.stderr);
    assert.equal(sender.acked.size, sender.requested * PER_REQUEST, 'the last run acknowledged every request');

    const out = join(dir, 'out');
    assert.deepEqual(hiddenFiles(out), [], 'no staging or sealing file is left after the graceful stop');
    const glob = sqlString(`${out}/**/*.parquet`);
    const files = (await duckQuery(`SELECT DISTINCT file_name AS f FROM parquet_metadata(${glob})`)).map((r) =>
      String(r.f),
    );
    // Sealed names: part-<staging id>-<first>-<last>.parquet; a staging file sealed twice would show twice.
    const stagingIds = files.map((f) => /part-(\d{8}T\d{6}Z-[0-9a-f]{8})-1-\d+\.parquet$/.exec(f)?.[1]);
    assert.ok(
      stagingIds.every((id) => id !== undefined),
      `every name is deterministic: ${files.join(', ')}`,
    );
    assert.equal(new Set(stagingIds).size, stagingIds.length, 'no staging file was sealed into two files');

    const source = `read_parquet(${glob}, hive_partitioning = true)`;
    const present = new Set((await duckQuery(`SELECT DISTINCT n FROM ${source}`)).map((r) => Number(r.n)));
    const lost = [...sender.acked].filter((n) => !present.has(n));
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged events missing`);
    const duplicatedIds = await duckQuery(
      `SELECT n, count(*) AS c, count(DISTINCT _id) AS ids FROM ${source} GROUP BY n HAVING count(*) > 1 AND count(DISTINCT _id) > 1 LIMIT 5`,
    );
    assert.deepEqual(duplicatedIds, [], 'duplicates of an event share its _id');
    const [totals] = await duckQuery(
      `SELECT count(*) AS rows, count(DISTINCT _id) AS ids, count(DISTINCT n) AS numbers FROM ${source}`,
    );
    assert.equal(Number(totals!.ids), Number(totals!.numbers), 'one _id per event number');
    t.diagnostic(
      `${KILLS} kills: ${sender.acked.size} events acknowledged (${beforeLast} before the last run), ` +
        `${totals!.rows} rows in ${files.length} sealed files, ${Number(totals!.rows) - Number(totals!.ids)} duplicate rows, ` +
        `${recovered} staging files recovered at restarts, ${sender.sent} requests sent`,
    );
    assert.ok(recovered > 0, 'some restart sealed staging files a kill left');
  });
});
