import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type EventModes, FluentClient, FluentSocketEvent } from '@fluent-org/logger';
import { Packr } from 'msgpackr';
import { forwardSource } from '../../src/sources/forward.ts';
import { tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { closedOrReset } from '../helpers/tcp-senders.ts';
import { eventually, makeForwardCertificates, portOf, settlingContext } from './fixtures/forward-helpers.ts';

/** Plain MessagePack, encoded independently of the codec under test. */
const packr = new Packr({ useRecords: false });
const pack = (v: unknown) => packr.pack(v);

async function startSource(t: TestContext, raw: Record<string, unknown> = {}, mode: 'auto' | 'manual' = 'auto') {
  const rec = settlingContext('fwd', mode);
  const source = forwardSource.build(forwardSource.options.parse({ address: '127.0.0.1:0', ...raw }), rec.ctx);
  await source.start();
  t.after(async () => {
    rec.unblock();
    rec.settle('failed');
    await source.stop();
  });
  return { rec, source, port: portOf(source.endpoint!()!) };
}

function client(t: TestContext, port: number, options: ConstructorParameters<typeof FluentClient>[1] = {}) {
  const c = new FluentClient('app', {
    ...options,
    socket: { host: '127.0.0.1', port, ...options.socket },
  });
  t.after(() => c.shutdown().catch(() => {}));
  return c;
}

/** A raw TCP client: what it receives, and a promise for its close. */
async function rawClient(t: TestContext, port: number) {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  let received = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
  });
  const closed = closedOrReset(socket);
  return { socket, closed, received: () => received };
}

const warnings = (rec: ReturnType<typeof settlingContext>) => rec.logs.filter((l) => l.level >= 40).map((l) => l.msg);

const MODES: EventModes[] = ['Message', 'Forward', 'PackedForward', 'CompressedPackedForward'];

