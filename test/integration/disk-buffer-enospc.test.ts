import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { testPipeline, tick, until } from '../helpers/pipeline.ts';
import { metricValue, range } from './fixtures/disk-buffer-harness.ts';

/**
 * Mounts a tmpfs of `size` on `dir`. Returns a reason to skip where mounting is not permitted (no root, a
 * container without CAP_SYS_ADMIN); in CI (CI=true, run as root) a failure to mount fails the test instead.
 */
function mountTmpfs(dir: string, size: string): string | undefined {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status === 0) return undefined;
  const reason = `cannot mount a tmpfs to fill (${(r.stderr || r.error?.message || '').trim()}): needs root`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI runs as root and must be able to`);
  return reason;
}

const payload = 'x'.repeat(400);
const batchOf = (from: number, n: number): Event[] =>
  range(from, from + n - 1).map((i) => ({ message: `${i} ${payload}`, n: i }));

describe('disk buffer on a full disk', { timeout: 60_000 }, () => {
  it('ENOSPC holds new events back like block, acknowledges nothing unwritten, and recovers when space returns', async (t) => {
    const mnt = mkdtempSync(join(tmpdir(), 'fluxo-enospc-'));
    const skip = mountTmpfs(mnt, '256k');
    t.after(() => {
      if (!skip) spawnSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    });
    if (skip) {
      t.skip(skip);
      return;
    }
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  out:
    type: controlled
    inputs: [in]
    retry: { initial_backoff: 1ms, max_backoff: 5ms }
    buffer: { type: disk, max_size: 64MiB, max_segment_size: 32KiB }
`,
      mnt,
    );
    t.after(() => p.topology.stop(100));
    await p.topology.start();
    const sink = p.sink('out');
    sink.behaviour = 'stall';
    const registry = p.metrics.registry;

    // Fill the 256 KiB file system (~10 KiB per batch, far below max_size) until a write fails.
    let batches = 0;
    while (batches < 2000 && (await metricValue(registry, 'fluxo_disk_buffer_disk_full')) === 0) {
      void p.source('in').emit(batchOf(batches * 20 + 1, 20));
      batches++;
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_disk_full'), 1, `disk full after ${batches} batches`);
    // From now on the source is held back, as with when_full: block.
    const blocked = p.source('in').emit(batchOf(batches * 20 + 1, 20));
    batches++;
    let accepted = false;
    void blocked.then(() => {
      accepted = true;
    });
    await tick();
    await tick();
    assert.equal(accepted, false, 'the source was held back');
    await until(() => sink.attempts > 0, 'the sink got the first batch');
    const errors = await p.metrics.registry.getSingleMetricAsString('fluxo_component_errors_total');
    assert.match(errors, /component_id="out".*error_type="disk_full"\} [1-9]/);
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_disk_full'), 1);
    const acks = p.source('in').acks;
    assert.ok(acks.length < batches, `${acks.length} of ${batches} batches acknowledged: not the unwritten ones`);
    assert.ok(!acks.includes('failed'));
    const writtenBefore = await metricValue(registry, 'fluxo_disk_buffer_written_events_total');
    assert.equal(writtenBefore, acks.length * 20, 'acknowledged = written and fsynced, nothing more');

    // The sink comes back: acknowledged segments are deleted, space returns, the held-back batches get written.
    sink.release();
    await blocked;
    await until(() => p.source('in').acks.length === batches, 'every batch written and acknowledged', 30_000);
    await until(() => sink.written.length === batches * 20, 'everything delivered', 30_000);
    await tick();
    assert.deepEqual(
      sink.written.map((e) => e.n),
      range(1, batches * 20),
    );
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_disk_full'), 0);
    assert.deepEqual(new Set(p.source('in').acks), new Set(['delivered']));
    assert.equal(await p.topology.stop(5000), true);
  });
});
