import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { inspectBuffer } from '../../src/buffers/disk/inspect.ts';
import { Ledger, readLedger } from '../../src/buffers/disk/ledger.ts';
import { encodeRecord, RECORD_HEADER_BYTES, readHeader, SEGMENT_HEADER_BYTES } from '../../src/buffers/disk/record.ts';
import type { Event } from '../../src/core/event.ts';
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
} from '../integration/fixtures/disk-buffer-harness.ts';

const CORRUPT = 'fluxo_disk_buffer_corrupt_records_total';

/** Offsets of the records of a segment file, walking the framing from the header on. */
function recordOffsets(raw: Buffer): number[] {
  const out: number[] = [];
  for (let at = SEGMENT_HEADER_BYTES; at + RECORD_HEADER_BYTES <= raw.length; at += readHeader(raw, at).size) {
    out.push(at);
  }
  return out;
}

/** Writes `records` records of one event each (event n = record id) and closes the buffer. */
async function writeRecords(dir: string, records: number, t: Parameters<typeof tempDir>[0]): Promise<void> {
  const { buffer } = openBuffer(dir, {}, t);
  await buffer.open();
  assert.deepEqual(new Set(await pushRecords(buffer, records, 1, 1)), new Set(['delivered']));
  buffer.abort();
  await buffer.closed;
}

function damage(path: string, change: (raw: Buffer) => void): void {
  const raw = readFileSync(path);
  change(raw);
  writeFileSync(path, raw);
}

async function reopenAndDrain(dir: string, t: Parameters<typeof tempDir>[0], options = {}) {
  const { buffer, registry } = openBuffer(dir, options, t);
  await buffer.open();
  const delivered = await drain(buffer);
  return { delivered, corrupt: await metricValue(registry, CORRUPT) };
}

