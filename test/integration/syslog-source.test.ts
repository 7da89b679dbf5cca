import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { describe, it, type TestContext } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import type { SourceContext } from '../../src/core/component.ts';
import { FluxoError } from '../../src/core/errors.ts';
import { syslogSource } from '../../src/sources/syslog.ts';
import { recordingLogger, recordingSourceContext, tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { closedOrReset, fillUntilSourceStopsReading } from '../helpers/tcp-senders.ts';
import { makeTestCertificates } from './fixtures/syslog-tls-certs.ts';

const run = promisify(execFile);
type Recording = ReturnType<typeof recordingSourceContext>;

/** A recording context whose logger keeps the log lines, to check what an operator would read. */
function recording() {
  const rec = recordingSourceContext('sys', '/nonexistent', 'syslog');
  const { logger, lines: logs } = recordingLogger();
  const ctx: SourceContext = { ...rec.ctx, logger };
  return { rec, ctx, logs };
}

async function startSource(t: TestContext, raw: Record<string, unknown> = {}) {
  const { rec, ctx, logs } = recording();
  const source = syslogSource.build(syslogSource.options.parse({ address: '127.0.0.1:0', ...raw }), ctx);
  await source.start();
  t.after(async () => {
    rec.unblock(); // a failed assertion must not leave stop() waiting on a blocked emit
    await source.stop();
  });
  const endpoint = source.endpoint!()!;
  const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
  assert.ok(port > 0, endpoint);
  return { rec, source, endpoint, port, logs };
}

async function client(t: TestContext, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {}); // resets are expected in some tests
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

async function metric(rec: Recording, name: string): Promise<number> {
  const m = rec.pipelineMetrics.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} exists`);
  return (await m.get()).values[0]?.value ?? 0;
}

async function untilMetric(rec: Recording, name: string, value: number): Promise<void> {
  for (let i = 0; (await metric(rec, name)) < value; i++) {
    assert.ok(i < 100_000, `metric ${name} never reached ${value}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

const frame = (msg: string) => `${Buffer.byteLength(msg)} ${msg}`;
const messages = (rec: Recording) => rec.events().map((e) => e.message);
const HOSTNAMES = [hostname(), hostname().split('.')[0]];

describe('syslog source options', () => {
  it('has defaults, units and a description on every option', () => {
    const o = syslogSource.options.parse({});
    assert.deepEqual(o, {
      mode: 'tcp',
      address: '127.0.0.1:5514',
      max_message_bytes: 64 * 1024,
      max_connections: 1000,
      max_pending_bytes: 4 * 1024 * 1024,
      keepalive: true,
      idle_timeout: 300_000,
      read_timeout: 30_000,
      evict_idle_after: 10_000,
    });
    assert.equal(syslogSource.options.parse({ max_message_bytes: '8KiB' }).max_message_bytes, 8192);
    assert.equal(syslogSource.options.safeParse({ mode: 'unix' }).success, false);
    const noKey = syslogSource.options.safeParse({ tls: { crt_file: '/x.crt' } });
    assert.equal(noKey.success, false);
    assert.match(JSON.stringify(noKey.error?.issues), /a TLS server needs key_file/);
    for (const [key, field] of Object.entries(syslogSource.options.shape)) {
      assert.ok(field.description, `option ${key} has a description`);
    }
  });

  it('refuses TLS over UDP and unreadable certificate files with a clear error', () => {
    const { ctx } = recording();
    const build = (raw: Record<string, unknown>) => syslogSource.build(syslogSource.options.parse(raw), ctx);
    assert.throws(
      () => build({ mode: 'udp', tls: { crt_file: '/a', key_file: '/b' } }),
      (e: unknown) => e instanceof FluxoError && e.code === 'FLUXO_SYSLOG_TLS_OVER_UDP',
    );
    assert.throws(
      () => build({ tls: { crt_file: '/nonexistent/server.crt', key_file: '/nonexistent/server.key' } }),
      (e: unknown) =>
        e instanceof FluxoError && e.code === 'FLUXO_TLS_FILE' && /\/nonexistent\/server\.crt: ENOENT/.test(e.message),
    );
  });
});

describe('syslog source, tcp', { timeout: 60_000 }, () => {
  it('parses what util-linux logger sends: RFC 5424 by line, octet-counted, and RFC 3164', async (t) => {
    const logger = requireProgram(t, 'logger', 'bsdutils');
    if (!logger) return;
    const { rec, endpoint, port } = await startSource(t);
    assert.match(endpoint, /^tcp 127\.0\.0\.1:\d+$/);
    const base = ['-n', '127.0.0.1', '-P', String(port), '--tcp'];
    await run(logger, [...base, '--rfc5424', '-t', 'web', '-p', 'local3.warning', '--msgid', 'REQ', 'by line']);
    await rec.waitForEvents(1);
    await run(logger, [
      ...base,
      '--octet-count',
      '-t',
      'web',
      '-i',
      '--sd-id',
      'req@32473',
      '--sd-param',
      'status="503"',
      'octet counted',
    ]);
    await rec.waitForEvents(2);
    await run(logger, [...base, '--rfc3164', '-t', 'cron', '-p', 'cron.err', '-i', 'bsd style']);
    await rec.waitForEvents(3);
    const [a, b, c] = rec.events();
    assert.equal(a!.message, 'by line');
    assert.equal(a!.facility, 'local3');
    assert.equal(a!.severity, 'warning');
    assert.equal(a!.appname, 'web');
    assert.equal(a!.msgid, 'REQ');
    assert.ok(HOSTNAMES.includes(a!.hostname as string), String(a!.hostname));
    assert.equal(a!.host, '127.0.0.1');
    assert.equal(a!.source_type, 'syslog');
    assert.ok(Math.abs(Date.parse(a!.timestamp as string) - Date.now()) < 60_000, 'the timestamp is the sender’s');
    assert.equal(b!.message, 'octet counted');
    assert.equal(b!.facility, 'user');
    assert.equal(b!.severity, 'notice');
    assert.match(b!.procid as string, /^\d+$/);
    assert.deepEqual((b!.structured_data as Record<string, unknown>)['req@32473'], { status: '503' });
    assert.equal(c!.message, 'bsd style');
    assert.equal(c!.facility, 'cron');
    assert.equal(c!.severity, 'err');
    assert.equal(c!.appname, 'cron');
    assert.match(c!.procid as string, /^\d+$/);
    assert.equal(c!.msgid, undefined);
    assert.ok(Math.abs(Date.parse(c!.timestamp as string) - Date.now()) < 60_000);
    assert.equal(new Set(rec.events().map((e) => e._id)).size, 3);
  });

  it('receives 300 concurrent connections in both framings, every message once and in order', async (t) => {
    const { rec, port } = await startSource(t);
    const connections = 300;
    const perConnection = 30;
    let wireBytes = 0;
    const sockets = await Promise.all(Array.from({ length: connections }, () => client(t, port)));
    await Promise.all(
      sockets.map(async (socket, c) => {
        const octet = c % 2 === 0;
        for (let l = 0; l < perConnection; l++) {
          // octet counting carries a newline inside the message; a line cannot
          const msg = `<134>1 2025-03-05T14:02:17.5Z web-${c} nginx - - - conn ${c} line ${l}${octet ? '\nsecond line' : ''}`;
          const data = octet ? frame(msg) : `${msg}\n`;
          wireBytes += Buffer.byteLength(data);
          if (c % 3 === 2) {
            socket.write(data.slice(0, 7)); // split inside the length or the header, across turns
            await immediate();
            socket.write(data.slice(7));
          } else {
            socket.write(data);
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
      const m = /^conn (\d+) line (\d+)(\nsecond line)?$/.exec(e.message as string);
      assert.ok(m, `unexpected message ${JSON.stringify(e.message)}`);
      const c = Number(m[1]);
      assert.equal(Number(m[2]), next[c], `connection ${c} out of order or duplicated`);
      assert.equal(m[3] !== undefined, c % 2 === 0);
      assert.equal(e.hostname, `web-${c}`);
      next[c]!++;
    }
    assert.deepEqual(Object.keys(events[0]!), [
      'message',
      'timestamp',
      'host',
      'source_type',
      'facility',
      'severity',
      'hostname',
      'appname',
      '_id',
    ]);
    assert.equal(events[0]!.timestamp, '2025-03-05T14:02:17.500Z');
    assert.equal(new Set(events.map((e) => e._id)).size, events.length);
    const reported = rec.batches.reduce((s, b) => s + (b.options?.bytes ?? 0), 0);
    assert.equal(reported, wireBytes, 'wire bytes reported in emit options');
  });

  it('keeps a line that is not syslog whole in message, counted and logged', async (t) => {
    const { rec, port, logs } = await startSource(t);
    const socket = await client(t, port);
    socket.end('<13>1 - h a - - - fine\njust some text\n<13>1 - h a - - [broken\n');
    await rec.waitForEvents(3);
    const [fine, text, broken] = rec.events();
    assert.equal(fine!.facility, 'user');
    assert.deepEqual(
      { ...text, timestamp: 0, _id: 0 },
      { message: 'just some text', timestamp: 0, host: '127.0.0.1', source_type: 'syslog', _id: 0 },
    );
    assert.equal(broken!.message, '<13>1 - h a - - [broken');
    assert.equal(broken!.facility, undefined);
    assert.equal(await metric(rec, 'fluxo_syslog_parse_failures_total'), 2);
    const warning = logs.find((l) => l.msg === 'not a syslog message: kept raw');
    assert.ok(warning, 'a warning explains the failure');
    assert.equal(warning.sample, 'just some text');
    assert.match(String(warning.reason), /<PRI>|STRUCTURED-DATA|structured data/);
  });

  it('dead-letters an overlong message in either framing and goes on with the connection', async (t) => {
    const { rec, port, logs } = await startSource(t, { max_message_bytes: 1024 });
    const lines = await client(t, port);
    lines.write('<13>before\n');
    for (let i = 0; i < 5; i++) {
      lines.write('x'.repeat(1000));
      await immediate();
    }
    lines.write('\n<13>after\n');
    const octets = await client(t, port);
    octets.write(frame('<13>first') + frame(`<13>${'y'.repeat(3000)}`) + frame('<13>last'));
    await rec.waitForEvents(4);
    assert.deepEqual(messages(rec).sort(), ['after', 'before', 'first', 'last']);
    assert.equal(rec.deadLettered.length, 2);
    const sizes = rec.deadLettered.map((d) => d.events[0]!._original_bytes).sort();
    assert.deepEqual(sizes, [3004, 5000]);
    assert.equal(rec.deadLettered[0]!.reason, 'syslog message longer than max_message_bytes (1024 bytes)');
    assert.equal((rec.deadLettered[0]!.events[0]!.message as string).length, 1024, 'the first KiB is kept');
    assert.equal(await metric(rec, 'fluxo_syslog_messages_too_long_total'), 2);
    assert.ok(logs.some((l) => l.msg === 'syslog message too long: sent to the dead letter output' && l.bytes));
  });

  it('closes a connection whose octet counting breaks, with a logged reason; others go on', async (t) => {
    const { rec, port, logs } = await startSource(t);
    const bad = await client(t, port);
    const good = await client(t, port);
    bad.write(`${frame('<13>ok before')}12x garbage`);
    await once(bad, 'close');
    good.end(frame('<13>from the good one'));
    await rec.waitForEvents(2);
    assert.deepEqual(messages(rec).sort(), ['from the good one', 'ok before']);
    assert.equal(await metric(rec, 'fluxo_syslog_framing_errors_total'), 1);
    const log = logs.find((l) => l.msg === 'octet-counting framing error: closing the connection');
    assert.ok(log);
    assert.match(String(log.reason), /MSG-LEN 12 is followed by byte 0x78/);
  });

  it('refuses connections over max_connections, logs once and counts each', async (t) => {
    const { rec, port, logs } = await startSource(t, { max_connections: 2 });
    const first = await client(t, port);
    const second = await client(t, port);
    first.write('<13>from first\n');
    second.write('<13>from second\n');
    await rec.waitForEvents(2);
    assert.equal(await metric(rec, 'fluxo_syslog_open_connections'), 2);
    for (let i = 0; i < 3; i++) await once(await client(t, port), 'close');
    assert.equal(await metric(rec, 'fluxo_syslog_connections_rejected_total'), 3);
    const warnings = logs.filter((l) => l.msg === 'connection refused: max_connections reached');
    assert.equal(warnings.length, 1, 'rate-limited');
    assert.equal(warnings[0]!.max_connections, 2);
    first.end();
    await once(first, 'close');
    const fourth = await client(t, port);
    fourth.end('<13>from fourth\n');
    await rec.waitForEvents(3);
    assert.deepEqual(messages(rec).sort(), ['from first', 'from fourth', 'from second']);
  });

  it('stops reading a connection while the pipeline is blocked, then delivers everything', async (t) => {
    const { rec, port } = await startSource(t);
    rec.block();
    const socket = await client(t, port);
    let sent = 0;
    const chunk = () => {
      let text = '';
      for (let i = 0; i < 500; i++)
        text += frame(`<13>1 - h a - - - ${String(sent++).padStart(10, '0')} ${'.'.repeat(80)}`);
      return text;
    };
    socket.write(chunk());
    await rec.waitForEvents(1);
    await fillUntilSourceStopsReading(rec, socket, chunk, () => sent);
    rec.unblock();
    socket.end();
    await rec.waitForEvents(sent);
    const numbers = rec.events().map((e) => Number((e.message as string).slice(0, 10)));
    assert.deepEqual(
      numbers,
      Array.from({ length: sent }, (_, i) => i),
    );
  });

  it('stop() drops only an unfinished frame, counted, and waits for pending emits', async (t) => {
    const { rec, source, port } = await startSource(t);
    rec.block();
    const socket = await client(t, port);
    socket.write(`${frame('<13>complete')}40 <13>half a fra`);
    await rec.waitForEvents(1);
    let stopped = false;
    const stopping = source.stop().then(() => {
      stopped = true;
    });
    await once(socket, 'close');
    assert.equal(stopped, false, 'stop() waits while an emit is pending');
    rec.unblock();
    await stopping;
    assert.deepEqual(messages(rec), ['complete']);
    assert.equal(await metric(rec, 'fluxo_syslog_partial_messages_dropped_total'), 1);
    assert.equal(await metric(rec, 'fluxo_syslog_open_connections'), 0);
  });
});

describe('syslog source, udp', { timeout: 30_000 }, () => {
  it('parses what util-linux logger sends over UDP, RFC 5424 and RFC 3164', async (t) => {
    const logger = requireProgram(t, 'logger', 'bsdutils');
    if (!logger) return;
    const { rec, endpoint, port } = await startSource(t, { mode: 'udp' });
    assert.match(endpoint, /^udp 127\.0\.0\.1:\d+$/);
    const base = ['-n', '127.0.0.1', '-P', String(port), '--udp'];
    await run(logger, [...base, '--rfc5424', '-t', 'api', '-p', 'daemon.info', 'over udp 5424']);
    await rec.waitForEvents(1);
    await run(logger, [...base, '--rfc3164', '-t', 'api', '-p', 'mail.debug', 'over udp 3164']);
    await rec.waitForEvents(2);
    const [a, b] = rec.events();
    assert.equal(a!.message, 'over udp 5424');
    assert.equal(a!.facility, 'daemon');
    assert.equal(a!.severity, 'info');
    assert.equal(a!.appname, 'api');
    assert.ok(HOSTNAMES.includes(a!.hostname as string));
    assert.equal(a!.host, '127.0.0.1');
    assert.equal(b!.message, 'over udp 3164');
    assert.equal(b!.facility, 'mail');
    assert.equal(b!.severity, 'debug');
    assert.equal(b!.appname, 'api');
  });

  it('takes one message per datagram, newlines inside kept, trailing newline removed', async (t) => {
    const { rec, port } = await startSource(t, { mode: 'udp', max_message_bytes: 100 });
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    const send = (text: string) =>
      new Promise<void>((resolve, reject) => sender.send(text, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    await send('<13>1 - h a - - - two\nlines\n');
    await send(`<13>${'z'.repeat(200)}`);
    await send('<13>3164 style\r\n');
    await rec.waitForEvents(2);
    assert.deepEqual(messages(rec).sort(), ['3164 style', 'two\nlines']);
    assert.equal(rec.deadLettered.length, 1);
    assert.equal(rec.deadLettered[0]!.events[0]!._original_bytes, 204);
    assert.equal(await metric(rec, 'fluxo_syslog_messages_too_long_total'), 1);
  });
});

describe('syslog source, tls', { timeout: 60_000 }, () => {
  it('receives octet-counted syslog over TLS; mutual TLS refuses a client without certificate', async (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t));
    const { rec, endpoint, port } = await startSource(t, {
      tls: { crt_file: certs.serverCrt, key_file: certs.serverKey, ca_file: certs.caFile, verify_certificate: true },
    });
    assert.match(endpoint, /^tls 127\.0\.0\.1:\d+$/);
    const { readFileSync } = await import('node:fs');
    const ca = readFileSync(certs.caFile);

    const withCert = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca,
      cert: readFileSync(certs.clientCrt),
      key: readFileSync(certs.clientKey),
    });
    t.after(() => withCert.destroy());
    await once(withCert, 'secureConnect');
    withCert.end(frame('<13>1 2025-03-05T14:02:17Z web-7 app - - - secret\nmessage') + frame('<13>second'));
    await rec.waitForEvents(2);
    assert.deepEqual(messages(rec), ['secret\nmessage', 'second']);
    assert.equal(rec.events()[0]!.hostname, 'web-7');

    const withoutCert = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca });
    let refusal: Error | undefined;
    withoutCert.on('error', (e) => {
      refusal = e;
    });
    t.after(() => withoutCert.destroy());
    withoutCert.write(frame('<13>must not arrive'));
    await new Promise((resolve) => withoutCert.on('close', resolve));
    assert.match(String(refusal), /certificate required/);
    await untilMetric(rec, 'fluxo_component_errors_total', 1);
    assert.equal(rec.events().length, 2);
  });
});

describe('syslog source, tcp: deadlines against slow and idle connections (slowloris)', { timeout: 30_000 }, () => {
  /** A peer that sends an incomplete message, then one more byte every `ms`, never a newline. */
  async function trickler(t: TestContext, port: number, ms = 20) {
    const socket = await client(t, port);
    const closed = closedOrReset(socket);
    socket.write('<13>never ends');
    const timer = setInterval(() => socket.writable && socket.write('x'), ms);
    t.after(() => clearInterval(timer));
    return { socket, closed: closed.then(() => clearInterval(timer)) };
  }

  it('read_timeout closes connections whose message never completes; steady senders stay', async (t) => {
    const { rec, port, logs } = await startSource(t, { read_timeout: 200, idle_timeout: 0 });
    const steady = await client(t, port);
    let n = 0;
    const timer = setInterval(() => steady.write(`<13>steady ${n++}\n`), 20);
    t.after(() => clearInterval(timer));
    const slow = await Promise.all(Array.from({ length: 5 }, () => trickler(t, port)));
    await Promise.all(slow.map((s) => s.closed));
    assert.equal(await metric(rec, 'fluxo_syslog_connections_read_timeout_total'), 5);
    assert.equal(await metric(rec, 'fluxo_syslog_partial_messages_dropped_total'), 5);
    const warned = logs.filter((l) => String(l.msg).includes('an incomplete frame outlived read_timeout'));
    assert.equal(warned.length, 1, 'rate-limited');
    clearInterval(timer);
    await untilMetric(rec, 'fluxo_syslog_open_connections', 1);
    assert.equal(steady.destroyed, false, 'the steady sender was never closed');
    assert.ok(rec.events().some((e) => e.message === 'steady 0'));
  });

  it('idle_timeout closes a silent connection, never one waiting for the pipeline', async (t) => {
    const { rec, port } = await startSource(t, { idle_timeout: 100, read_timeout: 0 });
    rec.block();
    const waiting = await client(t, port);
    waiting.write('<13>held by a blocked pipeline\n');
    await untilMetric(rec, 'fluxo_syslog_open_connections', 1);
    const silent = await client(t, port);
    await once(silent, 'close');
    assert.equal(await metric(rec, 'fluxo_syslog_connections_idle_closed_total'), 1);
    assert.equal(waiting.destroyed, false, 'paused by backpressure is not idle');
    rec.unblock();
    await rec.waitForEvents(1);
    await once(waiting, 'close');
    assert.equal(await metric(rec, 'fluxo_syslog_connections_idle_closed_total'), 2);
  });

  it('at max_connections a new connection evicts the longest-idle one instead of being refused', async (t) => {
    const { rec, port, logs } = await startSource(t, {
      max_connections: 3,
      evict_idle_after: 0,
      idle_timeout: 0,
      read_timeout: 0,
    });
    const peers: Socket[] = [];
    for (const name of ['a', 'b', 'c']) {
      const s = await client(t, port);
      s.write(`<13>from ${name}\n`);
      await rec.waitForEvents(peers.length + 1);
      peers.push(s);
    }
    const closedA = once(peers[0]!, 'close');
    const d = await client(t, port);
    d.write('<13>from d\n');
    await rec.waitForEvents(4);
    await closedA;
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['from a', 'from b', 'from c', 'from d'],
    );
    assert.equal(await metric(rec, 'fluxo_syslog_connections_evicted_total'), 1);
    assert.equal(await metric(rec, 'fluxo_syslog_connections_rejected_total'), 0);
    assert.ok(logs.some((l) => String(l.msg).includes('evicted the longest-idle connection')));
    assert.equal(peers[1]!.destroyed || peers[2]!.destroyed, false);
  });
});
