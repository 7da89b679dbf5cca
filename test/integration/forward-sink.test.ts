import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { EventTime as FluentEventTime, FluentServer } from '@fluent-org/logger';
import { Packr } from 'msgpackr';
import { RetryableError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { type ForwardSink, forwardSink } from '../../src/sinks/forward.ts';
import { type ForwardSource, forwardSource } from '../../src/sources/forward.ts';
import { componentContext, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { driven } from '../helpers/sink-driver.ts';
import { eventually, makeForwardCertificates, portOf, settlingContext } from './fixtures/forward-helpers.ts';

const packr = new Packr({ useRecords: false });

async function startSource(t: TestContext, raw: Record<string, unknown> = {}, id = 'agg') {
  const rec = settlingContext(id);
  const source = forwardSource.build(forwardSource.options.parse({ address: '127.0.0.1:0', ...raw }), rec.ctx);
  await source.start();
  t.after(() => source.stop());
  const port = portOf(source.endpoint!()!);
  return { rec, source: source as ForwardSource, port, address: `127.0.0.1:${port}` };
}

function startSink(t: TestContext, raw: Record<string, unknown>) {
  const context = componentContext('fwd_out', '/nonexistent', 'sink', 'forward');
  const sink = forwardSink.build(forwardSink.options.parse(raw), context) as ForwardSink;
  t.after(() => sink.stop());
  return { sink, context, start: () => sink.start() };
}

function makeEvents(n: number, from = 1, tag?: string): Event[] {
  return Array.from({ length: n }, (_, i) => ({
    message: `line ${from + i}`,
    timestamp: new Date(Date.UTC(2025, 2, 5, 14, 0, 0, i)).toISOString(),
    host: 'web-01',
    source_type: 'file',
    sequence: from + i,
    nested: { a: [1, 'b'] },
    _id: `id-${from + i}`,
    ...(tag ? { tag } : {}),
  }));
}

/** A TCP server that records what it receives and replies as told. */
async function fakeServer(t: TestContext, onFrame: (socket: Socket, frame: unknown[]) => void) {
  const received: unknown[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      try {
        const frames = packr.unpackMultiple(buf) as unknown[][];
        buf = Buffer.alloc(0);
        for (const f of frames) {
          received.push(f);
          onFrame(socket, f);
        }
      } catch {
        // incomplete: wait for more
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { received, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}

const chunkOf = (frame: unknown[]) => (frame[2] as { chunk: string }).chunk;
const signal = () => new AbortController().signal;

describe('forward sink → forward source', { timeout: 60_000 }, () => {
  for (const compression of ['none', 'gzip'] as const) {
    it(`delivers with acks (compression ${compression}), keeping tag, timestamp, host and _id`, async (t) => {
      const agg = await startSource(t);
      const { sink, start, context } = startSink(t, { servers: [{ address: agg.address }], compression });
      await start();
      const events = [...makeEvents(600, 1, 'app.web'), ...makeEvents(400, 601)];
      await driven(sink).write(events, signal());
      const got = agg.rec.events();
      assert.equal(got.length, 1000);
      const first = got.find((e) => e.sequence === 1)!;
      assert.deepEqual(first, {
        message: 'line 1',
        host: 'web-01',
        source_type: 'forward',
        sequence: 1,
        nested: { a: [1, 'b'] },
        _id: 'id-1',
        tag: 'app.web',
        timestamp: '2025-03-05T14:00:00.000Z',
      });
      const untagged = got.find((e) => e.sequence === 700)!;
      assert.equal(untagged.tag, 'fluxo', 'the default tag');
      assert.equal(untagged.timestamp, '2025-03-05T14:00:00.099Z');
      assert.deepEqual(
        got.map((e) => e.sequence).sort((a, b) => Number(a) - Number(b)),
        Array.from({ length: 1000 }, (_, i) => i + 1),
      );
      assert.equal(await agg.rec.metric('fluxo_forward_acks_sent_total'), 2, 'one chunk per tag');
      const acked = context.pipelineMetrics.registry.getSingleMetric('fluxo_forward_sink_chunks_acked_total')!;
      assert.equal((await acked.get()).values[0]!.value, 2);
    });
  }

  it('speaks to another implementation: @fluent-org/logger FluentServer, with shared key and user', async (t) => {
    const server = new FluentServer({
      security: { serverHostname: 'their-server', sharedKey: 'k', authorize: true, userDict: { u: 'p' } },
      listenOptions: { host: '127.0.0.1', port: 0 },
    });
    const entries: [string, unknown, Record<string, unknown>][] = [];
    server.on('entry', (tag: string, time: unknown, record: Record<string, unknown>) =>
      entries.push([tag, time, record]),
    );
    await server.listen();
    t.after(() => server.close());
    const { sink, start } = startSink(t, {
      servers: [{ address: `127.0.0.1:${server.port}` }],
      compression: 'gzip',
      auth: { shared_key: 'k', hostname: 'agent', username: 'u', password: 'p' },
      tag: 'from.fluxo',
    });
    await start();
    await driven(sink).write(makeEvents(3), signal());
    assert.equal(entries.length, 3);
    const [tag, time, record] = entries[0]!;
    assert.equal(tag, 'from.fluxo');
    assert.ok(time instanceof FluentEventTime);
    assert.equal((time as FluentEventTime).epoch, Date.UTC(2025, 2, 5, 14) / 1000);
    assert.equal(record.message, 'line 1');
    assert.equal(record.timestamp, undefined, 'the time travels as the entry time');
  });

  it('an ack that never comes is never delivered: the write fails (retryable) after ack_timeout', async (t) => {
    const silent = await fakeServer(t, () => {});
    const { sink, start } = startSink(t, {
      servers: [{ address: silent.address }],
      ack_timeout: '200ms',
      heartbeat_type: 'none',
    });
    await start();
    await assert.rejects(
      driven(sink).write(makeEvents(5), signal()),
      (e: unknown) => e instanceof RetryableError && /no ack from forward server .* within 200 ms/.test(e.message),
    );
    assert.equal(silent.received.length, 1, 'the message was sent');
  });

  it('a wrong ack does not count either', async (t) => {
    const liar = await fakeServer(t, (socket) => socket.write(packr.pack({ ack: 'some-other-chunk' })));
    const { sink, start } = startSink(t, {
      servers: [{ address: liar.address }],
      ack_timeout: '200ms',
      heartbeat_type: 'none',
    });
    await start();
    await assert.rejects(driven(sink).write(makeEvents(1), signal()), /no ack/);
  });

  it('a retry resends the same chunk ids, and only the chunks not acknowledged yet', async (t) => {
    let calls = 0;
    // First connection: acknowledges the first chunk only, then hangs up. Later: acknowledges everything.
    const server = await fakeServer(t, (socket, frame) => {
      calls++;
      if (calls === 1) socket.write(packr.pack({ ack: chunkOf(frame) }));
      else if (calls === 2) socket.destroy();
      else socket.write(packr.pack({ ack: chunkOf(frame) }));
    });
    const { sink, start } = startSink(t, {
      servers: [{ address: server.address }],
      heartbeat_type: 'none',
      recover_wait: 0,
    });
    await start();
    const events = [...makeEvents(2, 1, 'a'), ...makeEvents(2, 3, 'b')];
    await assert.rejects(driven(sink).write(events, signal()), RetryableError);
    assert.equal(server.received.length, 2);
    const [chunkA, chunkB] = server.received.map(chunkOf);
    await driven(sink).write(events, signal());
    assert.equal(server.received.length, 3);
    assert.equal(chunkOf(server.received[2]!), chunkB, 'the unacknowledged chunk, with its id');
    assert.notEqual(chunkA, chunkB);
  });
});

describe('forward sink: servers, balancing and failover', { timeout: 60_000 }, () => {
  it('spreads writes by weight over the primaries and never uses the standby while they are up', async (t) => {
    const a = await startSource(t, {}, 'a');
    const b = await startSource(t, {}, 'b');
    const c = await startSource(t, {}, 'c');
    const { sink, start } = startSink(t, {
      servers: [{ address: a.address, weight: 3 }, { address: b.address }, { address: c.address, standby: true }],
    });
    await start();
    for (let i = 0; i < 8; i++) await driven(sink).write(makeEvents(10, i * 10 + 1), signal());
    assert.deepEqual(
      [a, b, c].map((s) => s.rec.batches.length),
      [6, 2, 0],
    );
  });

  it('fails over at once when a server dies, uses the standby only when every primary is down, and comes back by heartbeat', async (t) => {
    const a = await startSource(t, {}, 'a');
    const b = await startSource(t, {}, 'b');
    const standby = await startSource(t, {}, 'standby');
    const { sink, start } = startSink(t, {
      servers: [{ address: a.address }, { address: b.address }, { address: standby.address, standby: true }],
      heartbeat_interval: '50ms',
    });
    await start();
    await driven(sink).write(makeEvents(10, 1), signal());
    await driven(sink).write(makeEvents(10, 11), signal());
    assert.deepEqual([a.rec.events().length, b.rec.events().length], [10, 10]);

    await a.source.stop();
    for (let i = 0; i < 4; i++) await driven(sink).write(makeEvents(10, 100 + i * 10), signal());
    assert.equal(a.rec.events().length, 10, 'nothing more to the dead server');
    assert.equal(b.rec.events().length, 50);
    assert.equal(standby.rec.events().length, 0);

    await b.source.stop();
    await driven(sink).write(makeEvents(10, 200), signal());
    assert.equal(standby.rec.events().length, 10, 'the standby takes over');

    // A primary comes back on its port: the heartbeat marks it up and the standby is left again.
    const again = settlingContext('a2');
    const revived = forwardSource.build(forwardSource.options.parse({ address: a.address }), again.ctx);
    await revived.start();
    t.after(() => revived.stop());
    await eventually(async () => {
      await driven(sink).write(makeEvents(1, 300), signal());
      return again.events().length > 0;
    }, 'writes reach the revived server');
    const standbyBefore = standby.rec.events().length;
    await driven(sink).write(makeEvents(5, 400), signal());
    assert.equal(standby.rec.events().length, standbyBefore);
  });

  it('throws RetryableError when no server is up, and delivers once one is', async (t) => {
    const placeholder = createServer();
    placeholder.listen(0, '127.0.0.1');
    await once(placeholder, 'listening');
    const address = `127.0.0.1:${(placeholder.address() as AddressInfo).port}`;
    placeholder.close();
    await once(placeholder, 'close');
    const { sink, start } = startSink(t, { servers: [{ address }], heartbeat_interval: '50ms' });
    await start();
    const events = makeEvents(3);
    await assert.rejects(driven(sink).write(events, signal()), (e: unknown) => e instanceof RetryableError);
    await assert.rejects(driven(sink).write(events, signal()), /no forward server is up/);
    const rec = settlingContext('late');
    const late = forwardSource.build(forwardSource.options.parse({ address }), rec.ctx);
    await late.start();
    t.after(() => late.stop());
    await eventually(async () => {
      try {
        await driven(sink).write(events, signal());
        return true;
      } catch {
        return false;
      }
    }, 'the server is back');
    assert.deepEqual(
      rec.events().map((e) => e.sequence),
      [1, 2, 3],
    );
  });

  it('UDP heartbeats: a server that stops answering is down, one that answers again is up', async (t) => {
    const agg = await startSource(t);
    const { sink, start } = startSink(t, {
      servers: [{ address: agg.address }],
      heartbeat_type: 'udp',
      heartbeat_interval: '30ms',
    });
    await start();
    await driven(sink).write(makeEvents(1), signal());
    await eventually(async () => (await agg.rec.metric('fluxo_forward_udp_heartbeats_total')) >= 2, 'heartbeats');
    await agg.source.stop();
    await eventually(async () => {
      try {
        await driven(sink).write(makeEvents(1), signal());
        return false;
      } catch (e) {
        return /no forward server is up/.test((e as Error).message);
      }
    }, 'the server is marked down');
    // Something answering UDP on that port brings it back for writes.
    const udp = createSocket('udp4');
    t.after(() => udp.close());
    udp.on('message', (_m, r) => udp.send(Buffer.from([0]), r.port, r.address));
    udp.bind(agg.port, '127.0.0.1');
    await once(udp, 'listening');
    await eventually(async () => {
      try {
        await driven(sink).write(makeEvents(1), signal());
        return false;
      } catch (e) {
        return !/no forward server is up/.test((e as Error).message);
      }
    }, 'the server is marked up by its UDP reply');
  });

  it('TLS and shared key end to end; a wrong key is a retryable error with the reason', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeForwardCertificates(openssl, tempDir(t));
    const agg = await startSource(t, {
      tls: { crt_file: certs.cert, key_file: certs.key },
      auth: { shared_key: 'k', hostname: 'aggregator' },
    });
    const { sink, start } = startSink(t, {
      servers: [{ address: `localhost:${agg.port}` }],
      tls: { ca_file: certs.ca },
      auth: { shared_key: 'k', hostname: 'agent' },
    });
    await start();
    await driven(sink).write(makeEvents(2), signal());
    assert.equal(agg.rec.events().length, 2);
    const wrong = startSink(t, {
      servers: [{ address: `localhost:${agg.port}` }],
      tls: { ca_file: certs.ca },
      auth: { shared_key: 'nope', hostname: 'agent' },
    });
    await wrong.start();
    await assert.rejects(
      driven(wrong.sink).write(makeEvents(1), signal()),
      /authentication rejected: shared key mismatch/,
    );
    const untrusted = startSink(t, {
      servers: [{ address: `localhost:${agg.port}` }],
      tls: {},
      auth: { shared_key: 'k' },
    });
    await untrusted.start();
    await assert.rejects(driven(untrusted.sink).write(makeEvents(1), signal()), /certificate/);
    assert.equal(agg.rec.events().length, 2);
    assert.ok(readFileSync(certs.ca).length > 0);
  });
});
