import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectBuffer } from '../../src/buffers/disk/inspect.ts';
import { RECORD_HEADER_BYTES, readHeader, SEGMENT_HEADER_BYTES } from '../../src/buffers/disk/record.ts';
import { numbered } from '../helpers/components.ts';
import { recordingLogger, tempDir } from '../helpers/context.ts';
import { testPipeline, tick, until } from '../helpers/pipeline.ts';
import { metricValue, range, segmentFiles } from './fixtures/disk-buffer-harness.ts';

const fast = 'retry: { initial_backoff: 1ms, max_backoff: 5ms }';

function pipeline(t: { after: (fn: () => Promise<unknown>) => void }, dir: string, buffer: string, extra = '') {
  const p = testPipeline(
    `
sources: { in: { type: manual } }
sinks:
  out: { type: controlled, inputs: [in], ${fast}, buffer: ${buffer}${extra} }
`,
    dir,
  );
  // A test that fails half-way must not leave a pipeline running.
  t.after(() => p.topology.stop(100));
  return p;
}

/** Emits `batches` batches of `size` numbered events, one after the other (each accepted before the next). */
async function emitAll(p: ReturnType<typeof pipeline>, batches: number, size: number, first = 1): Promise<void> {
  for (let i = 0; i < batches; i++) await p.source('in').emit(numbered(first + i * size, size));
}

/** Record boundaries of a segment file: [offset, size] of each whole record. */
function records(file: string): [number, number][] {
  const raw = readFileSync(file);
  const out: [number, number][] = [];
  for (let at = SEGMENT_HEADER_BYTES; at + RECORD_HEADER_BYTES <= raw.length; ) {
    const { size } = readHeader(raw, at);
    if (at + size > raw.length) break;
    out.push([at, size]);
    at += size;
  }
  return out;
}

