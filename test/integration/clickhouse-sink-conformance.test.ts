import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { clickhouseSink } from '../../src/sinks/clickhouse.ts';
import { requireProgram } from '../helpers/external.ts';
import { startClickHouse } from '../helpers/servers/clickhouse.ts';
import { type Destination, type SinkHarness, sinkConformance } from '../helpers/sink-conformance.ts';
import { startProxy } from '../helpers/tcp-proxy.ts';

/**
 * What the TCP proxy needs to know of HTTP: a chunk that starts a request begins a write when its request line
 * is an INSERT (the query is in the URL), anything else otherwise; the chunks between (headers, the body)
 * continue it. Each write is then the whole request as the server would have seen it, and the next one can be
 * cut once its bytes arrived (the server never sees it).
 */
const insertRequest = (chunk: Buffer) => {
  const head = chunk.toString('latin1', 0, Math.min(chunk.length, 4096));
  if (!/^(POST|GET) /.test(head)) return undefined;
  const line = head.slice(0, head.indexOf('\r\n') >>> 0);
  return /INSERT/i.test(decodeURIComponent(line.replace(/\+/g, ' '))) ? 'attempt' : 'other';
};

/**
 * A real clickhouse-server 18.16 behind a TCP fault proxy that tells HTTP requests apart. The table is a plain MergeTree so that a row
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
    const proxy = await startProxy(t, { host: '127.0.0.1', port: ch.port }, { requestKind: insertRequest });
    if (down) await proxy.down();
    return {
      options: { endpoint: `http://127.0.0.1:${proxy.port}`, table: 'conformance', connect_timeout: '2s' },
      received: () => {
        const out = spawnSync(curl, ['-sS', `${ch.url}/`, '--data-binary', 'SELECT _id FROM conformance'], {
          encoding: 'utf8',
        });
        return out.stdout.split('\n').filter((l) => l !== '');
      },
      attempts: () => proxy.writes(),
      failNextAttempt: () => proxy.dropNextAttempt(),
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

// The clickhouse sink against a real clickhouse-server (behind a TCP fault proxy), through the real Topology.
sinkConformance(clickhouseHarness);
