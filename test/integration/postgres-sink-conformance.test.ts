import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { postgresSink } from '../../src/sinks/postgres.ts';
import { startPostgres } from '../helpers/servers/postgres.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';

const PSQL = '/usr/lib/postgresql/15/bin/psql';

/**
 * A TCP proxy in front of PostgreSQL that knows one thing of the protocol: a client chunk that starts with a
 * CopyData message (`d`) carries a write's rows. Those chunks are the attempts; the next one can be cut before
 * the server sees it (the connection is closed, the transaction rolls back); the server's answers can be held;
 * and the proxy can stop listening (down).
 */
class PgFaultProxy {
  readonly writes: Buffer[] = [];
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private held: (() => void)[] = [];
  private stalled = false;
  private failNext = false;

  constructor(private readonly targetPort: number) {}

  async up(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  failNextWrite(): void {
    this.failNext = true;
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    for (const release of this.held.splice(0)) release();
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    const upstream = connect(this.targetPort, '127.0.0.1');
    this.sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', () => {
      this.sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      client.destroy();
    });
    client.on('data', (data: Buffer) => {
      if (data[0] === 0x64) {
        this.writes.push(Buffer.from(data));
        if (this.failNext) {
          this.failNext = false;
          close();
          return;
        }
      }
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      const pass = () => {
        if (!client.destroyed) client.write(data);
      };
      if (this.stalled) this.held.push(pass);
      else pass();
    });
  }
}

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
    const proxy = new PgFaultProxy(pg.port);
    await proxy.up();
    t.after(() => proxy.down());
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
      attempts: () => [...proxy.writes],
      failNextAttempt: () => proxy.failNextWrite(),
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