describe('forward source with @fluent-org/logger', { timeout: 60_000 }, () => {
  for (const mode of MODES) {
    for (const ack of [true, false]) {
      it(`${mode} mode, ${ack ? 'with' : 'without'} requireAckResponse`, async (t) => {
        const { rec, port } = await startSource(t);
        // EventTime (milliseconds: true) in the packed modes, integer seconds in the others.
        const milliseconds = mode.includes('Packed');
        const c = client(t, port, { eventMode: mode, milliseconds, ...(ack ? { ack: { ackTimeout: 10_000 } } : {}) });
        const at = new Date('2025-03-05T14:00:01.234Z');
        await Promise.all([
          c.emit('web', { message: 'GET /index.html 200', status: 200, nested: { ua: 'curl', list: [1, 'two'] } }, at),
          c.emit('web', { log: 'docker line', stream: 'stdout' }, at),
          c.emit('db', { message: 'slow query', ms: 1234.5 }, at),
        ]);
        await rec.waitForEvents(3);
        const events = rec.events();
        assert.equal(events.length, 3);
        const byMessage = new Map(events.map((e) => [e.message, e]));
        const timestamp = milliseconds ? '2025-03-05T14:00:01.234Z' : '2025-03-05T14:00:01.000Z';
        const first = byMessage.get('GET /index.html 200')!;
        assert.deepEqual(
          { ...first, _id: undefined },
          {
            message: 'GET /index.html 200',
            status: 200,
            nested: { ua: 'curl', list: [1, 'two'] },
            tag: 'app.web',
            timestamp,
            host: '127.0.0.1',
            source_type: 'forward',
            _id: undefined,
          },
        );
        const docker = byMessage.get('docker line')!;
        assert.equal(docker.log, undefined, '`log` became `message`');
        assert.equal(docker.stream, 'stdout');
        assert.equal(byMessage.get('slow query')!.tag, 'app.db');
        assert.equal(byMessage.get('slow query')!.ms, 1234.5);
        if (ack) {
          for (const e of events) assert.match(String(e._id), /^[A-Za-z0-9+/]{22}==:\d+$/, 'chunk id + index');
          assert.equal(new Set(events.map((e) => e._id)).size, 3);
          assert.ok((await rec.metric('fluxo_forward_acks_sent_total')) >= 1);
        } else {
          for (const e of events) assert.match(String(e._id), /^[0-9a-f]{8}-[0-9a-f]{4}-7/, 'UUIDv7');
          assert.equal(await rec.metric('fluxo_forward_acks_sent_total'), 0);
        }
        assert.deepEqual(warnings(rec), []);
      });
    }
  }

  it('acknowledges a chunk only once the pipeline settled it as delivered', async (t) => {
    const { rec, port } = await startSource(t, {}, 'manual');
    const c = client(t, port, { eventMode: 'PackedForward', ack: { ackTimeout: 20_000 } });
    let acked = false;
    const sent = c.emit('web', { message: 'wait for me' }).then(() => {
      acked = true;
    });
    await rec.waitForEvents(1);
    await eventually(() => rec.unsettled === 1, 'the batch waits for settlement');
    assert.equal(await rec.metric('fluxo_forward_acks_sent_total'), 0, 'no ack before settlement');
    assert.equal(acked, false);
    rec.settle('delivered');
    await sent;
    assert.equal(acked, true);
    assert.equal(await rec.metric('fluxo_forward_acks_sent_total'), 1);
  });

  it('never acknowledges a batch the pipeline failed: the connection closes so the sender resends', async (t) => {
    const { rec, port } = await startSource(t, {}, 'manual');
    const raw = await rawClient(t, port);
    raw.socket.write(pack(['t', 1700000000, { message: 'm' }, { chunk: 'chunk-f' }]));
    await rec.waitForEvents(1);
    await eventually(() => rec.unsettled === 1, 'the batch waits for settlement');
    rec.settle('failed');
    await raw.closed;
    assert.equal(raw.received().length, 0, 'no ack was sent');
    assert.equal(await rec.metric('fluxo_forward_acks_sent_total'), 0);
  });

  it('shared key: the right key and user deliver; a wrong key or password is rejected with a logged reason', async (t) => {
    const auth = { shared_key: 's3cret', hostname: 'aggregator', users: [{ username: 'web', password: 'pw' }] };
    const { rec, port } = await startSource(t, { auth });
    const good = client(t, port, {
      eventMode: 'PackedForward',
      ack: { ackTimeout: 10_000 },
      security: { clientHostname: 'agent', sharedKey: 's3cret', username: 'web', password: 'pw' },
    });
    await good.emit('web', { message: 'authenticated' });
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['authenticated'],
    );

    for (const [security, reason] of [
      [{ clientHostname: 'agent', sharedKey: 'wrong', username: 'web', password: 'pw' }, 'shared key mismatch'],
      [
        { clientHostname: 'agent', sharedKey: 's3cret', username: 'web', password: 'bad' },
        'username/password mismatch',
      ],
    ] as const) {
      // Reconnecting (after the rejection) only in a minute: one attempt per client in this test.
      const reconnect = { minDelay: 60_000, delay: 60_000 };
      const bad = client(t, port, {
        eventMode: 'PackedForward',
        ack: { ackTimeout: 10_000 },
        security,
        socket: { reconnect },
      });
      const error = new Promise<Error>((resolve) => bad.socketOn(FluentSocketEvent.ERROR, resolve));
      bad.emit('web', { message: 'must not arrive' }).catch(() => {});
      assert.match((await error).message, new RegExp(`Authentication failed: ${reason}`));
      await eventually(() => warnings(rec).some((m) => m.includes(reason)), `a logged ${reason}`);
    }
    // A client without the key at all sends a message where PING is due.
    const raw = await rawClient(t, port);
    raw.socket.write(pack(['t', 1, { message: 'no key' }]));
    await raw.closed;
    assert.ok(warnings(rec).some((m) => /expected PING after HELO/.test(m)));
    assert.equal(await rec.metric('fluxo_forward_auth_failures_total'), 3);
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['authenticated'],
    );
  });

  it('a garbage, a truncated and a bad-gzip message each close their connection with a logged reason; others go on', async (t) => {
    const { rec, port } = await startSource(t);
    const healthy = client(t, port, { eventMode: 'PackedForward', ack: { ackTimeout: 10_000 } });
    await healthy.emit('web', { message: 'before' });

    const garbage = await rawClient(t, port);
    garbage.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await garbage.closed;

    const truncated = await rawClient(t, port);
    const frame = pack(['t', [[1, { message: 'x'.repeat(100) }]], { chunk: 'c-trunc' }]);
    truncated.socket.end(frame.subarray(0, 40));
    await truncated.closed;

    const badGzip = await rawClient(t, port);
    badGzip.socket.write(pack(['t', Buffer.from('not gzip at all'), { compressed: 'gzip', chunk: 'c-gz' }]));
    await badGzip.closed;

    const badEntries = await rawClient(t, port);
    badEntries.socket.write(pack(['t', Buffer.from([0x92, 0x01]), { chunk: 'c-bad' }]));
    await badEntries.closed;

    await healthy.emit('web', { message: 'after' });
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['before', 'after'],
    );
    const w = warnings(rec);
    assert.ok(
      w.some((m) => /expected a MessagePack array, found byte 0x47/.test(m)),
      w.join('\n'),
    );
    assert.ok(
      w.some((m) => /truncated message: the connection ended inside a message/.test(m)),
      w.join('\n'),
    );
    assert.ok(
      w.some((m) => /not valid gzip/.test(m)),
      w.join('\n'),
    );
    assert.ok(
      w.some((m) => /invalid MessagePack in packed entries/.test(m)),
      w.join('\n'),
    );
    assert.equal(await rec.metric('fluxo_forward_protocol_errors_total'), 4);
    for (const raw of [garbage, truncated, badGzip, badEntries]) assert.equal(raw.received().length, 0, 'no ack');
  });

  it('enforces max_message_bytes, also on decompressed entries', async (t) => {
    const { rec, port } = await startSource(t, { max_message_bytes: 4096 });
    const big = await rawClient(t, port);
    big.socket.write(pack(['t', [[1, { message: 'y'.repeat(5000) }]]]));
    await big.closed;
    const bomb = await rawClient(t, port);
    const entries = pack([1, { message: 'z'.repeat(100_000) }]);
    bomb.socket.write(pack(['t', gzipSync(entries), { compressed: 'gzip' }]));
    await bomb.closed;
    const w = warnings(rec);
    assert.ok(
      w.some((m) => /message larger than max_message_bytes \(4096 bytes\)/.test(m)),
      w.join('\n'),
    );
    assert.ok(
      w.some((m) => /larger than max_message_bytes \(4096 bytes\) once decompressed/.test(m)),
      w.join('\n'),
    );
    assert.equal(rec.events().length, 0);
  });

  it('dead-letters entries that are not [time, record] and acknowledges the rest', async (t) => {
    const { rec, port } = await startSource(t);
    const raw = await rawClient(t, port);
    raw.socket.write(
      pack([
        't',
        [
          [1, 'not a map'],
          [1700000000, { message: 'ok' }],
          ['soon', { message: 'bad time' }],
        ],
        { chunk: 'c1' },
      ]),
    );
    await eventually(() => raw.received().length > 0, 'the ack');
    assert.deepEqual(packr.unpack(raw.received()), { ack: 'c1' });
    assert.deepEqual(
      rec.events().map((e) => [e.message, e._id]),
      [['ok', 'c1:1']],
    );
    assert.deepEqual(rec.deadLettered.map((d) => d.reason).sort(), [
      'forward entry record is not a map',
      'forward entry time is not a number of seconds or an EventTime in years 1-9999',
    ]);
    assert.match(String(rec.deadLettered[0]!.events[0]!.message), /not a map|soon/);
  });

  it('pauses a connection while its batch waits for the pipeline (backpressure)', async (t) => {
    const { rec, port } = await startSource(t);
    rec.block();
    const raw = await rawClient(t, port);
    raw.socket.write(pack(['t', 1, { message: 'first' }]));
    await rec.waitForEvents(1);
    // While blocked, nothing more is read: these frames stay in the socket buffers.
    for (let i = 0; i < 50; i++) raw.socket.write(pack(['t', 1, { message: `m${i}` }]));
    await new Promise((r) => raw.socket.write('', r));
    // Client and server share this event loop: a few turns (each with a poll phase) let a flowing socket read them.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(rec.batches.length, 1, 'no second batch while the first is not accepted');
    rec.unblock();
    await rec.waitForEvents(51);
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['first', ...Array.from({ length: 50 }, (_, i) => `m${i}`)],
    );
  });

  it('answers UDP heartbeats, and a TCP heartbeat (connect, close) is no error', async (t) => {
    const { rec, port } = await startSource(t);
    const udp = createSocket('udp4');
    t.after(() => udp.close());
    const reply = once(udp, 'message');
    udp.send(Buffer.from([0]), port, '127.0.0.1');
    const [msg] = (await reply) as [Buffer];
    assert.deepEqual([...msg], [0]);
    const tcp = await rawClient(t, port);
    tcp.socket.end();
    await tcp.closed;
    assert.deepEqual(warnings(rec), []);
    assert.equal(await rec.metric('fluxo_forward_udp_heartbeats_total'), 1);
  });

  it('closes connections beyond max_connections and counts them', async (t) => {
    const { rec, port } = await startSource(t, { max_connections: 2 });
    const a = await rawClient(t, port);
    const b = await rawClient(t, port);
    await eventually(async () => (await rec.metric('fluxo_forward_open_connections')) === 2, 'two open');
    const c = await rawClient(t, port);
    await c.closed;
    assert.equal(await rec.metric('fluxo_forward_connections_rejected_total'), 1);
    a.socket.write(pack(['t', 1, { message: 'still served' }]));
    await rec.waitForEvents(1);
    b.socket.destroy();
  });

  it('TLS with the logger, and a plain-text client is refused', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeForwardCertificates(openssl, tempDir(t));
    const { rec, port } = await startSource(t, { tls: { crt_file: certs.cert, key_file: certs.key } });
    const c = client(t, port, {
      eventMode: 'CompressedPackedForward',
      ack: { ackTimeout: 10_000 },
      socket: { tls: { ca: (await import('node:fs')).readFileSync(certs.ca), servername: 'localhost' } },
    });
    await c.emit('web', { message: 'over tls' });
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['over tls'],
    );
    const plain = await rawClient(t, port);
    plain.socket.write(pack(['t', 1, { message: 'plain' }]));
    await plain.closed;
    assert.equal(rec.events().length, 1);
  });
});