describe('disk buffer in a pipeline', { timeout: 60_000 }, () => {
  it('acknowledges the source once fsynced, before the sink delivers; a restart delivers the rest in order', async (t) => {
    const dir = tempDir(t);
    const first = pipeline(t, dir, '{ type: disk }');
    await first.topology.start();
    first.sink('out').behaviour = 'stall';
    await emitAll(first, 20, 5);
    await until(() => first.source('in').acks.length === 20, 'every batch acknowledged by the disk buffer');
    assert.deepEqual(new Set(first.source('in').acks), new Set(['delivered']));
    assert.equal(first.sink('out').written.length, 0, 'the sink delivered nothing');
    assert.equal(await first.topology.stop(100), false, 'the stalled sink did not drain');

    const second = pipeline(t, dir, '{ type: disk }');
    await second.topology.start();
    await until(() => second.sink('out').written.length === 100, 'replayed after the restart');
    assert.deepEqual(
      second.sink('out').written.map((e) => e.n),
      range(1, 100),
    );
    assert.equal(await second.topology.stop(5000), true);
    assert.equal((await inspectBuffer('out', join(dir, 'buffers', 'out'))).events, 0);
  });

  it('torn write and flipped byte: every record before the damage is delivered, the damage reported', async (t) => {
    const dir = tempDir(t);
    const buffer = '{ type: disk, max_segment_size: 1KiB }';
    const first = pipeline(t, dir, buffer);
    await first.topology.start();
    first.sink('out').behaviour = 'stall';
    await emitAll(first, 40, 5);
    await until(() => first.source('in').acks.length === 40, 'durable');
    await first.topology.stop(50);

    const bufferDir = join(dir, 'buffers', 'out');
    const files = segmentFiles(bufferDir).map((f) => join(bufferDir, f));
    assert.ok(files.length >= 4, `${files.length} segments`);
    // Flip one payload byte of the second record of the second segment (a corrupt record in the middle) ...
    const [flipAt, flipSize] = records(files[1]!)[1]!;
    const flippedFirstId = readHeader(readFileSync(files[1]!), flipAt).id;
    const raw = readFileSync(files[1]!);
    raw[flipAt + RECORD_HEADER_BYTES + Math.floor((flipSize - RECORD_HEADER_BYTES) / 2)]! ^= 0x20;
    writeFileSync(files[1]!, raw);
    // ... and cut the last segment in the middle of its last record (a write torn by a crash).
    const last = files[files.length - 1]!;
    const lastRecords = records(last);
    const [tornAt, tornSize] = lastRecords[lastRecords.length - 1]!;
    const tornId = readHeader(readFileSync(last), tornAt).id;
    truncateSync(last, tornAt + Math.floor(tornSize / 2));

    const report = await inspectBuffer('out', bufferDir);
    assert.deepEqual(
      report.damage.map((d) => [d.segment, d.offset, d.kind]),
      [
        [files[1]!.split('/').pop(), flipAt, 'corrupt'],
        [last.split('/').pop(), tornAt, 'torn_tail'],
      ],
    );
    assert.equal(report.damage[0]!.lostRecords, 1);

    const second = pipeline(t, dir, buffer);
    await second.topology.start();
    // Checked before the sink acknowledges what it holds: the segment is deleted once all of it is.
    assert.equal(statSync(last).size, tornAt, 'the torn tail was truncated at the last good record');
    // One record per batch of 5 events, ids from 1: record k holds events 5k-4 … 5k.
    const lost = new Set([...range(5 * flippedFirstId - 4, 5 * flippedFirstId), ...range(5 * tornId - 4, 200)]);
    const expected = range(1, 200).filter((n) => !lost.has(n));
    await until(() => second.sink('out').written.length >= expected.length, 'what survived delivered');
    await tick();
    assert.deepEqual(
      second.sink('out').written.map((e) => e.n),
      expected,
    );
    assert.equal(tornId, 40, 'the torn record was the last one');
    assert.equal(await metricValue(second.metrics.registry, 'fluxo_disk_buffer_corrupt_records_total'), 2);
    await second.topology.stop(5000);
  });

  it('full with block: the source waits while the sink is down and resumes when it delivers', async (t) => {
    const dir = tempDir(t);
    const p = pipeline(t, dir, '{ type: disk, max_size: 2KiB, when_full: block }');
    await p.topology.start();
    p.sink('out').behaviour = 'stall';
    let blocked: Promise<void> | undefined;
    let emitted = 0;
    for (let i = 0; i < 200 && !blocked; i++) {
      let done = false;
      const emit = p.source('in').emit(numbered(i * 5 + 1, 5));
      emitted += 5;
      void emit.then(() => {
        done = true;
      });
      await tick();
      await tick();
      if (!done) blocked = emit;
    }
    assert.ok(blocked, 'the source had to wait');
    assert.ok(emitted > 10 && emitted < 200, `blocked after ${emitted} events`);
    const held = await metricValue(p.metrics.registry, 'fluxo_buffer_bytes');
    assert.ok(held <= 2048, `${held} bytes held`);
    p.sink('out').release();
    await blocked;
    await until(() => p.sink('out').written.length === emitted, 'everything delivered');
    assert.deepEqual(
      p.sink('out').written.map((e) => e.n),
      range(1, emitted),
    );
    await until(() => p.source('in').acks.length === emitted / 5, 'acknowledged');
    await p.topology.stop(5000);
  });

  it('full with drop_newest: the source never waits, the drops are counted exactly', async (t) => {
    const dir = tempDir(t);
    const p = pipeline(t, dir, '{ type: disk, max_size: 2KiB, when_full: drop_newest }');
    await p.topology.start();
    p.sink('out').behaviour = 'stall';
    for (let i = 0; i < 60; i++) {
      const emit = p.source('in').emit(numbered(i * 5 + 1, 5));
      let done = false;
      void emit.then(() => {
        done = true;
      });
      await tick();
      assert.ok(done, `emit ${i} accepted at once`);
    }
    const dropped = await metricValue(p.metrics.registry, 'fluxo_buffer_dropped_events_total');
    assert.ok(dropped > 0 && dropped < 300 && dropped % 5 === 0, `${dropped} dropped`);
    p.sink('out').release();
    await until(() => p.sink('out').written.length === 300 - dropped, 'the rest delivered');
    await tick();
    const written = p.sink('out').written.map((e) => e.n as number);
    assert.equal(new Set(written).size, written.length, 'no duplicates');
    assert.equal(written.length + dropped, 300, 'delivered + dropped = sent, exactly');
    await until(() => p.source('in').acks.length === 60, 'every batch settled');
    assert.deepEqual(new Set(p.source('in').acks), new Set(['delivered']));
    await p.topology.stop(5000);
  });

  it('a reload of the sink hands the buffer over: nothing lost, nothing twice', async (t) => {
    const dir = tempDir(t);
    const yaml = (batch: number) => `
shutdown_timeout: 200ms
sources: { in: { type: manual } }
sinks:
  out: { type: controlled, inputs: [in], ${fast}, buffer: { type: disk }, batch: { max_events: ${batch} } }
`;
    const p = testPipeline(yaml(10), dir);
    t.after(() => p.topology.stop(100));
    await p.topology.start();
    p.sink('out').behaviour = 'stall';
    await emitAll(p, 10, 5);
    await until(() => p.source('in').acks.length === 10, 'durable');
    await p.topology.reload(p.load(yaml(20)));
    await emitAll(p, 10, 5, 51);
    p.sink('out').release();
    await until(() => p.sink('out').written.length >= 100, 'all delivered by the new sink');
    await tick();
    assert.deepEqual(
      p.sink('out').written.map((e) => e.n),
      range(1, 100),
    );
    assert.equal(await p.topology.stop(5000), true);
  });
});

