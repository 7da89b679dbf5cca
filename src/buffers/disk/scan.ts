import { open, readdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkSegmentHeader,
  decodePayload,
  parseSegmentFileName,
  type RecordHeader,
  SEGMENT_HEADER_BYTES,
  SEGMENT_VERSION,
} from './record.ts';
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
  /** Its format version (record.ts): how its payloads are decoded (told by its records when the header is damaged). */
  version: number;
}

/** Damage found in a segment. */
export interface Damage {
  segment: string;
  offset: number;
  reason: string;
  /** `torn_tail`: the end of the last segment, cut at the last good record; `corrupt`: skipped, reading went on. */
  kind: 'torn_tail' | 'corrupt' | 'missing_tail';
  /**
   * Records lost that the sink had not acknowledged: the ids between the last good record before the damage
   * (or the segment's first id, or the acknowledged position, whichever is later) and the next good record
   * (or the next segment's first id). A damaged segment header loses none: its records are found by their
   * framing. Damage with no good record after it counts up to the last record the ledger says was written
   * (`writtenUpTo`), and at least the one record a torn tail cut (none when that id is acknowledged).
   */
  lostRecords: number | undefined;
  /** The first and last id of the records lost, when any. */
  lostIds: [number, number] | undefined;
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
 * nothing is changed. `writtenUpTo` is the last id the ledger says was written (0 when unknown): damage at
 * the end of the log counts the records up to it, and a log that ends before it reports them missing.
 */
export async function scanSegments(
  dir: string,
  ackedId: number,
  repair: boolean,
  writtenUpTo = 0,
): Promise<ScanResult> {
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
  // Damage at the end of the log was counted up to `writtenUpTo` already.
  let endCounted = false;
  // Damage whose lost records are counted once the next good record (or segment) shows which id comes next.
  let pending: { damage: Damage; floor: number } | undefined;
  const settle = (nextId: number) => {
    if (!pending) return;
    countLost(pending.damage, pending.floor, nextId);
    pending = undefined;
  };
  for (let i = 0; i < names.length; i++) {
    const { name, firstId } = names[i]!;
    const path = join(dir, name);
    const last = i === names.length - 1;
    // A segment's name is the id of its first record: damage running to the end of the previous one ends here.
    settle(firstId);
    const fileSize = (await stat(path)).size;
    const header = await readSegmentHeader(path, fileSize);
    let headerDamaged = false;
    if ('problem' in header) {
      // A file cut before its header was whole is a segment created just before a crash: nothing was in it.
      const empty = fileSize < SEGMENT_HEADER_BYTES && last;
      if (fileSize < SEGMENT_HEADER_BYTES) {
        if (!empty) {
          const damage = newDamage(name, 0, header.problem, 'corrupt', fileSize);
          result.damage.push(damage);
          pending = { damage, floor: Math.max(lastId, firstId - 1, ackedId) };
        }
        if (repair) {
          if (empty) await unlink(path);
          else await rename(path, `${path}.corrupt`);
          result.removed.push(name);
        }
        continue;
      }
      // Only the header is known to be damaged: the records after it carry their own length and CRC, so they are
      // read as in any segment, and the first good one tells the format the header would have.
      headerDamaged = true;
      const damage = newDamage(
        name,
        0,
        `segment header: ${header.problem}; its records are read by their framing`,
        'corrupt',
        SEGMENT_HEADER_BYTES,
      );
      damage.lostRecords = 0;
      result.damage.push(damage);
    }
    const told = 'version' in header ? header.version : undefined;
    const segment: Segment = { firstId, path, size: fileSize, lastId: firstId - 1, version: told ?? SEGMENT_VERSION };
    // Ids before the segment's first belong to earlier segments: a resync never lands on one.
    const reader = new SegmentReader(path, SEGMENT_HEADER_BYTES, fileSize, Math.max(lastId, firstId - 1));
    let records = 0;
    try {
      for (;;) {
        const r = await reader.next();
        if (r.kind === 'end') break;
        if (r.kind === 'corrupt') {
          const tail = r.resumeAt === undefined;
          const kind = tail && last ? 'torn_tail' : 'corrupt';
          const damage = newDamage(name, r.offset, r.reason, kind, (r.resumeAt ?? fileSize) - r.offset);
          result.damage.push(damage);
          const floor = Math.max(lastId, firstId - 1, ackedId);
          if (kind === 'torn_tail') {
            // Nothing follows to tell how many records the cut held: those up to the last the ledger says was
            // written, and at least one, the record being written.
            countLost(damage, floor, Math.max(Math.max(lastId, firstId - 1) + 2, writtenUpTo + 1));
            endCounted = true;
            if (repair) {
              await truncate(path, r.offset);
              segment.size = r.offset;
            }
          } else {
            pending = { damage, floor };
          }
          continue;
        }
        const h = r.header;
        settle(h.id);
        if (records === 0) {
          const version = formatOf(r.buffer, r.at, h, segment.version);
          if (version !== undefined && version !== segment.version) {
            if (!headerDamaged) {
              const reason = `segment header says format ${segment.version}, its records are format ${version}`;
              const damage = newDamage(name, 0, reason, 'corrupt', SEGMENT_HEADER_BYTES);
              damage.lostRecords = 0;
              result.damage.push(damage);
            }
            segment.version = version;
          }
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
      // A damaged file with nothing readable is kept aside for a look, not deleted.
      if (headerDamaged) await rename(path, `${path}.corrupt`);
      else await unlink(path);
      result.removed.push(name);
      continue;
    }
    result.segments.push(segment);
  }
  // Damage at the very end of the log with no later record: it held the records up to the last written, and at
  // least one.
  const unresolved = pending as { floor: number } | undefined;
  if (unresolved) {
    settle(Math.max(unresolved.floor + 2, writtenUpTo + 1));
    endCounted = true;
  }
  const floor = Math.max(lastId, ackedId);
  if (!endCounted && writtenUpTo > floor) {
    // The log ends at a record boundary before the last record written (a segment file cut or removed): what
    // is not there was lost, and is said so rather than silently.
    const lastName = names.at(-1)?.name ?? '';
    const reason = `the log ends at record ${lastId}, the ledger says records up to ${writtenUpTo} were written`;
    const damage = newDamage(lastName, result.segments.at(-1)?.size ?? 0, reason, 'missing_tail', 0);
    countLost(damage, floor, writtenUpTo + 1);
    result.damage.push(damage);
  }
  result.maxId = lastId;
  return result;
}

function newDamage(segment: string, offset: number, reason: string, kind: Damage['kind'], bytes: number): Damage {
  return { segment, offset, reason, kind, lostRecords: undefined, lostIds: undefined, bytes };
}

/** Records with ids after `floor` and before `nextId` were lost with the damage. */
function countLost(damage: Damage, floor: number, nextId: number): void {
  const lost = Math.max(0, nextId - floor - 1);
  damage.lostRecords = lost;
  damage.lostIds = lost > 0 ? [floor + 1, nextId - 1] : undefined;
}

/**
 * The format of a segment as its first good record shows it: `expected` when its payload reads so, otherwise
 * the other readable format that reads it (a damaged header, or one flipped to the other version); undefined
 * when none does (the payload is then reported when read back).
 */
function formatOf(b: Buffer, at: number, h: RecordHeader, expected: number): number | undefined {
  for (const version of [expected, ...[SEGMENT_VERSION, 1].filter((v) => v !== expected)]) {
    try {
      decodePayload(b, at, h, version);
      return version;
    } catch {
      // not this format
    }
  }
  return undefined;
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