describe('forward source: graceful stop', { timeout: 30_000 }, () => {
  it('stops reading but still sends the acks of batches already handed over', async (t) => {
    const { rec, source, port } = await startSource(t, {}, 'manual');
    const raw: { socket: Socket; closed: Promise<void>; received: () => Buffer } = await rawClient(t, port);
    raw.socket.write(pack(['t', 1, { message: 'in flight' }, { chunk: 'c-stop' }]));
    await rec.waitForEvents(1);
    await eventually(() => rec.unsettled === 1, 'waiting for settlement');
    await source.stop();
    rec.settle('delivered');
    await raw.closed;
    assert.deepEqual(packr.unpack(raw.received()), { ack: 'c-stop' });
  });
});

describe('forward source: limits on what one message may become', { timeout: 60_000 }, () => {
  const entry = (i: number) => [1700000000, { message: `m${i}` }];
  const packedEntries = (n: number) => Buffer.concat(Array.from({ length: n }, (_, i) => pack(entry(i))));

  it('refuses a message over max_entries_per_message in every mode: no ack, connection closed, counted', async (t) => {
    const { rec, port } = await startSource(t, { max_entries_per_message: 100 });
    const frames = [
      pack(['t', Array.from({ length: 101 }, (_, i) => entry(i)), { chunk: 'c-forward' }]),
      pack(['t', packedEntries(101), { chunk: 'c-packed' }]),
      pack(['t', gzipSync(packedEntries(101)), { compressed: 'gzip', chunk: 'c-gzip' }]),
    ];
    for (const frame of frames) {
      const raw = await rawClient(t, port);
      raw.socket.write(frame);
      await raw.closed;
      assert.equal(raw.received().length, 0, 'no ack: the sender still has the message');
    }
    assert.equal(rec.events().length, 0);
    assert.equal(await rec.metric('fluxo_forward_messages_over_limit_total'), 3);
    assert.equal(await rec.metric('fluxo_forward_protocol_errors_total'), 3);
    const logged = warnings(rec).filter((m) => /more than max_entries_per_message \(100\)/.test(m));
    assert.equal(logged.length, 1, 'logged once, rate-limited');

    const ok = await rawClient(t, port);
    ok.socket.write(pack(['t', gzipSync(packedEntries(100)), { compressed: 'gzip', chunk: 'c-ok' }]));
    await eventually(() => ok.received().length > 0, 'the ack of a message at the limit');
    assert.deepEqual(packr.unpack(ok.received()), { ack: 'c-ok' });
    assert.equal(rec.events().length, 100);
  });

  it('with the defaults, a 58 KB gzip of 20 million empty entries is refused while decoding', async (t) => {
    const { rec, port } = await startSource(t);
    // [0, {}] is 3 bytes: 60 MB decoded, under max_message_bytes (64 MiB).
    const decoded = Buffer.alloc(60_000_000).fill(Buffer.from([0x92, 0x00, 0x80]));
    const bomb = pack(['t', gzipSync(decoded, { level: 9 }), { compressed: 'gzip', chunk: 'c-bomb' }]);
    assert.ok(bomb.length < 100_000, `${bomb.length} bytes on the wire`);
    const raw = await rawClient(t, port);
    raw.socket.write(bomb);
    await raw.closed;
    assert.equal(raw.received().length, 0);
    assert.equal(rec.events().length, 0, 'not one of them became an event');
    assert.equal(await rec.metric('fluxo_forward_messages_over_limit_total'), 1);
    assert.ok(warnings(rec).some((m) => /more than max_entries_per_message \(500000\)/.test(m)));
  });

  it('splits a big message into pipeline-sized batches and acknowledges it once all settled', async (t) => {
    const { rec, port } = await startSource(t, {}, 'manual');
    const raw = await rawClient(t, port);
    raw.socket.write(pack(['t', gzipSync(packedEntries(25_000)), { compressed: 'gzip', chunk: 'c-big' }]));
    await rec.waitForEvents(25_000);
    await eventually(() => rec.unsettled === 3, 'three batches wait for settlement');
    assert.deepEqual(
      rec.batches.map((b) => b.events.length),
      [10_000, 10_000, 5_000],
    );
    assert.equal(raw.received().length, 0, 'no ack before every batch settled');
    rec.settle('delivered');
    await eventually(() => raw.received().length > 0, 'the ack');
    assert.deepEqual(packr.unpack(raw.received()), { ack: 'c-big' });
    assert.equal(rec.events()[24_999]!._id, 'c-big:24999');
  });
});

