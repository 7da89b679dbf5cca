import { isAscii, isUtf8 } from 'node:buffer';

/**
 * Newline framing for files, where every line needs the byte offset of its first byte (for the event `offset`,
 * its deterministic `_id`, and the checkpoint). `\n` ends a line; a `\r` right before it is stripped. Empty
 * lines carry nothing and produce no event.
 *
 * A line longer than `maxLineBytes` (the `\r` of a CRLF counts, the `\n` does not) is either dropped (reported
 * to `onOverlong` with its first KiB) or split into pieces of at most `maxLineBytes`, cut at a character
 * boundary, each an event with its own offset. Either way at most `maxLineBytes` of a line is ever held, so
 * memory per file stays bounded whatever the input.
 *
 * Invalid UTF-8 becomes U+FFFD and the line is counted in `invalidUtf8`.
 */

const LF = 0x0a;
const CR = 0x0d;
export const OVERLONG_PREFIX_BYTES = 1024;
/** Largest piece of a chunk decoded into one string (see frameComplete). */
const DECODE_SLICE_BYTES = 64 * 1024;

export type OverlongMode = 'drop' | 'split';

/** Where framed lines go: parallel arrays, reused by the caller between chunks. */
export interface FramedLines {
  lines: string[];
  offsets: number[];
  /** Lines that held invalid UTF-8 (replaced by U+FFFD). */
  invalidUtf8: number;
  /** Lines longer than the limit (dropped or split). */
  overlong: number;
}

export function newFramedLines(): FramedLines {
  return { lines: [], offsets: [], invalidUtf8: 0, overlong: 0 };
}

export function clearFramedLines(out: FramedLines): void {
  out.lines.length = 0;
  out.offsets.length = 0;
  out.invalidUtf8 = 0;
  out.overlong = 0;
}

/** Called for a dropped overlong line: its first KiB (decoded), its offset and its length in bytes. */
export type OverlongHandler = (prefix: string, offset: number, bytes: number) => void;

export interface LineFramerOptions {
  maxLineBytes: number;
  overlong: OverlongMode;
  onOverlong?: OverlongHandler;
}

export class LineFramer {
  private readonly max: number;
  private readonly split: boolean;
  private readonly onOverlong: OverlongHandler | undefined;
  /** The start of a line whose `\n` has not arrived; an owned copy, at most `max` bytes. */
  private pending: Buffer | undefined;
  /** File offset of the held line's first byte (or of the line being skipped), -1 when none. */
  private heldStart = -1;
  /** Dropping the rest of an overlong line until its `\n`. */
  private skipping = false;
  /** Skipping silently (read_from: end started mid-line): nothing is reported. */
  private silent = false;
  private skipPrefix = '';
  private skipBytes = 0;
  /** The held line was already counted as overlong (split mode emits its pieces as they fill). */
  private heldCounted = false;
  /** File offset just past the last byte pushed. */
  private next: number;

  constructor(options: LineFramerOptions, offset = 0) {
    this.max = options.maxLineBytes;
    this.split = options.overlong === 'split';
    this.onOverlong = options.onOverlong;
    this.next = offset;
  }

  /** Offset just past the last byte pushed. */
  get position(): number {
    return this.next;
  }

  /**
   * Where reading must resume for nothing framed-but-unfinished to be lost: the start of a held partial line
   * (or of an overlong line being skipped), else the position.
   */
  get safeOffset(): number {
    return this.heldStart >= 0 ? this.heldStart : this.next;
  }

  /** A partial line (or an overlong line being skipped) is held. */
  get holding(): boolean {
    return this.heldStart >= 0;
  }

  /** Forgets everything held and continues at `offset` (the caller reads again from there). */
  reset(offset: number): void {
    this.pending = undefined;
    this.heldStart = -1;
    this.heldCounted = false;
    this.skipping = false;
    this.silent = false;
    this.skipPrefix = '';
    this.skipBytes = 0;
    this.next = offset;
  }

  /** Drops bytes up to and including the next `\n` without reporting them (reading from the end of a file). */
  skipToNextLine(): void {
    this.reset(this.next);
    this.skipping = true;
    this.silent = true;
    this.heldStart = this.next;
  }

