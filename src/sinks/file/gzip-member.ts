import { constants, crc32, createDeflateRaw, type DeflateRaw } from 'node:zlib';

/** A gzip member header: magic, deflate, no flags, no mtime, OS unknown (RFC 1952 §2.3). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
/**
 * A final, empty stored deflate block. A Z_SYNC_FLUSH leaves the stream byte-aligned after an empty stored
 * block (`00 00 ff ff`), so appending this block ends the deflate stream without the compressor's help.
 */
const FINAL_EMPTY_BLOCK = [0x01, 0x00, 0x00, 0xff, 0xff];
const SYNC_FLUSH_MARKER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** The bytes that end a member whose committed input had this CRC-32 and length. */
function memberEnd(crc: number, size: number): Buffer {
  const end = Buffer.alloc(13);
  end.set(FINAL_EMPTY_BLOCK, 0);
  end.writeUInt32LE(crc >>> 0, 5);
  end.writeUInt32LE(size % 2 ** 32, 9);
  return end;
}

/**
 * Appends gzip to a file one acknowledged write at a time. Each encode() is sync-flushed, so the bytes on
 * disk after a write decompress to every line of it, even if the process dies before the member ends.
 *
 * The header and trailer are ours (raw deflate inside) because the trailer must describe the *committed*
 * input: when a write fails, the file is cut back to its last committed length, the member that ends there
 * is closed with the CRC and length of what was committed, and a new member starts (concatenated members
 * are one valid gzip stream for zcat, zlib, Spark and DuckDB).
 */
export class GzipMemberWriter {
  private deflate: DeflateRaw | undefined;
  private output: Buffer[] = [];
  /** A member is in the file (its header committed), so a new member must end it first. */
  private memberOpen = false;
  private crc = 0;
  private size = 0;
  private pending: { raw: Buffer; newMember: boolean } | undefined;

  constructor(private readonly level = constants.Z_DEFAULT_COMPRESSION) {}

  /** The bytes to append after the committed end for `raw`; call commit() once they are durable. */
  async encode(raw: Buffer): Promise<Buffer> {
    const newMember = this.deflate === undefined;
    const parts: Buffer[] = [];
    if (newMember) {
      if (this.memberOpen) parts.push(memberEnd(this.crc, this.size));
      parts.push(GZIP_HEADER);
      this.deflate = createDeflateRaw({ level: this.level });
      this.deflate.on('data', (chunk: Buffer) => this.output.push(chunk));
    }
    parts.push(await this.syncFlush(this.deflate!, raw));
    this.pending = { raw, newMember };
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The last encode() is on disk. */
  commit(): void {
    const p = this.pending;
    if (p === undefined) return;
    if (p.newMember) {
      this.memberOpen = true;
      this.crc = 0;
      this.size = 0;
    }
    this.crc = crc32(p.raw, this.crc);
    this.size += p.raw.length;
    this.pending = undefined;
  }

  /**
   * The last encode() did not reach the disk (or only partly): the compressor's state includes input the
   * file will not have, so the next encode() starts a new member after ending the committed one.
   */
  abort(): void {
    this.pending = undefined;
    this.deflate?.destroy();
    this.deflate = undefined;
    this.output = [];
  }

  /** The bytes that end the file after its committed end; empty when nothing was committed. */
  end(): Buffer {
    this.abort();
    return this.memberOpen ? memberEnd(this.crc, this.size) : Buffer.alloc(0);
  }

  private syncFlush(deflate: DeflateRaw, raw: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      deflate.once('error', reject);
      deflate.write(raw);
      // zlib emits the flushed output as 'data' before it calls back (the same contract ws relies on).
      deflate.flush(constants.Z_SYNC_FLUSH, () => {
        deflate.off('error', reject);
        const out = this.output.length === 1 ? this.output[0]! : Buffer.concat(this.output);
        this.output = [];
        if (out.length < 4 || !out.subarray(out.length - 4).equals(SYNC_FLUSH_MARKER)) {
          reject(new Error('gzip: compressor output does not end at a sync flush point'));
        } else {
          resolve(out);
        }
      });
    });
  }
}
