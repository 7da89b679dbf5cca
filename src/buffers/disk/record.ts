import type { Event } from '../../core/event.ts';
import { crc32c } from './crc32c.ts';

/**
 * The on-disk format of the disk buffer.
 *
 * A segment file starts with a 16-byte header (`FLUXOBUF`, format version, reserved) followed by records:
 *
 *   offset 0  u32  payload length in bytes
 *          4  u32  CRC32C (Castagnoli) of everything after this field: bytes 8 … 28 + length
 *          8  u64  record id (increasing by one per record across segments; < 2^53)
 *         16  f64  when the record was buffered (epoch ms)
 *         24  u32  number of events in the payload
 *         28  …    payload: the batch's events as UTF-8 JSON lines, `JSON.stringify(event)` and `\n` each
 *
 * All integers little-endian. One record per accepted batch, so a batch is durable or not as a whole.
 * The CRC covers the header fields too: a flipped bit in an id or a count is caught like one in the payload.
 *
 * The payload is what a sink writing JSON lines writes (NDJSON: JSON escapes newlines, so a line is one
 * event), so such a sink writes a record's bytes as they are instead of serializing its events again
 * (Batch.ndjson). Version 1 segments, whose payload was one JSON array, are still read.
 */
export const SEGMENT_MAGIC = Buffer.from('FLUXOBUF', 'latin1');
export const SEGMENT_VERSION = 2;
/** The versions this Fluxo reads. */
const READABLE_VERSIONS = [1, 2];
export const SEGMENT_HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 28;
/** Ids are JavaScript numbers: exact up to 2^53, which at a million records a second lasts 285 years. */
export const MAX_RECORD_ID = Number.MAX_SAFE_INTEGER;

export function segmentHeader(): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32LE(SEGMENT_VERSION, 8);
  return b;
}

/** The format version of a segment header, or why it is unusable. */
export function checkSegmentHeader(b: Buffer): { version: number } | { problem: string } {
  if (b.length < SEGMENT_HEADER_BYTES) return { problem: 'shorter than the segment header' };
  if (!b.subarray(0, 8).equals(SEGMENT_MAGIC)) return { problem: 'not a Fluxo buffer segment (bad magic)' };
  const version = b.readUInt32LE(8);
  if (!READABLE_VERSIONS.includes(version)) {
    return { problem: `segment format version ${version}, this Fluxo reads ${READABLE_VERSIONS.join(' and ')}` };
  }
  return { version };
}

const SLAB_BYTES = 4 * 1024 * 1024;
const FREE_SLABS = 4;

/** A large buffer records are encoded into one after the other, reused once every record in it is written. */
export class Slab {
  readonly buf = Buffer.allocUnsafeSlow(SLAB_BYTES);
  used = 0;
  /** References to records in it not yet released (see RecordEncoder). */
  live = 0;
  /** No longer the slab new records go to. */
  sealed = false;
}

/**
 * An encoded record: its bytes (header and payload) and the slab they live in (undefined for a large record
 * with its own buffer). The payload stays valid until the slab is released.
 */
export interface Frame {
  bytes: Buffer;
  slab: Slab | undefined;
}

/**
 * Serializes batches into records whose header is left blank: the id is only known once the buffer admits the
 * record (a blocked push waits with its record encoded, so the size check needs no second encoding).
 *
 * Records are written into 4 MiB slabs rather than a buffer each: one allocation per slab instead of one per
 * batch, and slabs are reused, which spares the garbage collector most of the external memory churn. A frame
 * starts with one reference (the writer's, released once it is written, discarded, dropped or given up);
 * whoever else keeps it takes one with retain() and releases it when done: a record kept in memory for the
 * sink keeps its slab until the sink is done with it. A slab is reused once no reference is left.
 */
export class RecordEncoder {
  private current: Slab | undefined;
  private readonly free: Slab[] = [];

