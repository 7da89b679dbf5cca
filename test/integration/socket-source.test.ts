import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { FluxoError } from '../../src/core/errors.ts';
import { socketSource } from '../../src/sources/socket.ts';
import { recordingSourceContext } from '../helpers/context.ts';
import { closedOrReset, fillUntilSourceStopsReading } from '../helpers/tcp-senders.ts';

async function startSource(t: TestContext, raw: Record<string, unknown> = {}) {
  const rec = recordingSourceContext('sock', '/nonexistent', 'socket');
  const source = socketSource.build(socketSource.options.parse({ address: '127.0.0.1:0', ...raw }), rec.ctx);
  await source.start();
  t.after(async () => {
    rec.unblock(); // a failed assertion must not leave stop() waiting on a blocked emit
    await source.stop();
  });
  const endpoint = source.endpoint!()!;
  const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
  assert.ok(port > 0, endpoint);
  return { rec, source, endpoint, port };
}

async function client(t: TestContext, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {}); // resets are expected in some tests
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

async function metric(rec: ReturnType<typeof recordingSourceContext>, name: string): Promise<number> {
  const m = rec.pipelineMetrics.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} exists`);
  return (await m.get()).values[0]?.value ?? 0;
}

const messages = (rec: ReturnType<typeof recordingSourceContext>) => rec.events().map((e) => e.message);

describe('socket source options', () => {
  it('has defaults, units and a description on every option', () => {
    const o = socketSource.options.parse({ address: '127.0.0.1:5514' });
    assert.deepEqual(o, {
      mode: 'tcp',
      address: '127.0.0.1:5514',
      max_line_bytes: 100 * 1024,
      max_connections: 1000,
      max_pending_bytes: 4 * 1024 * 1024,
      keepalive: true,
      idle_timeout: 300_000,
      read_timeout: 30_000,
      evict_idle_after: 10_000,
    });
    assert.equal(socketSource.options.parse({ address: 'localhost:1', max_line_bytes: '64KiB' }).max_line_bytes, 65536);
    assert.equal(socketSource.options.safeParse({}).success, false, 'address is required');
    assert.equal(socketSource.options.safeParse({ address: 'nowhere' }).success, false);
    for (const [key, field] of Object.entries(socketSource.options.shape)) {
      assert.ok(field.description, `option ${key} has a description`);
    }
  });
});

describe('socket source, tcp', { timeout: 30_000 }, () => {
  it('reports the bound port and rejects a port in use', async (t) => {
    const { endpoint, port } = await startSource(t);
    assert.match(endpoint, /^tcp 127\.0\.0\.1:\d+$/);
    const rec = recordingSourceContext('sock2', '/nonexistent', 'socket');
    const second = socketSource.build(socketSource.options.parse({ address: `127.0.0.1:${port}` }), rec.ctx);
    await assert.rejects(second.start(), (e: unknown) => e instanceof FluxoError && e.code === 'FLUXO_SOURCE_LISTEN');
  });

  it('receives every line of 300 concurrent connections exactly once, in order per connection', async (t) => {
    const { rec, port } = await startSource(t);
    const connections = 300;
    const perConnection = 40;
    let wireBytes = 0;
    const sockets = await Promise.all(Array.from({ length: connections }, () => client(t, port)));
    const localPorts = new Map(sockets.map((s, i) => [s.localPort, i]));
    await Promise.all(
      sockets.map(async (socket, c) => {
        const eol = c % 3 === 1 ? '\r\n' : '\n';
        for (let l = 0; l < perConnection; l++) {
          const line = `conn-${c}-line-${l}${eol}`;
          wireBytes += Buffer.byteLength(line);
          if (c % 3 === 2) {
            // split inside the line and across event-loop turns
            socket.write(line.slice(0, 5));
            await immediate();
            socket.write(line.slice(5));
          } else {
            socket.write(line);
          }
        }
        socket.end();
      }),
    );
    await rec.waitForEvents(connections * perConnection);
    const events = rec.events();
    assert.equal(events.length, connections * perConnection);
    const next = new Array<number>(connections).fill(0);
    for (const e of events) {
      const m = /^conn-(\d+)-line-(\d+)$/.exec(e.message as string);
      assert.ok(m, `unexpected message ${JSON.stringify(e.message)}`);
      const c = Number(m[1]);
      assert.equal(Number(m[2]), next[c], `connection ${c} out of order or duplicated`);
      next[c]!++;
      assert.equal(e.host, '127.0.0.1');
      assert.equal(localPorts.get(e.port as number), c, 'port is the peer port of the connection');
      assert.equal(e.source_type, 'socket');
      assert.deepEqual(Object.keys(e), ['message', 'timestamp', 'host', 'port', 'source_type', '_id']);
    }
    assert.ok(next.every((n) => n === perConnection));
    assert.equal(new Set(events.map((e) => e._id)).size, events.length);
    const reported = rec.batches.reduce((s, b) => s + (b.options?.bytes ?? 0), 0);
    assert.equal(reported, wireBytes, 'wire bytes reported in emit options');
  });

  it('completes the last line when the client closes, and emits one batch per chunk', async (t) => {
    const { rec, port } = await startSource(t);
    const socket = await client(t, port);
    socket.end('one\ntwo\nthree\nlast without newline');
    await rec.waitForEvents(4);
    assert.deepEqual(messages(rec), ['one', 'two', 'three', 'last without newline']);
    assert.ok(rec.batches.length <= 2, `${rec.batches.length} batches`);
  });

  it('dead-letters an overlong line and still delivers the next line of the connection', async (t) => {
    const { rec, port } = await startSource(t, { max_line_bytes: 1024 });
    const socket = await client(t, port);
    socket.write('before\n');
    for (let i = 0; i < 5; i++) {
      socket.write('x'.repeat(1000));
      await immediate();
    }
    socket.write('\nafter\n');
    await rec.waitForEvents(2);
    assert.deepEqual(messages(rec), ['before', 'after']);
    assert.equal(rec.deadLettered.length, 1);
    const [dead] = rec.deadLettered;
    assert.equal(dead!.reason, 'line longer than max_line_bytes (1024 bytes)');
    assert.equal(dead!.events.length, 1);
    const e = dead!.events[0]!;
    assert.equal(e.message, 'x'.repeat(1024));
    assert.equal(e._truncated, true);
    assert.equal(e._original_bytes, 5000);
    assert.equal(e.host, '127.0.0.1');
    assert.equal(await metric(rec, 'fluxo_socket_lines_too_long_total'), 1);
  });

  it('refuses connections over max_connections and counts them', async (t) => {
    const { rec, port } = await startSource(t, { max_connections: 2 });
    const first = await client(t, port);
    const second = await client(t, port);
    first.write('from first\n');
    second.write('from second\n');
    await rec.waitForEvents(2);
    assert.equal(await metric(rec, 'fluxo_socket_open_connections'), 2);
    const third = await client(t, port);
    await once(third, 'close');
    assert.equal(await metric(rec, 'fluxo_socket_connections_rejected_total'), 1);
    first.end();
    await once(first, 'close');
    // a slot is free again
    const fourth = await client(t, port);
    fourth.end('from fourth\n');
    await rec.waitForEvents(3);
    assert.deepEqual(messages(rec).sort(), ['from first', 'from fourth', 'from second']);
  });

  it('stops reading a connection while the pipeline is blocked, then delivers everything', async (t) => {
    const { rec, port } = await startSource(t);
    rec.block();
    const socket = await client(t, port);
    const chunkLines = 640;
    let sent = 0;
    const chunk = () => {
      let text = '';
      for (let i = 0; i < chunkLines; i++) text += `line ${String(sent++).padStart(10, '0')} ${'.'.repeat(80)}\n`;
      return text;
    };
    socket.write(chunk());
    await rec.waitForEvents(1);
    await fillUntilSourceStopsReading(rec, socket, chunk, () => sent);
    rec.unblock();
    socket.end();
    await rec.waitForEvents(sent);
    const numbers = rec.events().map((e) => Number((e.message as string).slice(5, 15)));
    assert.deepEqual(
      numbers,
      Array.from({ length: sent }, (_, i) => i),
    );
  });

  it('stop() emits complete lines, drops only the unterminated one, and waits for pending emits', async (t) => {
    const { rec, source, port } = await startSource(t);
    rec.block();
    const socket = await client(t, port);
    socket.write('complete 1\ncomplete 2\nhalf a li');
    await rec.waitForEvents(2);
    let stopped = false;
    const stopping = source.stop().then(() => {
      stopped = true;
    });
    await once(socket, 'close');
    assert.equal(stopped, false, 'stop() waits while an emit is pending');
    rec.unblock();
    await stopping;
    assert.deepEqual(messages(rec), ['complete 1', 'complete 2']);
    assert.equal(await metric(rec, 'fluxo_socket_partial_lines_dropped_total'), 1);
    assert.equal(await metric(rec, 'fluxo_socket_open_connections'), 0);
    // the listening socket is closed
    const refused = connect({ host: '127.0.0.1', port });
    const [error] = await once(refused, 'error');
    assert.equal((error as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  });
});

describe('socket source, udp', { timeout: 30_000 }, () => {
  it('splits datagrams into lines, one event per line', async (t) => {
    const { rec, endpoint, port } = await startSource(t, { mode: 'udp' });
    assert.match(endpoint, /^udp 127\.0\.0\.1:\d+$/);
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    const send = (text: string) =>
      new Promise<void>((resolve, reject) => sender.send(text, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    await send('a1\na2\na3');
    await send('b1\r\nb2\n');
    await send('\n\nc1\n');
    await rec.waitForEvents(6);
    assert.deepEqual(messages(rec).sort(), ['a1', 'a2', 'a3', 'b1', 'b2', 'c1']);
    const senderPort = sender.address().port;
    for (const e of rec.events()) {
      assert.equal(e.host, '127.0.0.1');
      assert.equal(e.port, senderPort);
      assert.equal(e.source_type, 'socket');
    }
    const bytes = rec.batches.reduce((s, b) => s + (b.options?.bytes ?? 0), 0);
    assert.equal(bytes, 'a1\na2\na3'.length + 'b1\r\nb2\n'.length + '\n\nc1\n'.length);
  });

  it('dead-letters an overlong line of a datagram and keeps the others', async (t) => {
    const { rec, port } = await startSource(t, { mode: 'udp', max_line_bytes: 100 });
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    sender.send(`ok 1\n${'z'.repeat(500)}\nok 2`, port, '127.0.0.1');
    await rec.waitForEvents(2);
    assert.deepEqual(messages(rec), ['ok 1', 'ok 2']);
    assert.equal(rec.deadLettered[0]?.events[0]?._original_bytes, 500);
  });

  it('holds datagrams that arrive while the pipeline is blocked and sends them after', async (t) => {
    const { rec, source, port } = await startSource(t, { mode: 'udp' });
    rec.block();
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    sender.send('first', port, '127.0.0.1');
    await rec.waitForEvents(1);
    for (let i = 0; i < 20; i++) sender.send(`held ${i}`, port, '127.0.0.1');
    // the datagrams are counted as they arrive; wait for them rather than for time
    while ((await metric(rec, 'fluxo_socket_udp_datagrams_while_blocked_total')) < 20) await immediate();
    assert.equal(rec.batches.length, 1);
    rec.unblock();
    await rec.waitForEvents(21);
    assert.equal(rec.batches.length, 2, 'what was held goes out as one batch');
    await source.stop();
  });
});

describe('socket source, tcp: connection deadlines', { timeout: 30_000 }, () => {
  it('closes a line that trickles past read_timeout and a silent connection past idle_timeout', async (t) => {
    const { rec, port } = await startSource(t, { read_timeout: 200, idle_timeout: 300 });
    const slow = await client(t, port);
    const slowClosed = closedOrReset(slow);
    slow.write('never');
    const timer = setInterval(() => slow.writable && slow.write('x'), 20);
    t.after(() => clearInterval(timer));
    const silent = await client(t, port);
    await Promise.all([slowClosed, once(silent, 'close')]);
    clearInterval(timer);
    assert.equal(await metric(rec, 'fluxo_socket_connections_read_timeout_total'), 1);
    assert.equal(await metric(rec, 'fluxo_socket_connections_idle_closed_total'), 1);
    assert.equal(await metric(rec, 'fluxo_socket_partial_lines_dropped_total'), 1);
    assert.deepEqual(messages(rec), []);
  });

  it('evicts the longest-idle connection for a new one at max_connections', async (t) => {
    const { rec, port } = await startSource(t, { max_connections: 1, evict_idle_after: 0 });
    const first = await client(t, port);
    first.write('one\n');
    await rec.waitForEvents(1);
    const firstClosed = once(first, 'close');
    const second = await client(t, port);
    second.write('two\n');
    await rec.waitForEvents(2);
    await firstClosed;
    assert.deepEqual(messages(rec), ['one', 'two']);
    assert.equal(await metric(rec, 'fluxo_socket_connections_evicted_total'), 1);
  });
});
