import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { httpKillLoop } from '../helpers/http-kill-loop.ts';
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
    const sink = `
  columnar:
    type: clickhouse
    inputs: [in]
    endpoint: ${ch.url}
    table: logs
    concurrency: 2
    batch: { max_events: 200, timeout: 10ms }
`;
    const { total, resent } = await httpKillLoop(t, dir, sink, {
      kills: KILLS,
      requests: REQUESTS,
      perRequest: PER_REQUEST,
      workers: WORKERS,
    });
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
    t.diagnostic(`${KILLS} kills, ${resent} requests sent again, ${raw!.c} rows before FINAL, ${total} with FINAL`);
  });
});
