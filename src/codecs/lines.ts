/**
 * Newline framing shared by every line-oriented source (socket, stdin, syslog over TCP, file).
 *
 * A line ends at `\n`; a `\r` right before it is stripped. `maxLineBytes` counts the bytes before the `\n`
 * (a CRLF's `\r` included). A longer line never becomes an event: the splitter keeps at most
 * `maxLineBytes` of it, then only counts the rest until its `\n`, and reports it to `onOverlong` with its
 * first KiB, so memory stays bounded by `maxLineBytes` per splitter whatever the input.
 */

const LF = 0x0a;
const CR = 0x0d;

/** How much of an overlong line is kept for the dead letter output. */
export const OVERLONG_PREFIX_BYTES = 1024;

/** Called with the first KiB of a line longer than the limit (decoded) and its full length in bytes. */
export type OverlongLineHandler = (prefix: string, originalBytes: number) => void;

export interface LineSplitterOptions {
  maxLineBytes: number;
  onOverlong?: OverlongLineHandler;
}

const NO_LINES: readonly string[] = Object.freeze([]);

export class LineSplitter {
  private readonly maxLineBytes: number;
  private readonly onOverlong: OverlongLineHandler | undefined;
  /** The start of a line whose `\n` has not arrived yet; an owned copy, never longer than maxLineBytes. */
  private pending: Buffer | undefined;
  /** Set while skipping the rest of an overlong line. */
  private overlongPrefix: string | undefined;
  private overlongBytes = 0;

  constructor(options: LineSplitterOptions) {
    this.maxLineBytes = options.maxLineBytes;
    this.onOverlong = options.onOverlong;
  }

  /** Bytes held for an incomplete line; never more than `maxLineBytes`. */
  get bufferedBytes(): number {
    return this.pending === undefined ? 0 : this.pending.length;
  }

  /** True while the rest of an overlong line is being skipped. */
  get discarding(): boolean {
    return this.overlongPrefix !== undefined;
  }

  /**
   * Feeds a chunk and returns the lines it completed, empty lines included. The returned array is the
   * caller's; when the chunk completes no line it is a shared frozen empty array.
   */
  push(chunk: Buffer): string[] {
    let start = 0;
    const end = chunk.length;
    if (this.overlongPrefix !== undefined) {
      const nl = chunk.indexOf(LF);
      if (nl < 0) {
        this.overlongBytes += end;
        return NO_LINES as string[];
      }
      this.reportOverlong(this.overlongBytes + nl);
      start = nl + 1;
    }
    const last = chunk.lastIndexOf(LF);
    if (last < start) {
      this.keep(chunk, start, end);
      return NO_LINES as string[];
    }

    let head: string | undefined;
    const pending = this.pending;
    if (pending !== undefined) {
      this.pending = undefined;
      const nl = chunk.indexOf(LF, start);
      const length = pending.length + nl - start;
      if (length > this.maxLineBytes) {
        this.onOverlong?.(prefixOf(pending, chunk.subarray(start, nl)), length);
      } else {
        const line = Buffer.concat([pending, chunk.subarray(start, nl)], length);
        head = decodeLine(line, 0, length);
      }
      start = nl + 1;
    }

    let lines: string[];
    if (start > last) {
      lines = [];
    } else if (last - start > this.maxLineBytes && this.hasOverlong(chunk, start, last)) {
      lines = this.splitChecked(chunk, start, last);
    } else {
      lines = chunk.toString('utf8', start, last).split('\n');
      if (chunk.subarray(start, last).indexOf(CR) >= 0) stripCarriageReturns(lines);
    }
    if (head !== undefined) lines.unshift(head);
    this.keep(chunk, last + 1, end);
    return lines;
  }

  /**
   * At end of input: returns the unterminated last line, which the sender completed by closing, or
   * undefined when there is none. An overlong line in progress is reported instead.
   */
  flush(): string | undefined {
    if (this.overlongPrefix !== undefined) {
      this.reportOverlong(this.overlongBytes);
      return undefined;
    }
    const pending = this.pending;
    if (pending === undefined) return undefined;
    this.pending = undefined;
    return decodeLine(pending, 0, pending.length);
  }

  /**
   * When input stops before the end (shutdown, connection reset): forgets the unterminated line and returns
   * its size in bytes (0 when there was none). An overlong line in progress is reported, as it is known to be
   * too long whatever its end would have been.
   */
  discardPartial(): number {
    if (this.overlongPrefix !== undefined) {
      this.reportOverlong(this.overlongBytes);
      return 0;
    }
    const bytes = this.bufferedBytes;
    this.pending = undefined;
    return bytes;
  }

  /** Appends chunk[from, to) to the unterminated line, or switches to skipping when it gets too long. */
  private keep(chunk: Buffer, from: number, to: number): void {
    if (from >= to) return;
    const pending = this.pending;
    const have = pending === undefined ? 0 : pending.length;
    const total = have + to - from;
    if (total > this.maxLineBytes) {
      this.overlongPrefix = prefixOf(pending, chunk.subarray(from, to));
      this.overlongBytes = total;
      this.pending = undefined;
      return;
    }
    // A copy, so a held partial line does not pin the whole (pooled) chunk it came in.
    const next = Buffer.allocUnsafe(total);
    if (pending !== undefined) pending.copy(next, 0);
    chunk.copy(next, have, from, to);
    this.pending = next;
  }

  private reportOverlong(bytes: number): void {
    const prefix = this.overlongPrefix!;
    this.overlongPrefix = undefined;
    this.overlongBytes = 0;
    this.onOverlong?.(prefix, bytes);
  }

  private hasOverlong(chunk: Buffer, start: number, last: number): boolean {
    const max = this.maxLineBytes;
    let pos = start;
    while (pos <= last) {
      const nl = chunk.indexOf(LF, pos);
      if (nl - pos > max) return true;
      pos = nl + 1;
    }
    return false;
  }

  /** The slow path for a chunk holding an overlong line between complete lines: one line at a time. */
  private splitChecked(chunk: Buffer, start: number, last: number): string[] {
    const lines: string[] = [];
    const max = this.maxLineBytes;
    let pos = start;
    while (pos <= last) {
      const nl = chunk.indexOf(LF, pos);
      if (nl - pos > max) this.onOverlong?.(prefixOf(undefined, chunk.subarray(pos, nl)), nl - pos);
      else lines.push(decodeLine(chunk, pos, nl));
      pos = nl + 1;
    }
    return lines;
  }
}

function stripCarriageReturns(lines: string[]): void {
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.charCodeAt(line.length - 1) === CR) lines[i] = line.slice(0, -1);
  }
}

function decodeLine(buf: Buffer, from: number, to: number): string {
  if (to > from && buf[to - 1] === CR) to--;
  return buf.toString('utf8', from, to);
}

/** The first KiB of `a` then `b`, cut at a UTF-8 character boundary. */
function prefixOf(a: Buffer | undefined, b: Buffer): string {
  let head = a ?? b;
  if (a !== undefined && a.length < OVERLONG_PREFIX_BYTES) {
    head = Buffer.concat([a, b.subarray(0, OVERLONG_PREFIX_BYTES - a.length)]);
  }
  let end = Math.min(head.length, OVERLONG_PREFIX_BYTES);
  if (end < head.length) {
    // Back off to the lead byte of a character the cut would split (continuation bytes are 10xxxxxx).
    let i = end;
    while (i > end - 4 && i > 0 && (head[i]! & 0xc0) === 0x80) i--;
    if ((head[i]! & 0xc0) !== 0x80) end = i;
  }
  return head.toString('utf8', 0, end);
}
