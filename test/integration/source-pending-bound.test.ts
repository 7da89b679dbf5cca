import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { httpSink } from '../../src/sinks/http.ts';
import { socketSource } from '../../src/sources/socket.ts';
import { syslogSource } from '../../src/sources/syslog.ts';
import { tempDir } from '../helpers/context.ts';
import { testPipeline, tick, until } from '../helpers/pipeline.ts';
import { sendNumberedLines } from '../helpers/tcp-senders.ts';
import { metricValue } from './fixtures/disk-buffer-harness.ts';

/**
 * A real HTTP server that holds every answer while stalled (a destination that accepts and hangs); release()
 * answers 200 to what it held and to everything after. `delivered` collects the messages it received.
 */
async function stallingServer(t: TestContext) {
  const held: (() => void)[] = [];
  const delivered: string[] = [];
  let stalled = true;
  const server = createServer((req, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = () => {
        for (const e of JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message: string }[])
          delivered.push(e.message);
        res.writeHead(200).end('ok');
      };
      if (stalled) held.push(answer);
      else answer();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`,
    delivered,
    release() {
      stalled = false;
      for (const answer of held.splice(0)) answer();
    },
  };
}

const CONNECTIONS = 30;
const TOTAL = 60_000;
/** ~100-byte lines: 6 MB in all, far more than the bound and the buffer hold. */
const line = (n: number) => `line ${n} ${'x'.repeat(90)}`;
/** One socket read (Node reads up to 64 KiB at a time): what the last connection may add past the bound. */
const READ_BYTES = 64 * 1024;

async function stalledSource(t: TestContext, type: 'socket' | 'syslog', maxPendingBytes: number) {
  const server = await stallingServer(t);
  const p = testPipeline(
    `
sources: { in: { type: ${type}, mode: tcp, address: "127.0.0.1:0", max_pending_bytes: ${maxPendingBytes} } }
sinks:
  out:
    type: http
    inputs: [in]
    uri: ${server.uri}
    request_timeout: 10m
    buffer: { type: memory, max_events: 200, max_bytes: 1MiB }
`,
    tempDir(t),
    [socketSource, syslogSource, httpSink],
  );
  t.after(() => p.topology.stop(100));
  await p.topology.start();
  const endpoint = p.topology.describe().sources.find((s) => s.id === 'in')!.endpoint!;
  const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
  const metric = (name: string) => metricValue(p.metrics.registry, `fluxo_${type}_${name}`);
  // The gauge as a scrape of /metrics reads it, on every turn of the event loop; the largest value is kept.
  const seen = { max: 0, last: 0 };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      seen.last = await metric('pending_bytes');
      seen.max = Math.max(seen.max, seen.last);
      await tick();
    }
  })();
  t.after(async () => {
    sampling = false;
    await sampler;
  });
  const sent = sendNumberedLines(port, { connections: CONNECTIONS, total: TOTAL, payload: line });
  const received = () => sourceMetric(p, 'fluxo_component_received_events_total');
  return { server, p, seen, sent, metric, received };
}

/** A pipeline metric of the source alone (the sink has series of the same name). */
async function sourceMetric(p: ReturnType<typeof testPipeline>, name: string): Promise<number> {
  for (const l of (await p.metrics.registry.metrics()).split('\n'))
    if (l.startsWith(`${name}{`) && l.includes('component_kind="source"'))
      return Number(l.slice(l.lastIndexOf(' ') + 1));
  return 0;
}

/** Waits until the source has stopped taking events: the count received is the same over 50 turns. */
async function settledReceiving(received: () => Promise<number>): Promise<number> {
  let last = -1;
  let still = 0;
  const end = Date.now() + 30_000;
  while (still < 50) {
    const now = await received();
    still = now === last ? still + 1 : 0;
    last = now;
    if (Date.now() > end) throw new Error('the source kept receiving under a stalled sink');
    await new Promise((r) => setTimeout(r, 5));
  }
  return last;
}

describe('max_pending_bytes: one bound on what all connections of a source hold', { timeout: 90_000 }, () => {
  for (const type of ['socket', 'syslog'] as const) {
    it(`${type}: a stalled sink holds the pending bytes under the bound; nothing is lost on release`, async (t) => {
      const bound = 128 * 1024;
      const run = await stalledSource(t, type, bound);
      await until(() => run.seen.max > 0, 'the source received', 30_000);
      const received = await settledReceiving(run.received);
      assert.ok((await run.metric('read_pauses_total')) >= 1, 'the source paused reading for the bound');
      assert.ok(received < TOTAL / 2, `the source stopped taking lines (${received} of ${TOTAL})`);
      assert.ok(
        run.seen.max <= bound + READ_BYTES,
        `pending bytes peaked at ${run.seen.max}, over ${bound} + one read of ${READ_BYTES}`,
      );
      // What the source took is the buffer's 200 events plus what waits under the bound: 101 bytes per line.
      assert.ok(received <= 200 + (bound + READ_BYTES) / 101, `${received} events received while stalled`);

      run.server.release();
      await run.sent;
      await until(() => run.server.delivered.length >= TOTAL, 'every line delivered after the release', 60_000);
      const numbers = new Set(run.server.delivered.map((m) => Number(m.split(' ')[1])));
      assert.equal(numbers.size, TOTAL, 'each line delivered');
      assert.equal(run.server.delivered.length, TOTAL, 'and once');
      await until(() => run.seen.last === 0, 'nothing pending once delivered');
    });
  }

  it('the counter is what the bound limits: with a large bound the same load holds far more', async (t) => {
    const run = await stalledSource(t, 'socket', 64 * 1024 * 1024);
    await until(() => run.seen.max > 0, 'the source received', 30_000);
    await settledReceiving(run.received);
    assert.equal(await run.metric('read_pauses_total'), 0, 'never paused: the bound was not reached');
    assert.ok(run.seen.max > 128 * 1024 + READ_BYTES, `pending bytes reached ${run.seen.max}`);
    run.server.release();
    await run.sent;
    await until(() => run.server.delivered.length >= TOTAL, 'every line delivered after the release', 60_000);
  });
});
