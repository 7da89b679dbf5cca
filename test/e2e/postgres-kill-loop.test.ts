import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { httpKillLoop } from '../helpers/http-kill-loop.ts';
import { startPostgres } from '../helpers/servers/postgres.ts';

const KILLS = 10;
const REQUESTS = 240;
const PER_REQUEST = 25;
const WORKERS = 4;

/**
 * The real CLI: an http source (it answers 200 only once every sink delivered the request's events, and takes
 * `Idempotency-Key` into the event ids: `<key>:<index>`) → the postgres sink. Senders POST numbered events and
 * send a request again, with the same key, until it is answered 200. Fluxo is killed with SIGKILL ten times
 * mid-stream and started again: a request whose rows were committed but whose answer was lost comes again with
 * the same `_id`s, and ON CONFLICT DO NOTHING keeps each number once.
 */
describe('postgres sink: kill -9 loop of fluxo', { timeout: 240_000 }, () => {
  it(`kill -9 of fluxo ×${KILLS} mid-stream: every acknowledged number exactly once in the table`, async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    await pg.query('CREATE TABLE logs (_id text PRIMARY KEY, n integer NOT NULL, message text)');
    const dir = tempDir(t);
    const sink = `
  serving:
    type: postgres
    inputs: [in]
    endpoint: ${pg.url}
    table: logs
    columns: { n: n, message: message }
    concurrency: 2
    batch: { max_events: 200, timeout: 10ms }
`;
    const { total, resent } = await httpKillLoop(t, dir, sink, {
      kills: KILLS,
      requests: REQUESTS,
      perRequest: PER_REQUEST,
      workers: WORKERS,
    });
    const rows = await pg.query<{ n: number; c: number }>('SELECT n, count(*)::int AS c FROM logs GROUP BY n');
    const counts = new Map(rows.map((r) => [r.n, r.c]));
    const missing: number[] = [];
    for (let n = 1; n <= total; n++) if (!counts.has(n)) missing.push(n);
    assert.deepEqual(missing, [], 'acknowledged numbers missing from the table');
    assert.deepEqual(
      rows.filter((r) => r.c > 1).map((r) => r.n),
      [],
      'numbers in the table twice',
    );
    assert.equal(rows.length, total);
    t.diagnostic(`${KILLS} kills, ${resent} requests sent again, ${total} numbers each once`);
  });
});