  /** Throws, like JSON.stringify, when an event cannot be encoded (a BigInt or a cycle). */
  encode(events: readonly Event[]): Frame {
    const json = new Array<string>(events.length);
    let chars = 0;
    for (let i = 0; i < events.length; i++) {
      const text = JSON.stringify(events[i]);
      json[i] = text;
      chars += text.length + 1;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit. Only a record that may not fit where it would go is measured
    // exactly: a worst case alone sent records of a few hundred KiB to buffers of their own, and their bytes to
    // V8's large-object space, mapped and unmapped for each record.
    let slab = this.current;
    let worst = RECORD_HEADER_BYTES + chars * 3;
    if (slab === undefined || slab.used + worst > SLAB_BYTES) {
      worst = RECORD_HEADER_BYTES + events.length;
      for (const text of json) worst += Buffer.byteLength(text, 'utf8');
      if (worst > SLAB_BYTES / 4) return { bytes: writeLines(Buffer.allocUnsafe(worst), 0, json), slab: undefined };
      if (slab === undefined || slab.used + worst > SLAB_BYTES) slab = this.nextSlab();
    }
    const bytes = writeLines(slab.buf, slab.used, json);
    slab.used += bytes.length;
    slab.live++;
    return { bytes, slab };
  }

  /** One more reference to a frame in `slab` (a record kept for the sink as well as queued for writing). */
  retain(slab: Slab | undefined): void {
    if (slab !== undefined) slab.live++;
  }

  release(slab: Slab | undefined): void {
    if (slab === undefined) return;
    slab.live--;
    if (slab.sealed && slab.live === 0) this.recycle(slab);
  }

  private nextSlab(): Slab {
    const old = this.current;
    if (old) {
      old.sealed = true;
      if (old.live === 0) this.recycle(old);
    }
    const slab = this.free.pop() ?? new Slab();
    slab.used = 0;
    slab.live = 0;
    slab.sealed = false;
    this.current = slab;
    return slab;
  }

  private recycle(slab: Slab): void {
    if (this.free.length < FREE_SLABS && !this.free.includes(slab)) this.free.push(slab);
  }
}

/** Writes a record of `json` lines at `start` of `buf` (room checked by the caller); returns the record's bytes. */
function writeLines(buf: Buffer, start: number, json: readonly string[]): Buffer {
  let at = start + RECORD_HEADER_BYTES;
  for (let i = 0; i < json.length; i++) {
    at += buf.write(json[i]!, at, 'utf8');
    buf[at++] = 0x0a;
  }
  return buf.subarray(start, at);
}

/** Encodes one batch into a record of its own (tests, tools). */
export function encodeRecord(events: readonly Event[]): Buffer {
  const payload = Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(''), 'utf8');
  const frame = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  payload.copy(frame, RECORD_HEADER_BYTES);
  return frame;
}

/** Fills in the header of an encoded record and its CRC. */
export function sealRecord(frame: Buffer, id: number, writtenAt: number, count: number): void {
  frame.writeUInt32LE(frame.length - RECORD_HEADER_BYTES, 0);
  frame.writeUInt32LE(id >>> 0, 8);
  frame.writeUInt32LE(Math.floor(id / 0x1_0000_0000), 12);
  frame.writeDoubleLE(writtenAt, 16);
  frame.writeUInt32LE(count, 24);
  frame.writeUInt32LE(crc32c(frame.subarray(8)), 4);
}

export interface RecordHeader {
  /** Total bytes of the record: header and payload. */
  size: number;
  id: number;
  writtenAt: number;
  count: number;
}

/** Reads the header fields at `at` (RECORD_HEADER_BYTES must be available) without checking the CRC. */
export function readHeader(b: Buffer, at: number): RecordHeader {
  return {
    size: RECORD_HEADER_BYTES + b.readUInt32LE(at),
    id: b.readUInt32LE(at + 8) + b.readUInt32LE(at + 12) * 0x1_0000_0000,
    writtenAt: b.readDoubleLE(at + 16),
    count: b.readUInt32LE(at + 24),
  };
}

/** True when the CRC stored at `at` matches the record's bytes (the whole record must be in `b`). */
export function crcMatches(b: Buffer, at: number, size: number): boolean {
  return crc32c(b.subarray(at + 8, at + size)) === b.readUInt32LE(at + 4);
}

/**
 * The events of a record whose CRC matched, from a segment of format `version`; throws when the payload is not
 * what it claims to be.
 */
export function decodePayload(b: Buffer, at: number, h: RecordHeader, version = SEGMENT_VERSION): Event[] {
  const text = b.toString('utf8', at + RECORD_HEADER_BYTES, at + h.size);
  let events: unknown;
  if (version === 1) events = JSON.parse(text);
  else if (text.length === 0) events = [];
  else if (!text.endsWith('\n')) throw new Error('payload does not end with a newline');
  // A line holds no raw newline (JSON escapes them), so the lines joined by commas are the elements of an array.
  else events = JSON.parse(`[${text.slice(0, -1).replaceAll('\n', ',')}]`);
  if (!Array.isArray(events) || events.length !== h.count) {
    throw new Error(
      `payload holds ${Array.isArray(events) ? events.length : 'no array of'} events, header says ${h.count}`,
    );
  }
  return events as Event[];
}

/** `00000000000000000042.seg`: segments are named after their first record id, so names sort in log order. */
export function segmentFileName(firstId: number): string {
  return `${String(firstId).padStart(20, '0')}.seg`;
}

export function parseSegmentFileName(name: string): number | undefined {
  const m = /^(\d{20})\.seg$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
