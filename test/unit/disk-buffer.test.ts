import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { inspectBuffer } from '../../src/buffers/disk/inspect.ts';
import { Ledger, readLedger } from '../../src/buffers/disk/ledger.ts';
import {
  crcMatches,
  decodePayload,
  encodeRecord,
  RECORD_HEADER_BYTES,
  RecordEncoder,
  readHeader,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  sealRecord,
  segmentFileName,
} from '../../src/buffers/disk/record.ts';
import type { AckStatus } from '../../src/core/ack.ts';
import type { Event } from '../../src/core/event.ts';
import { BufferClosedError } from '../../src/core/sink/buffer.ts';
import { tempDir } from '../helpers/context.ts';
import {
  drain,
  metricValue,
  numberedBatch,
  openBuffer,
  pushRecords,
  range,
  segmentFiles,
  takeEvents,
  trackedBatch,
  trackedBatchOf,
} from '../integration/fixtures/disk-buffer-harness.ts';

const recordSize = (from: number, count: number) => encodeRecord(numberedBatch(from, count).events).length;

describe('disk buffer records', { timeout: 10_000 }, () => {
  it('CRC32C is the Castagnoli CRC of RFC 3720 (B.4 test vectors)', () => {
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });

  it('round-trips a batch; a flipped bit anywhere after the CRC field fails the check', () => {
    const events = [
      { message: 'héllo', n: 1 },
      { message: 'wörld', nested: { a: [1, 2] } },
    ];
    const frame = encodeRecord(events);
    sealRecord(frame, 2 ** 40 + 7, 1_700_000_000_123.5, events.length);
    const h = readHeader(frame, 0);
    assert.deepEqual(h, { size: frame.length, id: 2 ** 40 + 7, writtenAt: 1_700_000_000_123.5, count: 2 });
    assert.ok(crcMatches(frame, 0, h.size));
    assert.deepEqual(decodePayload(frame, 0, h), events);
    for (const at of [8, 16, 24, RECORD_HEADER_BYTES, frame.length - 1]) {
      const copy = Buffer.from(frame);
      copy[at]! ^= 0x04;
      assert.equal(crcMatches(copy, 0, h.size), false, `flip at ${at}`);
    }
  });

  it('the encoder writes JSON lines, the same bytes as encodeRecord, into slabs or, when large, a buffer of its own', () => {
    const encoder = new RecordEncoder();
    const odd = [{ message: 'línea "quoted"\nnext\u2028', n: 1, emoji: '😀' }, { message: 'x'.repeat(300), n: 2 }, {}];
    // The header is left for sealRecord: the payloads are what must match.
    const payloadOf = (b: Buffer) => b.subarray(RECORD_HEADER_BYTES);
    const small = encoder.encode(odd);
    assert.ok(small.slab !== undefined);
    assert.deepEqual(payloadOf(small.bytes), payloadOf(encodeRecord(odd)));
    const payload = small.bytes.subarray(RECORD_HEADER_BYTES).toString('utf8');
    assert.deepEqual(
      payload
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l) as unknown),
      odd,
    );
    // Multi-byte text near the end of a slab: measured exactly, it goes to a fresh slab rather than over the end.
    const wide = Array.from({ length: 2000 }, (_, n) => ({ message: 'é'.repeat(200), n }));
    const frames = Array.from({ length: 12 }, () => encoder.encode(wide));
    const expected = payloadOf(encodeRecord(wide));
    for (const f of frames) assert.deepEqual(payloadOf(f.bytes), expected);
    assert.ok(new Set(frames.map((f) => f.slab)).size > 1, 'rolled to another slab');
    const large = encoder.encode(Array.from({ length: 3000 }, (_, n) => ({ message: 'y'.repeat(400), n })));
    assert.equal(large.slab, undefined);
    assert.equal(
      decodePayload(large.bytes, 0, { ...readHeader(large.bytes, 0), size: large.bytes.length, count: 3000 }).length,
      3000,
    );
  });

  it('reads version 1 segments, whose payload is one JSON array', (t) => {
    const dir = tempDir(t);
    const events = [
      { message: 'old', n: 1 },
      { message: 'format', n: 2 },
    ];
    const json = Buffer.from(JSON.stringify(events));
    const record = Buffer.alloc(RECORD_HEADER_BYTES + json.length);
    json.copy(record, RECORD_HEADER_BYTES);
    sealRecord(record, 1, Date.now(), events.length);
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    SEGMENT_MAGIC.copy(header);
    header.writeUInt32LE(1, 8);
    writeFileSync(join(dir, segmentFileName(1)), Buffer.concat([header, record]));
    const { buffer } = openBuffer(dir, {}, t);
    return buffer.open().then(async () => assert.deepEqual(await drain(buffer), [1, 2]));
  });
});

