import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { FluxoProcess } from '../helpers/fluxo-process.ts';
import { startS3Server } from '../helpers/servers/s3.ts';

const KILLS = 10;
const PER_REQUEST = 200;
const CONCURRENCY = 4;
const BUCKET = 'fluxo-kill';

/** A seeded PRNG, so a failing sequence of kill moments can be repeated. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Posts numbered events in requests of PER_REQUEST, each with its own Idempotency-Key (the same `_id`s on every
 * resend). A request counts as acknowledged only on 200; otherwise (the process was killed) it stays pending.
 */
class Sender {
  readonly acked = new Set<number>();
  private readonly pending: number[] = [];
  private next = 0;
  stopAfter: number | undefined;

  async run(url: string, until: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (!until()) {
          const request =
            this.pending.shift() ??
            (this.stopAfter === undefined || this.next < this.stopAfter ? this.next++ : undefined);
          if (request === undefined) return;
          let body = '';
          for (let i = 1; i <= PER_REQUEST; i++) {
            const n = request * PER_REQUEST + i;
            body += `${JSON.stringify({ n, message: `event ${n}` })}\n`;
          }
          let ok = false;
          try {
            const res = await fetch(url, {
              method: 'POST',
              headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': `req-${request}` },
              body,
              signal: AbortSignal.timeout(30_000),
            });
            await res.arrayBuffer();
            ok = res.status === 200;
          } catch {
            ok = false;
          }
          if (ok) for (let i = 1; i <= PER_REQUEST; i++) this.acked.add(request * PER_REQUEST + i);
          else {
            this.pending.push(request);
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

/** The http source's port from the banner; a start on a loaded 2-core machine (tsx, the AWS SDK) may be slow. */
async function httpPort(fluxo: FluxoProcess): Promise<number> {
  const m = await fluxo.waitFor(/source http \([^)]*\): listening on \w+ [^\s]+:(\d+)/, 90_000);
  return Number(m[1]);
}

describe('s3 sink: kill -9 loop through the real CLI', { timeout: 420_000 }, () => {
  it(`kill -9 ×${KILLS} while staging, sealing and uploading: every acknowledged event is in an object, no object twice`, async (t) => {
    const s3 = await startS3Server(t, { buckets: [BUCKET] });
    if (!s3) return;
    const dir = tempDir(t);
    const file = join(dir, 'fluxo.yaml');
    writeFileSync(
      file,
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 30s
sources:
  http: { type: http, address: 127.0.0.1:0, path: /logs }
sinks:
  master:
    type: s3
    inputs: [http]
    bucket: ${BUCKET}
    endpoint: ${s3.endpoint}
    force_path_style: true
    access_key_id: "${s3.accessKeyId}"
    secret_access_key: "${s3.secretAccessKey}"
    key: "logs/dt=%Y-%m-%d/hour=%H/part.parquet"
    encoding: parquet
    schema: { n: int64 }
    max_file_age: 150ms
    idle_timeout: 100ms
    stale_upload_age: 0s
    shutdown_upload_timeout: 60s
`,
    );
    const seed = Number(process.env.FLUXO_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = prng(seed);
    t.diagnostic(`seed ${seed} (FLUXO_CRASH_SEED=${seed} repeats the kill moments)`);
    const sender = new Sender();
    for (let run = 1; run <= KILLS; run++) {
      const fluxo = new FluxoProcess(['run', '-c', file]);
      t.after(() => fluxo.stop('SIGKILL'));
      const port = await httpPort(fluxo);
      await fluxo.apiUrl();
      let killed = false;
      const sending = sender.run(`http://127.0.0.1:${port}/logs`, () => killed);
      // Past the first seals and uploads (max_file_age 150ms), at a random moment.
      await new Promise((r) => setTimeout(r, 300 + Math.floor(random() * 1_200)));
      killed = true;
      assert.equal(await fluxo.stop('SIGKILL'), null, `run ${run} killed`);
      t.diagnostic(`run ${run}: ${sender.acked.size} events acknowledged so far`);
      await sending;
    }
    const beforeLast = sender.acked.size;
    assert.ok(beforeLast > 0, 'some requests were acknowledged before the kills');

    // The last run gets what is pending and a few more, then stops gracefully: every staging file is uploaded.
    const last = new FluxoProcess(['run', '-c', file]);
    t.after(() => last.stop('SIGKILL'));
    const port = await httpPort(last);
    await last.apiUrl();
    sender.stopAfter = sender.requested + 5;
    await sender.run(`http://127.0.0.1:${port}/logs`, () => false);
    assert.equal(await last.stop(), 0, last.stderr);
    assert.equal(sender.acked.size, sender.requested * PER_REQUEST, 'the last run acknowledged every request');
    assert.deepEqual(await s3.uploads(BUCKET), [], 'no multipart upload left');

    const objects = await s3.list(BUCKET, 'logs/');
    const stagingIds = objects.map((o) => /part-(\d{8}T\d{6}Z-[0-9a-f]{8})-1-\d+\.parquet$/.exec(o.key)?.[1]);
    assert.ok(
      stagingIds.every((id) => id !== undefined),
      `every key is deterministic: ${objects.map((o) => o.key).join(', ')}`,
    );
    assert.equal(new Set(stagingIds).size, stagingIds.length, 'no staging file was uploaded under two keys');
    const local = join(dir, 'download');
    for (const o of objects) {
      const path = join(local, o.key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, await s3.get(BUCKET, o.key));
    }
    const source = `read_parquet(${sqlString(`${local}/logs/**/*.parquet`)}, hive_partitioning = true)`;
    const present = new Set((await duckQuery(`SELECT DISTINCT n FROM ${source}`)).map((r) => Number(r.n)));
    const lost = [...sender.acked].filter((n) => !present.has(n));
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged events missing`);
    const duplicatedIds = await duckQuery(
      `SELECT n FROM ${source} GROUP BY n HAVING count(*) > 1 AND count(DISTINCT _id) > 1 LIMIT 5`,
    );
    assert.deepEqual(duplicatedIds, [], 'duplicates of an event share its _id');
    const [totals] = await duckQuery(`SELECT count(*) AS rows, count(DISTINCT _id) AS ids FROM ${source}`);
    t.diagnostic(
      `${KILLS} kills: ${sender.acked.size} events acknowledged (${beforeLast} before the last run), ` +
        `${totals!.rows} rows in ${objects.length} objects, ${Number(totals!.rows) - Number(totals!.ids)} duplicate rows`,
    );
  });
});
