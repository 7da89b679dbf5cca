import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { postgresSink } from '../../src/sinks/postgres.ts';
import { startPostgres } from '../helpers/servers/postgres.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';
import { startProxy } from '../helpers/tcp-proxy.ts';

const PSQL = '/usr/lib/postgresql/15/bin/psql';

/**
 * What the TCP proxy needs to know of PostgreSQL's protocol: a client chunk that starts with a CopyData message
 * (`d`) carries a write's rows. Those chunks are the attempts; the next one can be cut before the server sees it
 * (the connection is closed, the transaction rolls back).
 */
const copyData = (chunk: Buffer) => (chunk[0] === 0x64 ? 'attempt' : 'other');

/**
 * A BEFORE INSERT trigger that, once armed, refuses `p-4` with a data error (SQLSTATE 22023) the first time —
 * the sink splits the write around the COPY line PostgreSQL names: p-1..p-3, p-4 alone, p-5..p-6 — and ends
 * its own connection (57P01) the second time, after p-1..p-3 committed: the sink answers those as delivered and
 * p-4..p-6 as to be retried, which then go through. A sequence counts the calls because it is not rolled back
 * with the transaction.
 */
const SETUP = `
CREATE TABLE conformance (seq bigserial, _id text PRIMARY KEY, event jsonb);
CREATE TABLE armed (at timestamptz);
CREATE SEQUENCE p4_calls;
CREATE FUNCTION partial_answer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW._id = 'p-4' AND EXISTS (SELECT 1 FROM armed) THEN
    CASE nextval('p4_calls')
      WHEN 1 THEN RAISE EXCEPTION 'p-4 is refused once' USING ERRCODE = '22023';
      WHEN 2 THEN PERFORM pg_terminate_backend(pg_backend_pid());
      ELSE NULL;
    END CASE;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER partial_answer BEFORE INSERT ON conformance FOR EACH ROW EXECUTE FUNCTION partial_answer();
`;

/**
 * A real PostgreSQL 15 behind a protocol-aware fault proxy; the sink in jsonb mode (the kit encodes each event
 * once, so the unencodable check applies). What the table holds is read synchronously with psql, in insertion
 * order.
 */
const postgresHarness: SinkHarness = {
  definition: postgresSink,
  async destination(t: TestContext, { down }): Promise<Destination> {
    const pg = await startPostgres(t);
    if (!pg) throw new Error('PostgreSQL 15 is not installed');
    await pg.query(SETUP);
    const proxy = await startProxy(t, { host: '127.0.0.1', port: pg.port }, { requestKind: copyData });
    if (down) await proxy.down();
    const psql = (sql: string) => {
      const out = spawnSync(PSQL, ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-Atc', sql], {
        encoding: 'utf8',
      });
      if (out.status !== 0) throw new Error(`psql: ${out.stderr}`);
      return out.stdout;
    };
    return {
      options: {
        endpoint: `postgres://postgres@127.0.0.1:${proxy.port}/postgres`,
        table: 'conformance',
        mode: 'jsonb',
        connect_timeout: '2s',
      },
      received: () =>
        psql('SELECT _id FROM conformance ORDER BY seq')
          .split('\n')
          .filter((l) => l !== ''),
      attempts: () => proxy.writes(),
      failNextAttempt: () => proxy.dropNextAttempt(),
      stall: () => proxy.stall(),
      resume: () => proxy.resume(),
      up: () => proxy.up(),
      partial: {
        events: Array.from({ length: 6 }, (_, i) => ({
          _id: `p-${1 + i}`,
          message: `partial ${1 + i}`,
          timestamp: new Date(Date.UTC(2026, 11, 2, 3, 0, 0, i)).toISOString(),
        })),
        answered: ['p-1', 'p-2', 'p-3'],
        arm: () => {
          psql('INSERT INTO armed VALUES (now())');
        },
      },
    };
  },
};

// The postgres sink against a real PostgreSQL (behind a protocol-aware fault proxy), through the real Topology.
sinkConformance(postgresHarness);