describe('DiskBuffer', { timeout: 60_000 }, () => {
  it('releases a batch’s share only once its record is written and fsynced', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, {}, t);
    await buffer.open();
    const { batch, settled } = trackedBatch(1, 3);
    let onDisk = '';
    let fsyncsAtSettle = -1;
    const observed = settled.then(async (status) => {
      onDisk = segmentFiles(dir)
        .map((f) => readFileSync(join(dir, f), 'latin1'))
        .join('');
      fsyncsAtSettle = await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count');
      return status;
    });
    assert.equal(buffer.push(batch), undefined, 'accepted at once');
    assert.equal(batch.ack.settled, false, 'not durable yet when push() returns');
    assert.equal(await observed, 'delivered');
    assert.match(onDisk, /"message":"line 3","n":3/);
    assert.equal(fsyncsAtSettle, 1);
    assert.deepEqual(await drain(buffer), [1, 2, 3]);
  });

  it('splits a batch of more than 10,000 events into records of at most 10,000, acknowledged once (issue 13)', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, {}, t);
    await buffer.open();
    let settles = 0;
    const { batch, settled } = trackedBatch(0, 25_000);
    void settled.then(() => settles++);
    const wait = buffer.push(batch);
    if (wait) await wait;
    assert.equal(await settled, 'delivered');
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_written_events_total'), 25_000);
    const { records } = await inspectBuffer('s', dir);
    assert.equal(records, 3, 'three records: 10,000 + 10,000 + 5,000');
    assert.deepEqual(await drain(buffer), range(0, 24_999));
    assert.equal(settles, 1);
  });

  it('group commit: batches pushed during one turn share one write and one fsync', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, {}, t);
    await buffer.open();
    const tracked = range(0, 49).map((i) => trackedBatch(i * 10, 10));
    for (const { batch } of tracked) assert.equal(buffer.push(batch), undefined);
    assert.deepEqual(new Set(await Promise.all(tracked.map((x) => x.settled))), new Set(['delivered']));
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 1);
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_written_events_total'), 500);
    assert.deepEqual(await drain(buffer), range(0, 499));
  });

  for (const commitIntervalMs of [0, 300]) {
    it(`commit_interval ${commitIntervalMs}: the first commit after a pause goes at once; ${commitIntervalMs ? 'later arrivals within the interval share the next' : 'each arrival in its own turn commits alone'}`, async (t) => {
      const dir = tempDir(t);
      const { buffer, registry } = openBuffer(dir, { commitIntervalMs }, t);
      await buffer.open();
      const first = trackedBatch(1, 10);
      buffer.push(first.batch);
      await first.settled;
      assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 1);
      // Two more, a turn apart each, right after the first commit.
      const later = [trackedBatch(11, 10), trackedBatch(21, 10)];
      for (const x of later) {
        buffer.push(x.batch);
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(later.map((x) => x.settled));
      assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), commitIntervalMs ? 2 : 3);
      assert.deepEqual(await drain(buffer), range(1, 30));
    });
  }

  it('write_delay: what the sink delivers within the delay is never written; its shares settle at the delivery', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, { writeDelayMs: 60_000 }, t);
    await buffer.open();
    const tracked = [trackedBatch(1, 10), trackedBatch(11, 10), trackedBatch(21, 10)];
    for (const x of tracked) buffer.push(x.batch);
    const batches = await takeEvents(buffer, 30);
    assert.deepEqual(
      batches.flatMap((b) => b.events.map((e) => e.n)),
      range(1, 30),
    );
    // The sink has the lines as they will be written.
    assert.equal(
      batches.map((b) => b.ndjson!.toString()).join(''),
      tracked.flatMap((x) => x.batch.events.map((e) => `${JSON.stringify(e)}\n`)).join(''),
    );
    let settledEarly = false;
    void Promise.all(tracked.map((x) => x.settled)).then(() => {
      settledEarly = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settledEarly, false, 'shares settled before the sink delivered or anything was written');
    for (const b of batches) b.ack.release('delivered');
    assert.deepEqual(await Promise.all(tracked.map((x) => x.settled)), ['delivered', 'delivered', 'delivered']);
    assert.equal(buffer.events, 0);
    await drain(buffer);
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 0);
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_written_events_total'), 0);
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_unwritten_events_total'), 30);
    assert.deepEqual(segmentFiles(dir), []);
  });

  it('write_delay: a record the sink holds past the delay is written then, and replayed after a restart', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, { writeDelayMs: 40 }, t);
    await buffer.open();
    const first = trackedBatch(1, 10);
    buffer.push(first.batch);
    const [held] = await takeEvents(buffer, 10);
    // Not delivered: the share settles once the record is durable, after the delay.
    assert.equal(await first.settled, 'delivered');
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 1);
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_written_events_total'), 10);
    // The sink gives up (a shutdown); the next start replays the record from disk.
    held!.ack.release('failed');
    buffer.abort();
    await buffer.closed;
    const again = openBuffer(dir, { writeDelayMs: 40 }, t).buffer;
    await again.open();
    assert.deepEqual(await drain(again), range(1, 10));
  });

  it('write_delay: closing writes at once what waits for its delay', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, { writeDelayMs: 600_000 }, t);
    await buffer.open();
    const x = trackedBatch(1, 10);
    buffer.push(x.batch);
    await new Promise((r) => setImmediate(r));
    buffer.close();
    assert.equal(await x.settled, 'delivered');
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 1);
    assert.deepEqual(await drain(buffer), range(1, 10));
  });

  it('write_delay: past the memory budget records go to disk at once and the sink gets everything in order', async (t) => {
    const dir = tempDir(t);
    const size = recordSize(1, 10);
    const { buffer, registry } = openBuffer(dir, { writeDelayMs: 600_000, memoryBytes: size * 3 }, t);
    await buffer.open();
    const tracked = Array.from({ length: 8 }, (_, i) => trackedBatch(1 + i * 10, 10));
    for (const x of tracked) buffer.push(x.batch);
    // Three fit in memory; the five after them are written at once, and so are the three before them (the log
    // is written in order), without waiting for the delay.
    assert.deepEqual(
      await Promise.all(tracked.map((x) => x.settled)),
      tracked.map(() => 'delivered'),
    );
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_written_events_total'), 80);
    assert.deepEqual(await drain(buffer), range(1, 80));
  });

  it('hands records out in order, several per take up to maxEvents (at least one)', async (t) => {
    const dir = tempDir(t);
    const { buffer } = openBuffer(dir, {}, t);
    await buffer.open();
    for (let i = 0; i < 6; i++) buffer.push(numberedBatch(i * 4 + 1, 4));
    const first = (await buffer.take(10))!;
    assert.deepEqual(
      first.map((b) => b.events.length),
      [4, 4],
    );
    const second = (await buffer.take(2))!;
    assert.equal(second.length, 1, 'a record is never split');
    for (const b of [...first, ...second]) b.ack.release('delivered');
    assert.deepEqual(await drain(buffer), range(13, 24));
  });

  it('acknowledgements settled out of order advance over the contiguous prefix only', async (t) => {
    const dir = tempDir(t);
    let run = openBuffer(dir, {}, t);
    await run.buffer.open();
    for (let i = 0; i < 3; i++) run.buffer.push(numberedBatch(i * 5 + 1, 5));
    const [a, b, c] = await takeEvents(run.buffer, 15, 5);
    c!.ack.release('delivered');
    b!.ack.release('delivered');
    assert.equal(run.buffer.events, 15, 'nothing acknowledged while the first is out');
    run.buffer.abort();
    a!.ack.release('failed');
    await run.buffer.closed;
    // The third was delivered, but not the first: the restart replays from the first, the third again.
    run = openBuffer(dir, {}, t);
    await run.buffer.open();
    assert.equal(run.buffer.events, 15);
    const again = await takeEvents(run.buffer, 15, 5);
    again[1]!.ack.release('delivered');
    again[0]!.ack.release('delivered');
    assert.equal(run.buffer.events, 5, 'the first two are acknowledged together once the first is');
    again[2]!.ack.release('delivered');
    assert.equal(run.buffer.events, 0);
    assert.deepEqual(await drain(run.buffer), []);
  });

  it('replays what the sink did not acknowledge, in order, after a restart', async (t) => {
    const dir = tempDir(t);
    let run = openBuffer(dir, {}, t);
    await run.buffer.open();
    await pushRecords(run.buffer, 10);
    const taken = await takeEvents(run.buffer, 40, 10);
    for (const b of taken) b.ack.release('delivered');
    // Handed out but not acknowledged: replayed as well.
    const inFlight = (await run.buffer.take(10))!;
    run.buffer.abort();
    for (const b of inFlight) b.ack.release('failed');
    await run.buffer.closed;

    run = openBuffer(dir, {}, t);
    await run.buffer.open();
    assert.equal(run.buffer.events, 60);
    assert.equal(await metricValue(run.registry, 'fluxo_disk_buffer_replayed_events_total'), 60);
    run.buffer.push(numberedBatch(101, 5));
    assert.deepEqual(await drain(run.buffer), range(41, 105));
  });

  it('rolls segments by size and deletes each once all its records are acknowledged', async (t) => {
    const dir = tempDir(t);
    let run = openBuffer(dir, { maxSegmentSize: 4 * recordSize(1001, 10) + 16 }, t);
    await run.buffer.open();
    await pushRecords(run.buffer, 20, 1001);
    assert.equal(segmentFiles(dir).length, 5, 'four records per segment');
    const firstTen = await takeEvents(run.buffer, 100, 10);
    for (const b of firstTen) b.ack.release('delivered');
    run.buffer.abort();
    await run.buffer.closed;
    assert.deepEqual(
      segmentFiles(dir),
      ['00000000000000000009.seg', '00000000000000000013.seg', '00000000000000000017.seg'],
      'the two fully acknowledged segments are gone, the half-acknowledged one stays',
    );
    assert.equal((await readLedger(dir)).state?.ackedId, 10);

    run = openBuffer(dir, { maxSegmentSize: 4 * recordSize(1001, 10) + 16 }, t);
    await run.buffer.open();
    run.buffer.push(numberedBatch(1201, 10));
    assert.deepEqual(await drain(run.buffer), range(1101, 1210));
    assert.deepEqual(segmentFiles(dir), [], 'everything acknowledged: no segment left');
    assert.equal((await readLedger(dir)).state?.ackedId, 21, 'ids go on after a restart');
  });

  it('max_size with block: push() waits until the sink acknowledges, then accepts', async (t) => {
    const dir = tempDir(t);
    // Numbers of four digits: every record of ten events has the same size.
    const { buffer } = openBuffer(dir, { maxSize: 3 * recordSize(1001, 10) }, t);
    await buffer.open();
    for (let i = 0; i < 3; i++) assert.equal(buffer.push(numberedBatch(1001 + i * 10, 10)), undefined);
    const blocked = trackedBatch(1031, 10);
    const pushed = buffer.push(blocked.batch);
    assert.ok(pushed instanceof Promise, 'full: the source has to wait');
    let accepted = false;
    void pushed.then(() => {
      accepted = true;
    });
    const [first, second] = await takeEvents(buffer, 20, 10);
    assert.equal(accepted, false, 'records handed out still count until acknowledged');
    second!.ack.release('delivered');
    await new Promise((r) => setImmediate(r));
    assert.equal(accepted, false, 'an acknowledgement after a gap frees nothing');
    assert.equal(blocked.batch.ack.settled, false, 'a waiting batch is not acknowledged');
    first!.ack.release('delivered');
    await pushed;
    assert.equal(await blocked.settled, 'delivered');
    assert.deepEqual(await drain(buffer), range(1021, 1040));
  });

  it('lets a batch larger than max_size in when the buffer is empty', async (t) => {
    const dir = tempDir(t);
    const { buffer } = openBuffer(dir, { maxSize: 100 }, t);
    await buffer.open();
    assert.equal(buffer.push(numberedBatch(1, 50)), undefined);
    const waiting = buffer.push(numberedBatch(51, 1));
    assert.ok(waiting instanceof Promise);
    const refused = assert.rejects(waiting, BufferClosedError);
    assert.deepEqual(await drain(buffer), range(1, 50));
    await refused;
  });

  it('drop_newest drops what does not fit, counts it exactly and settles its share', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, { maxSize: 3 * recordSize(1001, 10), whenFull: 'drop_newest' }, t);
    await buffer.open();
    const statuses: AckStatus[][] = range(0, 9).map(() => []);
    for (let i = 0; i < 10; i++) {
      assert.equal(buffer.push(numberedBatch(1001 + i * 10, 10, statuses[i])), undefined, 'never waits');
    }
    assert.deepEqual(
      statuses.slice(3).map((s) => s.join()),
      range(3, 9).map(() => 'delivered'),
      'dropped batches settle at once',
    );
    assert.equal(await metricValue(registry, 'fluxo_buffer_dropped_events_total'), 70);
    const [first] = await takeEvents(buffer, 10, 10);
    first!.ack.release('delivered');
    assert.equal(buffer.push(numberedBatch(1101, 10)), undefined, 'room again after an acknowledgement');
    assert.equal(buffer.push(numberedBatch(1111, 10)), undefined);
    assert.equal(await metricValue(registry, 'fluxo_buffer_dropped_events_total'), 80);
    assert.deepEqual(await drain(buffer), [...range(1011, 1030), ...range(1101, 1110)]);
  });

  it('reads a backlog larger than its memory window back from disk, in order', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, { memoryBytes: 3 * recordSize(1, 10), maxSegmentSize: 2048 }, t);
    await buffer.open();
    const settled: Promise<AckStatus>[] = [];
    for (let i = 0; i < 40; i++) {
      const x = trackedBatch(i * 10 + 1, 10);
      buffer.push(x.batch);
      settled.push(x.settled);
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(settled);
    const early = await takeEvents(buffer, 30, 10);
    for (const b of early) b.ack.release('delivered');
    for (let i = 40; i < 50; i++) buffer.push(numberedBatch(i * 10 + 1, 10));
    assert.deepEqual(await drain(buffer, 25), range(31, 500));
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_corrupt_records_total'), 0);
  });

  it('hands records over with their JSON lines, intact while the sink holds them however many records follow', async (t) => {
    const dir = tempDir(t);
    const { buffer } = openBuffer(dir, {}, t);
    await buffer.open();
    const first = trackedBatch(1, 10);
    buffer.push(first.batch);
    await first.settled;
    const [held] = (await buffer.take(10))!;
    const lines = (events: Event[]) => events.map((e) => `${JSON.stringify(e)}\n`).join('');
    assert.equal(held!.ndjson?.toString('utf8'), lines(held!.events));
    // 24 MiB more, each record taken and acknowledged at once: six slabs' worth, free for reuse unless held.
    for (let i = 0; i < 60; i++) {
      const x = trackedBatchOf(Array.from({ length: 100 }, (_, n) => ({ message: String(i).repeat(4000), n })));
      buffer.push(x.batch);
      await x.settled;
      for (const b of (await buffer.take(1000))!) {
        assert.equal(b.ndjson?.toString('utf8'), lines(b.events));
        b.ack.release('delivered');
      }
    }
    assert.equal(held!.ndjson?.toString('utf8'), lines(held!.events), 'the held record’s bytes were not reused');
    held!.ack.release('delivered');
    assert.deepEqual(await drain(buffer), []);
  });

  it('damage found while reading back is skipped and leaves the counts once the records around it are acknowledged', async (t) => {
    const dir = tempDir(t);
    // One record fits in memory and fills it: the others are read back from disk, and only once taken.
    const { buffer, registry } = openBuffer(dir, { memoryBytes: recordSize(1, 10) }, t);
    await buffer.open();
    assert.deepEqual(new Set(await pushRecords(buffer, 10)), new Set(['delivered']));
    assert.equal(buffer.events, 100);
    // Flip a payload byte of the sixth record (events 51–60), which nothing has read back yet.
    const path = join(dir, segmentFiles(dir)[0]!);
    const bytes = readFileSync(path);
    let at = SEGMENT_HEADER_BYTES;
    for (let i = 0; i < 5; i++) at += readHeader(bytes, at).size;
    bytes[at + RECORD_HEADER_BYTES + 4]! ^= 0x01;
    writeFileSync(path, bytes);

    const taken = await takeEvents(buffer, 90);
    assert.deepEqual(
      taken.flatMap((b) => b.events.map((e) => e.n)),
      [...range(1, 50), ...range(61, 100)],
    );
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_corrupt_records_total'), 1);
    for (const b of taken) b.ack.release('delivered');
    assert.equal(buffer.events, 0, 'the skipped record’s events left the count');
    assert.equal(buffer.bytes, 0, 'the skipped record’s bytes left the count');
    assert.deepEqual(await drain(buffer), []);
  });

  it('sync: interval settles after the write and reports the unsynced window until the next fsync', async (t) => {
    const dir = tempDir(t);
    const { buffer, registry } = openBuffer(dir, { sync: 'interval', syncIntervalMs: 30 }, t);
    await buffer.open();
    const { batch, settled } = trackedBatch(1, 7);
    buffer.push(batch);
    assert.equal(await settled, 'delivered');
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 0, 'settled before any fsync');
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_unsynced_events'), 7);
    for (let i = 0; i < 500 && (await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count')) === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_fsync_seconds_count'), 1);
    buffer.push(numberedBatch(8, 1));
    assert.deepEqual(await drain(buffer), range(1, 8));
    assert.equal(await metricValue(registry, 'fluxo_disk_buffer_unsynced_events'), 0);
  });

  it('reports the oldest unacknowledged age', async (t) => {
    const dir = tempDir(t);
    let run = openBuffer(dir, {}, t);
    await run.buffer.open();
    const { batch, settled } = trackedBatch(1, 2);
    run.buffer.push(batch);
    await settled;
    run.buffer.abort();
    await run.buffer.closed;
    // Make the record look an hour old by rewriting its header time (and CRC) on disk.
    const [file] = segmentFiles(dir);
    const raw = readFileSync(join(dir, file!));
    const frame = raw.subarray(16);
    sealRecord(frame, 1, Date.now() - 3_600_000, 2);
    writeFileSync(join(dir, file!), raw);
    run = openBuffer(dir, {}, t);
    await run.buffer.open();
    const age = await metricValue(run.registry, 'fluxo_buffer_oldest_unacked_age_seconds');
    assert.ok(age >= 3600 && age < 3700, `age ${age}`);
    assert.deepEqual(await drain(run.buffer), [1, 2]);
    const report = await inspectBuffer('out', dir);
    assert.equal(report.events, 0);
  });

  it('push() after close() is refused and the batch fails', async (t) => {
    const dir = tempDir(t);
    const { buffer } = openBuffer(dir, {}, t);
    await buffer.open();
    buffer.close();
    const statuses: AckStatus[] = [];
    await assert.rejects(buffer.push(numberedBatch(1, 1, statuses))!, BufferClosedError);
    assert.deepEqual(statuses, ['failed']);
    await buffer.closed;
  });

  it('close() while open() is still opening its files: open completes, closed resolves, the lock is released', async (t) => {
    const dir = tempDir(t);
    for (const writeDelayMs of [0, 100]) {
      const { buffer } = openBuffer(dir, { writeDelayMs }, t);
      const opening = buffer.open();
      buffer.close(); // recoverLog is still under way
      await opening;
      await buffer.closed;
      assert.throws(() => statSync(join(dir, 'lock')), /ENOENT/, 'lock released');
    }
    // And with records to replay: the next buffer still gets them all.
    const first = openBuffer(dir, {}, t);
    await first.buffer.open();
    await pushRecords(first.buffer, 3);
    first.buffer.abort(); // the sink took nothing: it stays on disk
    await first.buffer.closed;
    const second = openBuffer(dir, {}, t);
    const opening = second.buffer.open();
    second.buffer.close();
    await opening;
    assert.deepEqual(await drain(second.buffer), range(1, 30));
    await second.buffer.closed;
  });

  it('write_delay: what the sink delivers while the closing write is under way is acknowledged, not replayed', async (t) => {
    const dir = tempDir(t);
    const first = openBuffer(dir, { writeDelayMs: 10_000 }, t);
    await first.buffer.open();
    for (let i = 0; i < 5; i++) first.buffer.push(numberedBatch(i * 10 + 1, 10));
    const held = await takeEvents(first.buffer, 50, 10);
    // The sink delivers what it holds once the bytes are written and before the writer hears back: during the
    // write, before the records have their ids.
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { writev: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const writev = proto.writev;
    proto.writev = async function (this: unknown, ...args: unknown[]) {
      const result = await writev.apply(this, args);
      for (const b of held.splice(0)) b.ack.release('delivered');
      return result;
    };
    t.after(() => {
      proto.writev = writev;
    });
    first.buffer.close(); // writes at once what waits for its delay: the records the sink holds
    await first.buffer.closed;
    proto.writev = writev;
    assert.equal(held.length, 0, 'delivered during the write');
    assert.equal(
      (await readLedger(dir)).state?.ackedId,
      5,
      'the ledger covers the records delivered during their write',
    );
    const second = openBuffer(dir, {}, t);
    await second.buffer.open();
    assert.deepEqual(await drain(second.buffer), [], 'nothing the sink delivered is replayed');
  });

  it('refuses a buffer another live process holds, takes over the lock of a dead one', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n${(await import('node:os')).hostname()}\n`);
    const first = openBuffer(dir, {}, t);
    await assert.rejects(first.buffer.open(), { code: 'FLUXO_BUFFER_LOCKED' });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    writeFileSync(join(dir, 'lock'), `${dead.stdout}\n${(await import('node:os')).hostname()}\n`);
    const second = openBuffer(dir, {}, t);
    await second.buffer.open();
    assert.equal(readFileSync(join(dir, 'lock'), 'utf8').split('\n')[0], String(process.pid));
    await drain(second.buffer);
    assert.throws(() => statSync(join(dir, 'lock')), /ENOENT/, 'lock released on close');
  });

  it('a reloaded sink’s new buffer waits for the old one, which leaves it what it did not hand out', async (t) => {
    const dir = tempDir(t);
    const old = openBuffer(dir, {}, t);
    await old.buffer.open();
    await pushRecords(old.buffer, 5);
    const inFlight = await takeEvents(old.buffer, 20, 10);
    const next = openBuffer(dir, {}, t);
    await next.buffer.open(); // resolves at once: the old one still runs
    const waiting = next.buffer.push(numberedBatch(51, 10));
    assert.ok(waiting instanceof Promise, 'pushes wait until the new buffer has opened');
    old.buffer.close();
    assert.equal(await old.buffer.take(10), null, 'the old buffer hands out no more: its successor replays');
    for (const b of inFlight) b.ack.release('delivered');
    await old.buffer.closed;
    await waiting;
    assert.deepEqual(await drain(next.buffer), range(21, 60));
  });

  it('a ledger slot torn by a crash leaves the previous state readable', async (t) => {
    const dir = tempDir(t);
    const { ledger } = await Ledger.open(dir);
    await ledger.write({ ackedId: 5, readId: 6, nextId: 7, updatedAt: 1 }, true);
    await ledger.write({ ackedId: 8, readId: 9, nextId: 10, updatedAt: 2 }, true);
    await ledger.close();
    assert.equal((await readLedger(dir)).state?.ackedId, 8);
    const raw = readFileSync(join(dir, 'ledger'));
    raw[64 * (2 % 2) + 20]! ^= 1; // generation 2 went to slot 0
    writeFileSync(join(dir, 'ledger'), raw);
    assert.deepEqual((await readLedger(dir)).state, { ackedId: 5, readId: 6, nextId: 7, updatedAt: 1 });
  });
});
