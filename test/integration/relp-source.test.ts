import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { relpSource } from '../../src/sources/relp.ts';
import { tempDir } from '../helpers/context.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';
import { RelpTestClient } from '../helpers/relp-client.ts';
import { metricValue } from './fixtures/disk-buffer-harness.ts';

const MSG = (n: number) => `<158>1 2026-12-02T04:00:00.000Z web-042 webapp 77 - - request ${n}`;

/** A real Topology: relp source on a free port → the test's `controlled` sink (and dead letters to another). */
async function start(t: TestContext, options = '') {
  const dir = tempDir(t);
  const p = testPipeline(
    `
sources: { in: { type: relp, address: "127.0.0.1:0"${options} } }
sinks:
  out: { type: controlled, inputs: [in] }
  dead: { type: controlled, inputs: [dead_letter] }
`,
    dir,
    [relpSource],
  );
  await p.topology.start();
  t.after(() => p.topology.stop(100));
  const endpoint = p.topology.describe().sources.find((s) => s.id === 'in')!.endpoint!;
  const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
  const clients: RelpTestClient[] = [];
  const client = async () => {
    const c = await RelpTestClient.connect(port);
    clients.push(c);
    return c;
  };
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  return { p, port, client, out: p.sink('out'), metric: (name: string) => metricValue(p.metrics.registry, name) };
}

/** Lets the server answer if it (wrongly) were going to: several turns and a few milliseconds. */
const settleTime = () => new Promise((r) => setTimeout(r, 150));