describe('forward source: memory and deadlines across connections', { timeout: 60_000 }, () => {
  it('max_buffered_bytes: the connection whose unfinished message would pass the global cap is closed', async (t) => {
    const { rec, port } = await startSource(t, { max_buffered_bytes: '1MiB' });
    const frame = (chunk: string) => pack(['t', [[1, { message: 'x'.repeat(600_000) }]], { chunk }]);
    const held = () => rec.metric('fluxo_forward_buffered_bytes');
    // Two connections hold 200 KB of a message each (256 KiB of buffer each) ...
    const holders = [];
    for (const chunk of ['c-1', 'c-2']) {
      const raw = await rawClient(t, port);
      raw.closed.catch(() => {});
      raw.socket.write(frame(chunk).subarray(0, 200_000));
      holders.push(raw);
      await eventually(async () => (await held()) >= 200_000 * holders.length, `${chunk} held`);
    }
    // ... so a third one holding 700 KB would pass 1 MiB: it is closed, the two others are not.
    const third = await rawClient(t, port);
    third.socket.write(frame('c-3').subarray(0, 700_000));
    await third.closed.catch(() => {}); // closed with unread bytes: a reset
    assert.equal(await rec.metric('fluxo_forward_buffer_limit_closes_total'), 1);
    assert.ok(warnings(rec).some((m) => /max_buffered_bytes/.test(m)));
    assert.equal(third.received().length, 0, 'no ack');
    for (const [i, raw] of holders.entries()) {
      raw.socket.write(frame(`c-${i + 1}`).subarray(200_000));
      await eventually(() => raw.received().length > 0, `the ack of c-${i + 1}`);
    }
    assert.equal(rec.events().length, 2);
    await eventually(async () => (await held()) === 0, 'all given back');
  });

  it('read_timeout closes a message that trickles in; idle_timeout a silent connection; acks owed keep one open', async (t) => {
    const { rec, port } = await startSource(t, { read_timeout: 200, idle_timeout: 300 }, 'manual');
    const slow = await rawClient(t, port);
    const frame = pack(['t', [[1, { message: 'slow'.repeat(100) }]], { chunk: 'c-slow' }]);
    let at = 0;
    const timer = setInterval(() => at < frame.length - 1 && slow.socket.write(frame.subarray(at, ++at)), 20);
    t.after(() => clearInterval(timer));
    const silent = await rawClient(t, port);
    const owed = await rawClient(t, port);
    owed.socket.write(pack(['t', 1, { message: 'waits for its ack' }, { chunk: 'c-owed' }]));
    await Promise.all([slow.closed.catch(() => {}), silent.closed]);
    clearInterval(timer);
    assert.equal(await rec.metric('fluxo_forward_connections_read_timeout_total'), 1);
    assert.equal(await rec.metric('fluxo_forward_connections_idle_closed_total'), 1);
    assert.equal(owed.socket.destroyed, false, 'a connection owed an ack is not idle');
    rec.settle('delivered');
    await eventually(() => owed.received().length > 0, 'the ack');
    assert.deepEqual(packr.unpack(owed.received()), { ack: 'c-owed' });
    await owed.closed;
    assert.equal(await rec.metric('fluxo_forward_connections_idle_closed_total'), 2);
  });

  it('at max_connections a new connection evicts the longest-idle one', async (t) => {
    const { rec, port } = await startSource(t, { max_connections: 1, evict_idle_after: 0 });
    const first = await rawClient(t, port);
    first.socket.write(pack(['t', 1, { message: 'one' }]));
    await rec.waitForEvents(1);
    const second = await rawClient(t, port);
    second.socket.write(pack(['t', 1, { message: 'two' }, { chunk: 'c-two' }]));
    await first.closed;
    await eventually(() => second.received().length > 0, 'the ack of the newcomer');
    assert.equal(await rec.metric('fluxo_forward_connections_evicted_total'), 1);
    assert.equal(await rec.metric('fluxo_forward_connections_rejected_total'), 0);
  });
});