describe('disk buffer resynchronisation', { timeout: 120_000 }, () => {
  it('a flipped byte in the segment header loses nothing: the records are found by their framing', async (t) => {
    const dir = tempDir(t);
    await writeRecords(dir, 5000, t);
    const [file] = segmentFiles(dir);
    damage(join(dir, file!), (raw) => {
      raw[3]! ^= 0x10; // in the magic
    });
    const report = await inspectBuffer('out', dir);
    assert.equal(report.events, 5000, 'inspect counts every record as still to deliver');
    assert.deepEqual(
      report.damage.map((d) => [d.segment, d.offset, d.lostRecords]),
      [[file, 0, 0]],
    );
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.equal(delivered.length, 5000);
    assert.deepEqual(delivered, range(1, 5000));
    assert.equal(corrupt, 0, 'no record lost, none counted');
  });

  it('a header whose version was flipped to the other readable one is told by the records', async (t) => {
    const dir = tempDir(t);
    await writeRecords(dir, 50, t);
    const [file] = segmentFiles(dir);
    damage(join(dir, file!), (raw) => {
      raw[8]! ^= 0x03; // format 2 → 1
    });
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.deepEqual(delivered, range(1, 50));
    assert.equal(corrupt, 0);
  });

  it('a flipped byte inside record 2,500 loses that record only, counted as 1', async (t) => {
    const dir = tempDir(t);
    await writeRecords(dir, 5000, t);
    const [file] = segmentFiles(dir);
    const path = join(dir, file!);
    damage(path, (raw) => {
      const at = recordOffsets(raw)[2499]!;
      assert.equal(readHeader(raw, at).id, 2500);
      raw[at + RECORD_HEADER_BYTES + 3]! ^= 0x01;
    });
    const report = await inspectBuffer('out', dir);
    assert.equal(report.damage.length, 1);
    assert.equal(report.damage[0]!.lostRecords, 1);
    assert.deepEqual(report.damage[0]!.lostIds, [2500, 2500]);
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.equal(delivered.length, 4999);
    assert.deepEqual(delivered, [...range(1, 2499), ...range(2501, 5000)]);
    assert.equal(corrupt, 1);
  });

  it('a record length turned to garbage: the resync finds the next record', async (t) => {
    const dir = tempDir(t);
    await writeRecords(dir, 300, t);
    const [file] = segmentFiles(dir);
    damage(join(dir, file!), (raw) => {
      const at = recordOffsets(raw)[99]!;
      raw.writeUInt32LE(0xfff0_0ab1, at);
    });
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.deepEqual(delivered, [...range(1, 99), ...range(101, 300)]);
    assert.equal(corrupt, 1);
  });

  it('damage in the last two records of the log, with nothing good after it, counts both (the ledger says what was written)', async (t) => {
    // fast-check found it (seed -713367948): the cut at the end of the log was counted as one record.
    const dir = tempDir(t);
    await writeRecords(dir, 300, t);
    assert.equal((await readLedger(dir)).state?.nextId, 301, 'the closing ledger holds the next id');
    const path = join(dir, segmentFiles(dir).at(-1)!);
    damage(path, (raw) => {
      const offsets = recordOffsets(raw);
      for (const at of offsets.slice(-2)) raw[at + RECORD_HEADER_BYTES + 3]! ^= 0x01;
    });
    const report = await inspectBuffer('out', dir);
    assert.deepEqual(
      report.damage.map((d) => [d.lostRecords, d.lostIds]),
      [[2, [299, 300]]],
    );
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.deepEqual(delivered, range(1, 298));
    assert.equal(corrupt, 2);
    assert.deepEqual(await reopenAndDrain(dir, t), { delivered: [], corrupt: 0 }, 'reported once');
  });

  it('a log cut at a record boundary before the last written record reports the missing records', async (t) => {
    const dir = tempDir(t);
    await writeRecords(dir, 300, t);
    const path = join(dir, segmentFiles(dir).at(-1)!);
    const raw = readFileSync(path);
    const offsets = recordOffsets(raw);
    // The last three records are gone, the file ending cleanly after record 297 (a page the disk never kept).
    writeFileSync(path, raw.subarray(0, offsets.at(-3)!));
    const report = await inspectBuffer('out', dir);
    assert.equal(report.damage.length, 1);
    assert.equal(report.damage[0]!.kind, 'missing_tail');
    assert.deepEqual(report.damage[0]!.lostIds, [298, 300]);
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.deepEqual(delivered, range(1, 297));
    assert.equal(corrupt, 3);
    // Reported once: the next start finds the ledger past the log no more.
    const again = await reopenAndDrain(dir, t);
    assert.deepEqual(again, { delivered: [], corrupt: 0 });
  });

  it('damage in the first record of the oldest segment, earlier segments acknowledged and deleted, counts that record only', async (t) => {
    const dir = tempDir(t);
    const maxSegmentSize = 4 * encodeRecord(numberedBatch(1001, 10).events).length + 16;
    const run = openBuffer(dir, { maxSegmentSize }, t);
    await run.buffer.open();
    await pushRecords(run.buffer, 20, 1001);
    // Records 1–8 (two segments) acknowledged: their segments are deleted.
    for (const b of await takeEvents(run.buffer, 80, 10)) b.ack.release('delivered');
    run.buffer.abort();
    await run.buffer.closed;
    assert.equal((await readLedger(dir)).state?.ackedId, 8);
    assert.deepEqual(segmentFiles(dir), [
      '00000000000000000009.seg',
      '00000000000000000013.seg',
      '00000000000000000017.seg',
    ]);
    damage(join(dir, '00000000000000000009.seg'), (raw) => {
      raw[SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 5]! ^= 0x40;
    });
    const report = await inspectBuffer('out', dir);
    assert.deepEqual(
      report.damage.map((d) => [d.offset, d.lostRecords, d.lostIds]),
      [[SEGMENT_HEADER_BYTES, 1, [9, 9]]],
    );
    const { delivered, corrupt } = await reopenAndDrain(dir, t, { maxSegmentSize });
    assert.deepEqual(delivered, range(1091, 1200), 'record 9 (events 1081–1090) lost, nothing acknowledged replayed');
    assert.equal(corrupt, 1, 'one record lost, not the eight acknowledged and deleted before it');
  });

  it('damage in an acknowledged record of a segment kept for its later records loses nothing and replays nothing acknowledged', async (t) => {
    const dir = tempDir(t);
    const run = openBuffer(dir, {}, t);
    await run.buffer.open();
    await pushRecords(run.buffer, 20, 1, 1);
    for (const b of await takeEvents(run.buffer, 10, 1)) b.ack.release('delivered');
    run.buffer.abort();
    await run.buffer.closed;
    assert.equal((await readLedger(dir)).state?.ackedId, 10);
    const [file] = segmentFiles(dir);
    damage(join(dir, file!), (raw) => {
      raw[recordOffsets(raw)[9]! + RECORD_HEADER_BYTES]! ^= 0x02; // record 10, acknowledged
      raw[1]! ^= 0x01; // and the header
    });
    const { delivered, corrupt } = await reopenAndDrain(dir, t);
    assert.deepEqual(delivered, range(11, 20));
    assert.equal(corrupt, 0);
  });

  it('damage found while reading back, running to the end of a segment, counts the records it took', async (t) => {
    const dir = tempDir(t);
    const one = encodeRecord(numberedBatch(1, 10).events).length;
    // Records 2–9 are the largest of the first segment's; the first is smaller: four fit, and one in memory.
    const segmentSize = 4 * encodeRecord(numberedBatch(11, 10).events).length + SEGMENT_HEADER_BYTES;
    // One record fits in memory: the others are read back from disk, and only once taken.
    const { buffer, registry } = openBuffer(dir, { maxSegmentSize: segmentSize, memoryBytes: one }, t);
    await buffer.open();
    await pushRecords(buffer, 12);
    const [first] = segmentFiles(dir);
    // Records 3 and 4, the end of the first segment, zeroed.
    damage(join(dir, first!), (raw) => raw.fill(0, recordOffsets(raw)[2]!));
    const taken = await takeEvents(buffer, 100);
    assert.deepEqual(
      taken.flatMap((b) => b.events.map((e) => e.n)),
      [...range(1, 20), ...range(41, 120)],
    );
    assert.equal(await metricValue(registry, CORRUPT), 2);
    for (const b of taken) b.ack.release('delivered');
    assert.equal(buffer.events, 0);
    assert.deepEqual(await drain(buffer), []);
  });

  it('random byte flips in the segments never throw out of open(), never deliver a record not written, and lost + delivered = written', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fluxo-disk-resync-'));
    const written = new Map<number, Event>();
    const records = 120;
    for (let n = 1; n <= records; n++) written.set(n, { message: `line ${n}`, n });
    // One pristine buffer of four segments (so that damage meets segment boundaries), copied for each case.
    const pristine = join(root, 'pristine');
    const maxSegmentSize = 30 * encodeRecord(numberedBatch(100, 1).events).length + SEGMENT_HEADER_BYTES;
    {
      const { buffer } = openBuffer(pristine, { maxSegmentSize });
      await buffer.open();
      await pushRecords(buffer, records, 1, 1);
      buffer.abort();
      await buffer.closed;
    }
    const files = segmentFiles(pristine);
    assert.ok(files.length >= 4, `${files.length} segments`);
    const originals = files.map((f) => readFileSync(join(pristine, f)));
    const ledger = readFileSync(join(pristine, 'ledger'));
    const flipArb = fc.record({
      file: fc.nat({ max: files.length - 1 }),
      // A quarter of the flips go to a segment header or the first record's header, rare targets otherwise.
      at: fc.oneof(
        { weight: 1, arbitrary: fc.nat({ max: SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES - 1 }) },
        { weight: 3, arbitrary: fc.nat({ max: originals[0]!.length - 1 }) },
      ),
      mask: fc.integer({ min: 1, max: 255 }),
    });
    let caseNo = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(flipArb, { minLength: 1, maxLength: 4 }),
          fc.integer({ min: 0, max: 70 }),
          async (flips, acked) => {
            const dir = join(root, `case-${caseNo++}`);
            mkdirSync(dir);
            const raws = originals.map((o) => Buffer.from(o));
            for (const f of flips) {
              const raw = raws[f.file]!;
              raw[f.at % raw.length]! ^= f.mask;
            }
            for (const [i, f] of files.entries()) writeFileSync(join(dir, f), raws[i]!);
            writeFileSync(join(dir, 'ledger'), ledger);
            if (acked > 0) {
              // A prefix the sink acknowledged before the damage.
              const { ledger: l } = await Ledger.open(dir);
              await l.write({ ackedId: acked, readId: acked, nextId: records + 1, updatedAt: Date.now() }, true);
              await l.close();
            }
            const { buffer, registry } = openBuffer(dir, { maxSegmentSize });
            await buffer.open();
            const delivered: number[] = [];
            buffer.close();
            for (let batches = await buffer.take(1000); batches !== null; batches = await buffer.take(1000)) {
              for (const b of batches) {
                for (const e of b.events) {
                  assert.deepEqual(e, written.get(e.n as number), 'delivered exactly as written');
                  delivered.push(e.n as number);
                }
                b.ack.release('delivered');
              }
            }
            await buffer.closed;
            const lost = await metricValue(registry, CORRUPT);
            for (const n of delivered) assert.ok(n > acked, `record ${n} was acknowledged, replayed`);
            assert.equal(new Set(delivered).size, delivered.length, 'no record twice');
            assert.equal(lost + delivered.length, records - acked, `lost ${lost}, delivered ${delivered.length}`);
            rmSync(dir, { recursive: true, force: true });
          },
        ),
        { numRuns: 120 },
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