describe('relp source', () => {
  it('answers open with its offers, and each syslog frame only after the sink settled it, in txnr order', async (t) => {
    const { client, out } = await start(t);
    out.behaviour = 'stall';
    const c = await client();
    const open = await c.open();
    assert.equal(open.data.toString(), '200 OK\nrelp_version=0\nrelp_software=fluxo\ncommands=syslog');

    // Two frames in one write, a third split across two writes (inside its header and its DATA).
    const a = c.frame('syslog', MSG(1));
    const b = c.frame('syslog', MSG(2));
    const third = c.frame('syslog', MSG(3));
    c.write(Buffer.concat([a.bytes, b.bytes]));
    await out.waitForAttempts(1);
    c.write(third.bytes.subarray(0, 3));
    await settleTime();
    c.write(third.bytes.subarray(3, 20));
    c.write(third.bytes.subarray(20));
    await settleTime();
    assert.deepEqual(
      c.answers().map((r) => r.txnr),
      [open.txnr],
      'no syslog frame is answered before its sink settled',
    );

    out.release();
    await c.response(third.txnr);
    assert.deepEqual(c.answers(), [
      { txnr: open.txnr, text: open.data.toString() },
      { txnr: a.txnr, text: '200 OK' },
      { txnr: b.txnr, text: '200 OK' },
      { txnr: third.txnr, text: '200 OK' },
    ]);
    assert.deepEqual(
      out.written.map((e) => e.message),
      ['request 1', 'request 2', 'request 3'],
    );
    const e = out.written[0]!;
    assert.equal(e.source_type, 'relp');
    assert.equal(e.host, '127.0.0.1');
    assert.equal(e.hostname, 'web-042');
    assert.equal(e.appname, 'webapp');
    assert.equal(e.procid, '77');
    assert.equal(e.facility, 'local3');
    assert.equal(e.severity, 'info');
    assert.equal(e.timestamp, '2026-12-02T04:00:00.000Z');
    assert.match(String(e._id), /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    assert.equal(new Set(out.written.map((x) => x._id)).size, 3);
  });

  it('the frames of one read are one batch (one sink write), answered in txnr order', async (t) => {
    const { client, out } = await start(t);
    const c = await client();
    await c.open();
    const frames = Array.from({ length: 50 }, (_, i) => c.frame('syslog', MSG(i + 1)));
    c.write(Buffer.concat(frames.map((f) => f.bytes)));
    await c.response(frames[49]!.txnr);
    assert.equal(out.writes, 1, 'one read turn, one batch, one write');
    assert.deepEqual(
      c
        .answers()
        .slice(1)
        .map((r) => r.txnr),
      frames.map((f) => f.txnr),
    );
  });

  it('a batch that failed (the pipeline stopped before the sink delivered it) gets no 200: the connection closes', async (t) => {
    const { client, out, p, metric } = await start(t);
    out.behaviour = 'stall';
    const c = await client();
    await c.open();
    const txnr = c.send('syslog', MSG(1));
    await out.waitForAttempts(1);
    assert.equal(await p.topology.stop(100), false, 'the stalled sink could not drain');
    await c.waitClosed();
    assert.deepEqual(
      c.answers().filter((r) => r.txnr === txnr),
      [],
      'no answer for the undelivered frame, so rsyslog resends it',
    );
    assert.equal(await metric('fluxo_relp_unacknowledged_batches_total'), 1);
  });

  it('a graceful stop answers what was delivered, then sends serverclose', async (t) => {
    const { client, out, p } = await start(t);
    out.behaviour = 'stall';
    const c = await client();
    await c.open();
    const txnr = c.send('syslog', MSG(1));
    await out.waitForAttempts(1);
    const stopped = p.topology.stop(5000);
    await settleTime();
    out.release();
    assert.equal(await stopped, true);
    await c.waitClosed();
    assert.deepEqual(
      c.frames.map((f) => [f.txnr, f.command, f.data.toString()]),
      [
        [1, 'rsp', '200 OK\nrelp_version=0\nrelp_software=fluxo\ncommands=syslog'],
        [txnr, 'rsp', '200 OK'],
        [0, 'serverclose', ''],
      ],
    );
  });

  it('close is answered after the pending frames, then the server closes', async (t) => {
    const { client } = await start(t);
    const c = await client();
    await c.open();
    const s = c.frame('syslog', MSG(1));
    const close = c.frame('close');
    c.write(Buffer.concat([s.bytes, close.bytes]));
    await c.waitClosed();
    assert.deepEqual(c.answers().slice(1), [
      { txnr: s.txnr, text: '200 OK' },
      { txnr: close.txnr, text: '200 OK' },
    ]);
  });

  for (const [name, bytes] of [
    ['a TXNR that is not a number', 'x2 syslog 3 abc\n'],
    ['a DATALEN that is not a number', '2 syslog 3x abc\n'],
    ['DATA longer than DATALEN (no LF where the frame ends)', '2 syslog 3 abcd\n'],
    ['a command before open', null],
  ] as const) {
    it(`${name}: a protocol error, counted; the connection closes and the source keeps serving`, async (t) => {
      const { client, metric, out } = await start(t);
      const c = await client();
      if (bytes === null) c.send('syslog', MSG(1));
      else {
        await c.open();
        c.write(bytes);
      }
      await c.waitClosed();
      assert.equal(await metric('fluxo_relp_protocol_errors_total'), 1);
      const d = await client();
      await d.open();
      await d.response(d.send('syslog', MSG(7)));
      assert.deepEqual(
        out.written.map((e) => e.message),
        ['request 7'],
      );
    });
  }

  it('a message over max_message_bytes goes to the dead letter output with its first KiB, and is answered', async (t) => {
    const { client, p, out, metric } = await start(t, ', max_message_bytes: 2KiB');
    const c = await client();
    await c.open();
    const long = `<13>${'x'.repeat(5000)}`;
    const txnr = c.send('syslog', long);
    const after = c.send('syslog', MSG(2));
    assert.equal((await c.response(txnr)).data.toString(), '200 OK');
    await c.response(after);
    await until(() => p.sink('dead').written.length === 1, 'dead-lettered');
    const dead = p.sink('dead').written[0]!;
    assert.equal(dead._original_bytes, 5004);
    assert.equal(String(dead.message).length, 1024);
    assert.deepEqual(
      out.written.map((e) => e.message),
      ['request 2'],
    );
    assert.equal(await metric('fluxo_relp_messages_too_long_total'), 1);
  });

  it('an unknown command is answered 500 and the session goes on', async (t) => {
    const { client } = await start(t);
    const c = await client();
    await c.open();
    const txnr = c.send('starttls');
    assert.match((await c.response(txnr)).data.toString(), /^500 /);
    assert.equal((await c.response(c.send('syslog', MSG(1)))).data.toString(), '200 OK');
  });

  it('idle_timeout closes an idle session (counted); a session owing answers is not idle', async (t) => {
    const { client, metric, out } = await start(t, ', idle_timeout: 150ms, read_timeout: 0s');
    out.behaviour = 'stall';
    const owing = await client();
    await owing.open();
    const pending = owing.frame('syslog', MSG(1));
    owing.write(pending.bytes);
    await out.waitForAttempts(1);
    const idle = await client();
    await idle.open();
    const started = Date.now();
    await idle.waitClosed(5_000);
    assert.ok(Date.now() - started >= 100, `closed after ${Date.now() - started} ms, not before idle_timeout`);
    assert.equal(await metric('fluxo_relp_connections_idle_closed_total'), 1);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(owing.closed, false, 'waiting for its answer is not idleness');
    out.release();
    await owing.response(pending.txnr);
  });

  it('read_timeout closes a session whose frame trickles in; at max_connections the longest-idle one is evicted', async (t) => {
    const { client, metric } = await start(t, ', read_timeout: 150ms, max_connections: 2, evict_idle_after: 0s');
    const slow = await client();
    await slow.open();
    slow.write('2 syslog 100 only a part');
    await slow.waitClosed(5_000);
    assert.equal(await metric('fluxo_relp_connections_read_timeout_total'), 1);
    assert.equal(await metric('fluxo_relp_partial_frames_dropped_total'), 1);
    const a = await client();
    await a.open();
    const b = await client();
    await b.open();
    const c = await client();
    await c.open();
    await a.waitClosed(5_000);
    assert.equal(await metric('fluxo_relp_connections_evicted_total'), 1);
    assert.equal(b.closed, false);
  });
});
