import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { clickhouseSink } from '../../src/sinks/clickhouse.ts';
import { requireProgram } from '../helpers/external.ts';
import { startClickHouse } from '../helpers/servers/clickhouse.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';

/**
 * An HTTP proxy in front of clickhouse-server: records the body of every INSERT (the attempts), can cut the
 * next INSERT's connection once its body arrived (the server never sees it), hold the server's answers, or
 * stop listening (down).
 */
class ClickHouseFaultProxy {
  readonly writes: Buffer[] = [];
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private held: (() => void)[] = [];
  private stalled = false;
  private failNext = false;

  constructor(private readonly target: string) {}

  async up(): Promise<void> {
    const server = createServer((req, res) => void this.forward(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
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

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    const body = Buffer.concat(parts);
    const isInsert = /INSERT/i.test(decodeURIComponent(req.url ?? ''));
    if (isInsert) {
      this.writes.push(body);
      if (this.failNext) {
        this.failNext = false;
        req.socket.destroy();
        return;
      }
    }
    try {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string' && !['host', 'connection', 'content-length', 'keep-alive'].includes(k))
          headers[k] = v;
      }
      const answer = await request(`${this.target}${req.url}`, { method: req.method as 'POST', headers, body });
      const text = await answer.body.arrayBuffer();
      const pass = () => {
        if (res.destroyed) return;
        res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'text/plain') });
        res.end(Buffer.from(text));
      };
      if (this.stalled) this.held.push(pass);
      else pass();
    } catch {
      req.socket.destroy();
    }
  }
}

/**
 * A real clickhouse-server 18.16 behind an HTTP fault proxy. The table is a plain MergeTree so that a row
 * inserted twice shows twice; what it holds is read synchronously with curl.
 */
const clickhouseHarness: SinkHarness = {
  definition: clickhouseSink,
  async destination(t: TestContext, { down }): Promise<Destination> {
    const curl = requireProgram(t, 'curl', 'curl');
    if (!curl) throw new Error('curl is not installed');
    const ch = await startClickHouse(t);
    if (!ch) throw new Error('clickhouse-server is not installed');
    await ch.query(
      'CREATE TABLE conformance (_id String, message String, timestamp DateTime, n UInt32 DEFAULT 0) ' +
        'ENGINE = MergeTree ORDER BY tuple()',
    );
    const proxy = new ClickHouseFaultProxy(ch.url);
    await proxy.up();
    t.after(() => proxy.down());
    if (down) await proxy.down();
    return {
      options: { endpoint: `http://127.0.0.1:${proxy.port}`, table: 'conformance', connect_timeout: '2s' },
      received: () => {
        const out = spawnSync(curl, ['-sS', `${ch.url}/`, '--data-binary', 'SELECT _id FROM conformance'], {
          encoding: 'utf8',
        });
        return out.stdout.split('\n').filter((l) => l !== '');
      },
      attempts: () => [...proxy.writes],
      failNextAttempt: () => proxy.failNextWrite(),
      stall: () => proxy.stall(),
      resume: () => proxy.resume(),
      up: () => proxy.up(),
    };
  },
  notApplicable: {
    'a partial answer retries only the rest':
      'ClickHouse answers an INSERT as a whole (one status for the request); the sink answers part of a write only ' +
      'when it splits one around a refused row, which is then dead-lettered, while this check needs every event ' +
      'delivered. The split and its dead letters are tested in clickhouse-sink.test.ts.',
  },
};

// The clickhouse sink against a real clickhouse-server (behind an HTTP fault proxy), through the real Topology.
sinkConformance(clickhouseHarness);
