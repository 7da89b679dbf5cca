import { open, readdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { checkSegmentHeader, parseSegmentFileName, SEGMENT_HEADER_BYTES } from './record.ts';
import { SegmentReader } from './segment-reader.ts';

/** One segment file of the log, as the buffer tracks it. */
export interface Segment {
  /** The id of its first record (its file name). */
  readonly firstId: number;
  readonly path: string;
  /** Bytes known whole (header and records): readers stop here. For the segment being written, what is committed. */
  size: number;
  /** Id of its last record; firstId - 1 while it has none. */
  lastId: number;
  /** Its format version (record.ts): how its payloads are decoded. */
  readonly version: number;
}

/** Damage found in a segment. */
export interface Damage {
  segment: string;
  offset: number;
  reason: string;
  /** `torn_tail`: the end of the last segment, cut at the last good record; `corrupt`: skipped, reading went on. */
  kind: 'torn_tail' | 'corrupt';
  /** Records lost, when the ids around the damage tell (otherwise counted as one). */
  lostRecords: number | undefined;
  bytes: number;
}

/** A coarse map from record ids to when they were buffered, for the oldest-unacknowledged age. */
export interface TimelinePoint {
  id: number;
  at: number;
}

export interface ScanResult {
  segments: Segment[];
  /** Highest record id seen (0 when none). */
  maxId: number;
  /** Records after the acknowledged position, which the sink has yet to receive. */
  unacked: { records: number; events: number; bytes: number };
  /** Where the first unacknowledged record is. */
  firstUnacked: { segment: Segment; offset: number } | undefined;
  oldestUnackedAt: number | undefined;
  timeline: TimelinePoint[];
  damage: Damage[];
  /** Segments set aside (renamed `*.corrupt`) or deleted because they held no usable record. */
  removed: string[];
}

/** Points of the timeline are at least this far apart; the age it gives is early by at most as much. */
export const TIMELINE_STEP_MS = 100;

/**
 * Reads every segment of a buffer directory in order, checking every record's CRC, and counts what is not
 * acknowledged. With `repair` (at start, under the lock) a torn tail of the last segment is truncated at the
 * last good record, and segments with no usable record are removed; without it (`fluxo buffer inspect`)
 * nothing is changed.
 */
export async function scanSegments(dir: string, ackedId: number, repair: boolean): Promise<ScanResult> {
  const names = (await readdir(dir)).flatMap((name) => {
    const firstId = parseSegmentFileName(name);
    return firstId === undefined ? [] : [{ name, firstId }];
  });
  names.sort((a, b) => a.firstId - b.firstId);
  const result: ScanResult = {
    segments: [],
    maxId: 0,
    unacked: { records: 0, events: 0, bytes: 0 },
    firstUnacked: undefined,
    oldestUnackedAt: undefined,
    timeline: [],
    damage: [],
    removed: [],
  };
  let lastId = 0;
  // Damage whose lost records are counted once the next good record shows which id it has.
  let pending: Damage | undefined;
  for (let i = 0; i < names.length; i++) {
    const { name, firstId } = names[i]!;
    const path = join(dir, name);
    const last = i === names.length - 1;
    const fileSize = (await stat(path)).size;
    const header = await readSegmentHeader(path, fileSize);
    if ('problem' in header) {
      // A file cut before its header was whole is a segment created just before a crash: nothing was in it.
      const empty = fileSize < SEGMENT_HEADER_BYTES && last;
      if (!empty) {
        result.damage.push({
          segment: name,
          offset: 0,
          reason: header.problem,
          kind: 'corrupt',
          lostRecords: undefined,
          bytes: fileSize,
        });
      }
      if (repair) {
        if (empty) await unlink(path);
        else await rename(path, `${path}.corrupt`);
        result.removed.push(name);
      }
      continue;
    }
    const segment: Segment = { firstId, path, size: fileSize, lastId: firstId - 1, version: header.version };
    const reader = new SegmentReader(path, SEGMENT_HEADER_BYTES, fileSize, lastId);
    let records = 0;
    try {
      for (;;) {
        const r = await reader.next();
        if (r.kind === 'end') break;
        if (r.kind === 'corrupt') {
          const tail = r.resumeAt === undefined;
          const damage: Damage = {
            segment: name,
            offset: r.offset,
            reason: r.reason,
            kind: tail && last ? 'torn_tail' : 'corrupt',
            lostRecords: undefined,
            bytes: (r.resumeAt ?? fileSize) - r.offset,
          };
          result.damage.push(damage);
          if (tail && last && repair) {
            await truncate(path, r.offset);
            segment.size = r.offset;
          }
          if (!tail) pending = damage;
          continue;
        }
        const h = r.header;
        if (pending) {
          pending.lostRecords = h.id - lastId - 1;
          pending = undefined;
        }
        records++;
        lastId = h.id;
        segment.lastId = h.id;
        if (h.id <= ackedId) continue;
        result.unacked.records++;
        result.unacked.events += h.count;
        result.unacked.bytes += h.size;
        result.firstUnacked ??= { segment, offset: r.offset };
        result.oldestUnackedAt ??= h.writtenAt;
        const t = result.timeline;
        if (t.length === 0 || h.writtenAt - t[t.length - 1]!.at >= TIMELINE_STEP_MS)
          t.push({ id: h.id, at: h.writtenAt });
      }
    } finally {
      await reader.close();
    }
    if (records === 0 && repair) {
      await unlink(path);
      result.removed.push(name);
      continue;
    }
    result.segments.push(segment);
  }
  result.maxId = lastId;
  return result;
}

async function readSegmentHeader(path: string, fileSize: number): Promise<{ version: number } | { problem: string }> {
  if (fileSize < SEGMENT_HEADER_BYTES) return { problem: `${fileSize} bytes: shorter than the segment header` };
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
    await fh.read(b, 0, SEGMENT_HEADER_BYTES, 0);
    return checkSegmentHeader(b);
  } finally {
    await fh.close();
  }
}
