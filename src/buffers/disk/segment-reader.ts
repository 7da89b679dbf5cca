import { type FileHandle, open } from 'node:fs/promises';
import { crcMatches, MAX_RECORD_ID, RECORD_HEADER_BYTES, type RecordHeader, readHeader } from './record.ts';

const CHUNK_BYTES = 1024 * 1024;

export type ReadResult =
  /** A record whose CRC matched: its bytes are `buffer[at, at + header.size)`, valid until the next call. */
  | { kind: 'record'; offset: number; header: RecordHeader; buffer: Buffer; at: number }
  /**
   * Damage at `offset`: reading goes on at `resumeAt`, the next record that checks out, or stops at the end
   * of the range when there is none (a torn tail when this is the last segment).
   */
  | { kind: 'corrupt'; offset: number; reason: string; resumeAt: number | undefined }
  | { kind: 'end' };

/**
 * Reads the records of one segment in order, from `position` up to `end` (the bytes known to be whole: the
 * committed size of the segment being written, the file size otherwise). Reads in 1 MiB chunks; a record
 * that does not pass its CRC is reported and skipped by searching for the next record that does.
 */
export class SegmentReader {
  private fh: FileHandle | undefined;
  private chunk: Buffer = Buffer.alloc(0);
  private chunkStart = 0;
  private chunkLength = 0;

  constructor(
    readonly path: string,
    public position: number,
    /** May grow while the segment is written. */
    public end: number,
    /** Only records with a larger id are accepted, which keeps a resynchronization from landing on stale bytes. */
    public lastId = 0,
  ) {}

  async next(): Promise<ReadResult> {
    const at = this.position;
    if (at >= this.end) return { kind: 'end' };
    if ((await this.ensure(at, RECORD_HEADER_BYTES)) < RECORD_HEADER_BYTES) {
      return this.damaged(at, `record header cut short (${this.end - at} bytes left)`);
    }
    const h = readHeader(this.chunk, at - this.chunkStart);
    if (h.size > this.end - at) {
      return this.damaged(at, `record of ${h.size} bytes runs past the end of the segment (${this.end - at} left)`);
    }
    if ((await this.ensure(at, h.size)) < h.size) return this.damaged(at, 'record cut short: the file is shorter');
    const rel = at - this.chunkStart;
    if (!crcMatches(this.chunk, rel, h.size)) return this.damaged(at, 'CRC32C mismatch');
    if (h.id <= this.lastId) return this.damaged(at, `record id ${h.id} does not follow ${this.lastId}`);
    this.position = at + h.size;
    this.lastId = h.id;
    return { kind: 'record', offset: at, header: h, buffer: this.chunk, at: rel };
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  /** Makes `[from, from + length)` readable in the chunk; returns how many of those bytes exist (the file may be shorter). */
  private async ensure(from: number, length: number): Promise<number> {
    const want = Math.min(length, this.end - from);
    if (from >= this.chunkStart && from + want <= this.chunkStart + this.chunkLength) return want;
    const size = Math.min(Math.max(want, CHUNK_BYTES), this.end - from);
    if (this.chunk.length < size) this.chunk = Buffer.allocUnsafe(Math.max(size, CHUNK_BYTES));
    const got = await this.readInto(this.chunk, from, size);
    this.chunkStart = from;
    this.chunkLength = got;
    return Math.min(want, got);
  }

  private async readInto(target: Buffer, from: number, size: number): Promise<number> {
    this.fh ??= await open(this.path, 'r');
    let got = 0;
    while (got < size) {
      const { bytesRead } = await this.fh.read(target, got, size - got, from + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  private async damaged(at: number, reason: string): Promise<ReadResult> {
    const resumeAt = await this.resync(at + 1);
    this.position = resumeAt ?? this.end;
    return { kind: 'corrupt', offset: at, reason, resumeAt };
  }

  /**
   * Finds the first offset at or after `from` where a whole record with a later id passes its CRC. Damage is
   * rare, so this simply loads the rest of the segment (at most one segment's size) and tries every offset;
   * cheap header checks reject almost all of them before a CRC is computed.
   */
  private async resync(from: number): Promise<number | undefined> {
    const length = Math.max(0, this.end - from);
    const region = Buffer.allocUnsafe(length);
    const got = await this.readInto(region, from, length);
    this.chunk = region;
    this.chunkStart = from;
    this.chunkLength = got;
    const afterId = this.lastId;
    for (let p = 0; p + RECORD_HEADER_BYTES <= got; p++) {
      const size = RECORD_HEADER_BYTES + region.readUInt32LE(p);
      if (size > got - p) continue;
      const idHigh = region.readUInt32LE(p + 12);
      if (idHigh > 0x1f_ffff) continue;
      const id = region.readUInt32LE(p + 8) + idHigh * 0x1_0000_0000;
      if (id <= afterId || id > MAX_RECORD_ID) continue;
      const writtenAt = region.readDoubleLE(p + 16);
      if (!(writtenAt > 946_684_800_000 && writtenAt < 32_503_680_000_000)) continue;
      if (region.readUInt32LE(p + 24) * 2 > size - RECORD_HEADER_BYTES + 2) continue;
      if (crcMatches(region, p, size)) return from + p;
    }
    return undefined;
  }
}
