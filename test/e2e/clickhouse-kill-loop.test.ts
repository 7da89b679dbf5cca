import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { tempDir } from '../helpers/context.ts';
import { type FluxoProcess, runFluxo } from '../helpers/fluxo-process.ts';
import { startClickHouse } from '../helpers/servers/clickhouse.ts';

const KILLS = 10;
const REQUESTS = 240;
const PER_REQUEST = 25;
const WORKERS = 4;

/**
 * The real CLI: an http source (it answers 200 only once every sink delivered the request's events, and takes
 * `Idempotency-Key` into the event ids: `<key>:<index>`) → the clickhouse sink. Senders POST numbered events
 * and send a request again, with the same key, until it is answered 200. Fluxo is killed with SIGKILL ten
 * times mid-stream and started again: a request whose insert went through but whose answer was lost comes again
 * with the same `_id`s. ClickHouse 18.16 has no insert_deduplication_token (and deduplicates inserts only in
 * Replicated tables), so the table is the documented ReplacingMergeTree ORDER BY _id: the raw table may hold a
 * number twice, `FINAL` holds each once.
 */
describe('clickhouse sink: kill -9 loop of fluxo', { timeout: 240_000 }, () => {
  it(`kill -9 of fluxo ×${KILLS} mid-stream: every acknowledged number exactly once with FINAL`, async (t) => {
    const ch = await startClickHouse(t);
    if (!ch) return;
    await ch.query('CREATE TABLE logs (_id String, n UInt32, message String) ENGINE = ReplacingMergeTree ORDER BY _id');
    const dir = tempDir(t);
    const yaml = `
data_dir: ${join(dir, 'data')}
api: { address: 127.0.0.1:0 }
sources:
  in: { type: http, address: 127.0.0.1:0, path: /logs }
sinks:
  columnar:
    type: clickhouse
    inputs: [in]
    endpoint: ${ch.url}
    table: logs
    concurrency: 2
    batch: { max_events: 200, timeout: 10ms }
`;
    // From the sources (tsx) on a loaded machine a start can take far longer than the banner wait's 20 s.
    const started = async (f: FluxoProcess) => {
      await f.waitFor(/source in .*listening/, 120_000);
      return f.port('in');
    };
    let fluxo: FluxoProcess = runFluxo(t, dir, yaml);
    let port = await started(fluxo);
    let starting: Promise<void> | undefined;

    const acknowledged = new Set<number>();
    let resent = 0;
    let next = 0;
    const send = async (k: number) => {
      const body = Array.from({ length: PER_REQUEST }, (_, i) => {
        const n = k * PER_REQUEST + i + 1;
        return JSON.stringify({ n, message: `number ${n}` });
      }).join('\n');
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) resent++;
        if (starting) await starting;
        try {
          const res = await request(`http://127.0.0.1:${port}/logs`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': `req-${k}` },
            body,
          });
          await res.body.text();
          if (res.statusCode === 200) {
            acknowledged.add(k);
            return;
          }
        } catch {
          // killed mid-request: nothing was acknowledged, send it again
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const worker = async () => {
      while (next < REQUESTS) await send(next++);
    };
    const workers = Promise.all(Array.from({ length: WORKERS }, worker));

    let killedMidStream = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      // Let some requests through first, so that every kill lands mid-stream.
      const before = acknowledged.size;
      const deadline = Date.now() + 20_000;
      while (acknowledged.size < before + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100)));
      if (next < REQUESTS) killedMidStream++;
      let ready!: () => void;
      starting = new Promise((resolve) => {
        ready = resolve;
      });
      assert.equal(await fluxo.stop('SIGKILL'), null, `kill ${kill + 1}`);
      fluxo = runFluxo(t, dir, yaml);
      port = await started(fluxo);
      starting = undefined;
      ready();
    }
    await workers;
    assert.equal(await fluxo.stop('SIGTERM'), 0, fluxo.stderr);

    assert.equal(acknowledged.size, REQUESTS);
    const total = REQUESTS * PER_REQUEST;
    const final = await ch.rows<{ n: number; c: string }>('SELECT n, count() AS c FROM logs FINAL GROUP BY n');
    const counts = new Map(final.map((r) => [r.n, Number(r.c)]));
    const missing: number[] = [];
    for (let n = 1; n <= total; n++) if (!counts.has(n)) missing.push(n);
    assert.deepEqual(missing, [], 'acknowledged numbers missing from the table');
    assert.deepEqual(
      final.filter((r) => r.c !== '1').map((r) => r.n),
      [],
      'numbers twice with FINAL',
    );
    assert.equal(final.length, total);
    const [raw] = await ch.rows<{ c: string }>('SELECT count() AS c FROM logs');
    assert.ok(killedMidStream >= KILLS - 1, `only ${killedMidStream} kills landed mid-stream`);
    assert.ok(resent > 0, 'no request had to be sent again: the kills did not hit a request');
    t.diagnostic(`${KILLS} kills, ${resent} requests sent again, ${raw!.c} rows before FINAL, ${total} with FINAL`);
  });
});
