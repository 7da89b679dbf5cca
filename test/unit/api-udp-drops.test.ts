import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PipelineTelemetry } from '../../src/api/telemetry.ts';
import { parseProcNetUdp, udpEndpoint, udpKernelDrops } from '../../src/api/udp-drops.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';

const PROC = [
  '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
  '  12: 0100007F:159A 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 17',
  '  13: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0',
  '',
].join('\n');

describe('UDP kernel drops from /proc/net/udp', () => {
  it('parses the address (host order), port and drops column; reads endpoints as the sources print them', () => {
    assert.deepEqual(
      [...parseProcNetUdp(PROC, false)],
      [
        ['127.0.0.1:5530', 17],
        ['0.0.0.0:53', 0],
      ],
    );
    assert.deepEqual(udpEndpoint('udp 127.0.0.1:5514'), { address: '127.0.0.1', port: 5514 });
    assert.deepEqual(udpEndpoint('udp [::1]:5514'), { address: '::1', port: 5514 });
    assert.equal(udpEndpoint('tcp 127.0.0.1:5514'), undefined);
    assert.equal(udpEndpoint(undefined), undefined);
  });

  it('counts what the kernel dropped from a real socket whose receive queue is full', async (t) => {
    if (!existsSync('/proc/net/udp')) {
      t.skip('no /proc/net/udp (not Linux)');
      return;
    }
    // A tiny receive queue, flooded in one event-loop turn: the receiver cannot read before the queue is full.
    const receiver = createSocket({ type: 'udp4', recvBufferSize: 4096 });
    await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', () => r()));
    t.after(() => receiver.close());
    const port = receiver.address().port;
    const endpoint = `udp 127.0.0.1:${port}`;
    assert.equal((await udpKernelDrops([{ id: 'u', endpoint }])).get('u'), 0);
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    const payload = Buffer.alloc(1000, 'x');
    let drops = 0;
    for (let burst = 0; burst < 50 && drops === 0; burst++) {
      for (let i = 0; i < 200; i++) sender.send(payload, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
      drops = (await udpKernelDrops([{ id: 'u', endpoint }])).get('u') ?? 0;
    }
    assert.ok(drops > 0, `kernel drops ${drops}`);
    // Another port's socket does not count.
    assert.equal(
      (await udpKernelDrops([{ id: 'v', endpoint: `udp 127.0.0.1:${port === 1 ? 2 : port - 1}` }])).get('v') ?? 0,
      0,
    );
  });
  it('the loss ledger of a UDP source shows the kernel’s drops under udp_kernel', async (t) => {
    if (!existsSync('/proc/net/udp')) {
      t.skip('no /proc/net/udp (not Linux)');
      return;
    }
    const receiver = createSocket({ type: 'udp4', recvBufferSize: 4096 });
    await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', () => r()));
    t.after(() => receiver.close());
    const endpoint = `udp 127.0.0.1:${receiver.address().port}`;
    const metrics = new PipelineMetrics({ defaultMetrics: false });
    metrics.forComponent('syslog_udp', 'source', 'syslog');
    const telemetry = new PipelineTelemetry({
      registry: metrics.registry,
      graph: () => [{ id: 'syslog_udp', kind: 'source', type: 'syslog', inputs: [], endpoint }],
      oldestUnsettled: () => new Map(),
      state: () => 'running',
    });
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    let drops = 0;
    for (let burst = 0; burst < 50 && drops === 0; burst++) {
      for (let i = 0; i < 200; i++) sender.send(Buffer.alloc(1000, 'y'), receiver.address().port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
      drops = (await telemetry.sample()).ledger[0]!.drops.udp_kernel;
    }
    const row = (await telemetry.sample()).ledger[0]!;
    assert.ok(row.drops.udp_kernel > 0, JSON.stringify(row));
    assert.equal(row.dropped, row.drops.udp_kernel);
    assert.equal(row.accepted, 0, 'datagrams the kernel dropped were never accepted');
  });
});