describe('disk buffer of a sink no longer configured', () => {
  it('is left on disk, untouched, and a warning at start says what it holds', async (t) => {
    const dir = tempDir(t);
    const first = pipeline(t, dir, '{ type: disk, max_size: 1MiB }');
    await first.topology.start();
    first.sink('out').behaviour = 'stall';
    await emitAll(first, 4, 5);
    await first.topology.stop(100);
    const before = await inspectBuffer('out', join(dir, 'buffers', 'out'));
    assert.equal(before.events, 20, 'the stalled sink left its 20 events in the buffer');

    const { logger, lines } = recordingLogger();
    const renamed = testPipeline(
      `
sources: { in: { type: manual } }
sinks: { renamed: { type: controlled, inputs: [in], ${fast}, buffer: { type: disk, max_size: 1MiB } } }
`,
      dir,
      [],
      logger,
    );
    t.after(() => renamed.topology.stop(100));
    await renamed.topology.start();
    const warning = lines.find((l) => String(l.msg).startsWith('disk buffer of sink out holds undelivered events'));
    assert.ok(warning, `a warning about the orphan buffer; logged: ${lines.map((l) => l.msg).join(' | ')}`);
    assert.equal(warning.level, 40);
    assert.equal(warning.events, 20);
    assert.equal(warning.buffer_dir, join(dir, 'buffers', 'out'));
    assert.ok(!lines.some((l) => String(l.msg).includes('sink renamed holds')), 'no warning about the configured sink');
    const after = await inspectBuffer('out', join(dir, 'buffers', 'out'));
    assert.equal(after.events, 20, 'left untouched');

    // Configured again under its id, the sink gets them: nothing was lost by the rename.
    await renamed.topology.stop(100);
    const back = pipeline(t, dir, '{ type: disk, max_size: 1MiB }');
    await back.topology.start();
    await until(() => back.sink('out').written.length === 20, 'the 20 events delivered after the rename back');
  });

  it('a reload that removes the sink before it delivered everything warns too', async (t) => {
    const dir = tempDir(t);
    const { logger, lines } = recordingLogger();
    const yaml = (id: string) => `
shutdown_timeout: 200ms
sources: { in: { type: manual } }
sinks: { ${id}: { type: controlled, inputs: [in], ${fast}, buffer: { type: disk, max_size: 1MiB } } }
`;
    const p = testPipeline(yaml('out'), dir, [], logger);
    t.after(() => p.topology.stop(100));
    await p.topology.start();
    p.sink('out').behaviour = 'stall';
    await emitAll(p, 3, 5);
    const warned = () => lines.some((l) => String(l.msg).startsWith('disk buffer of sink out holds undelivered'));
    assert.equal(warned(), false);
    await p.topology.reload(p.load(yaml('renamed')));
    assert.ok(warned(), `a warning after the reload; logged: ${lines.map((l) => l.msg).join(' | ')}`);
    const report = await inspectBuffer('out', join(dir, 'buffers', 'out'));
    assert.equal(report.events, 15, 'the stalled sink left its 15 events on disk');
  });
});