  /** Frames `chunk`, the file's bytes at `this.position`; complete lines are appended to `out`. */
  push(chunk: Buffer, out: FramedLines): void {
    const base = this.next;
    const n = chunk.length;
    this.next = base + n;
    let pos = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(LF);
      if (nl < 0) {
        this.skipBytes += n;
        return;
      }
      this.endSkip(this.skipBytes + nl, out);
      pos = nl + 1;
    }
    if (this.pending !== undefined) {
      const nl = chunk.indexOf(LF, pos);
      if (nl < 0) {
        this.hold(chunk, pos, n, out);
        return;
      }
      this.completeHeld(chunk, pos, nl, out);
      pos = nl + 1;
    }
    const last = chunk.lastIndexOf(LF);
    if (last >= pos) {
      this.frameComplete(chunk, pos, last, base, out);
      pos = last + 1;
    }
    if (pos < n) {
      this.heldStart = base + pos;
      this.hold(chunk, pos, n, out);
    }
  }

  /**
   * Emits the held partial line as a complete line (the file stopped growing, or it is finished); an overlong
   * line being skipped is reported. Returns whether a line was emitted.
   */
  flushPartial(out: FramedLines): boolean {
    if (this.skipping) {
      this.endSkip(this.skipBytes, out);
      return false;
    }
    const pending = this.pending;
    if (pending === undefined) return false;
    const start = this.heldStart;
    this.pending = undefined;
    this.heldStart = -1;
    this.heldCounted = false;
    return this.emitLine(pending, 0, pending.length, start, out, true);
  }

  private endSkip(bytes: number, out: FramedLines): void {
    if (!this.silent) {
      out.overlong++;
      this.onOverlong?.(this.skipPrefix, this.heldStart, bytes);
    }
    this.skipping = false;
    this.silent = false;
    this.skipPrefix = '';
    this.skipBytes = 0;
    this.heldStart = -1;
  }

  /** Appends chunk[from, to) to the held line; past the limit, splits it or starts skipping it. */
  private hold(chunk: Buffer, from: number, to: number, out: FramedLines): void {
    const pending = this.pending;
    const have = pending === undefined ? 0 : pending.length;
    let total = have + to - from;
    if (total <= this.max) {
      // A copy, so a held partial line never pins the (reused) read buffer.
      const next = Buffer.allocUnsafe(total);
      if (pending !== undefined) pending.copy(next, 0);
      chunk.copy(next, have, from, to);
      this.pending = next;
      return;
    }
    let bytes = pending === undefined ? chunk.subarray(from, to) : Buffer.concat([pending, chunk.subarray(from, to)]);
    this.pending = undefined;
    if (!this.split) {
      this.skipping = true;
      this.skipPrefix = prefixOf(bytes);
      this.skipBytes = total;
      return;
    }
    if (!this.heldCounted) out.overlong++;
    this.heldCounted = true;
    while (total > this.max) {
      const cut = cutAt(bytes, 0, this.max);
      this.emitLine(bytes, 0, cut, this.heldStart, out, false);
      this.heldStart += cut;
      bytes = bytes.subarray(cut);
      total -= cut;
    }
    this.pending = Buffer.from(bytes);
  }

  /** The held line ends at chunk[nl] (a `\n`). */
  private completeHeld(chunk: Buffer, from: number, nl: number, out: FramedLines): void {
    const pending = this.pending!;
    const total = pending.length + nl - from;
    const start = this.heldStart;
    const counted = this.heldCounted;
    this.pending = undefined;
    this.heldStart = -1;
    this.heldCounted = false;
    const line = Buffer.concat([pending, chunk.subarray(from, nl)], total);
    if (total <= this.max) this.emitLine(line, 0, total, start, out, true);
    else this.overlongLine(line, 0, total, start, out, counted);
  }

  /**
   * chunk[from, last) holds complete lines separated by `\n`; the last one ends at chunk[last]. Decoded in
   * slices of at most DECODE_SLICE_BYTES ending at a newline: V8 puts longer strings in large-object space,
   * which makes decoding and splitting them several times slower.
   */
  private frameComplete(chunk: Buffer, from: number, last: number, base: number, out: FramedLines): void {
    let start = from;
    while (start <= last) {
      let end = last;
      if (end - start > DECODE_SLICE_BYTES) {
        end = chunk.lastIndexOf(LF, start + DECODE_SLICE_BYTES);
        if (end < start) end = chunk.indexOf(LF, start + DECODE_SLICE_BYTES); // one line longer than a slice
      }
      this.frameSlice(chunk, start, end, base, out);
      start = end + 1;
    }
  }

  /** chunk[from, last) as frameComplete, at most one slice (or one long line). */
  private frameSlice(chunk: Buffer, from: number, last: number, base: number, out: FramedLines): void {
    const region = chunk.subarray(from, last);
    if (isAscii(region)) {
      // One byte, one character: latin1 decoding is a copy, and string lengths are byte lengths.
      this.frameAscii(chunk.toString('latin1', from, last), base + from, out);
      return;
    }
    const valid = isUtf8(region);
    const max = this.max;
    let pos = from;
    while (pos <= last) {
      const nl = chunk.indexOf(LF, pos);
      const length = nl - pos;
      if (length > max) this.overlongLine(chunk, pos, nl, base + pos, out);
      else if (length > 0) this.emitLine(chunk, pos, nl, base + pos, out, true, !valid);
      pos = nl + 1;
    }
  }

  private frameAscii(text: string, offset: number, out: FramedLines): void {
    const parts = text.split('\n');
    const max = this.max;
    const { lines, offsets } = out;
    for (let i = 0; i < parts.length; i++) {
      let line = parts[i]!;
      const length = line.length;
      if (length > max) {
        this.overlongAscii(line, offset, out);
      } else if (length > 0) {
        if (line.charCodeAt(length - 1) === CR) line = line.slice(0, -1);
        if (line.length > 0) {
          lines.push(line);
          offsets.push(offset);
        }
      }
      offset += length + 1;
    }
  }

  private overlongAscii(line: string, offset: number, out: FramedLines): void {
    out.overlong++;
    if (!this.split) {
      this.onOverlong?.(line.slice(0, OVERLONG_PREFIX_BYTES), offset, line.length);
      return;
    }
    const max = this.max;
    for (let at = 0; at < line.length; at += max) {
      let piece = line.slice(at, at + max);
      if (at + max >= line.length && piece.charCodeAt(piece.length - 1) === CR) piece = piece.slice(0, -1);
      if (piece.length > 0) {
        out.lines.push(piece);
        out.offsets.push(offset + at);
      }
    }
  }

  /** buf[from, to) is a complete line longer than the limit (`counted`: already counted while held). */
  private overlongLine(buf: Buffer, from: number, to: number, offset: number, out: FramedLines, counted = false): void {
    if (!counted) out.overlong++;
    if (!this.split) {
      this.onOverlong?.(prefixOf(buf.subarray(from, to)), offset, to - from);
      return;
    }
    let at = from;
    while (to - at > this.max) {
      const cut = cutAt(buf, at, this.max);
      this.emitLine(buf, at, at + cut, offset + at - from, out, false);
      at += cut;
    }
    this.emitLine(buf, at, to, offset + at - from, out, true);
  }

  /** Decodes buf[from, to) as one line (without its `\n`); returns whether it produced an event. */
  private emitLine(
    buf: Buffer,
    from: number,
    to: number,
    offset: number,
    out: FramedLines,
    stripCr: boolean,
    checkUtf8 = true,
  ): boolean {
    if (stripCr && to > from && buf[to - 1] === CR) to--;
    if (to <= from) return false;
    if (checkUtf8 && !isUtf8(buf.subarray(from, to))) out.invalidUtf8++;
    out.lines.push(buf.toString('utf8', from, to));
    out.offsets.push(offset);
    return true;
  }
}

/** Where to cut buf[from, …) to keep at most `max` bytes without splitting a UTF-8 character. */
function cutAt(buf: Buffer, from: number, max: number): number {
  let cut = max;
  // Continuation bytes are 10xxxxxx: back off to the lead byte of the character the cut would split.
  for (let i = 0; i < 3 && cut > 1 && (buf[from + cut]! & 0xc0) === 0x80; i++) cut--;
  if ((buf[from + cut]! & 0xc0) === 0x80) cut = max; // not UTF-8 there anyway: cut where asked
  return cut;
}

/** The first KiB of a line, cut at a character boundary. */
function prefixOf(buf: Buffer): string {
  if (buf.length <= OVERLONG_PREFIX_BYTES) return buf.toString('utf8');
  return buf.toString('utf8', 0, cutAt(buf, 0, OVERLONG_PREFIX_BYTES));
}
