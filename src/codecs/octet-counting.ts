/**
 * Syslog over TCP framing (RFC 6587), shared by every stream source that speaks syslog.
 *
 * - Octet counting (RFC 6587 §3.4.1, and RFC 5425 for TLS): `MSG-LEN SP SYSLOG-MSG`, e.g. `11 <13>1 - hello`.
 *   A message may hold newlines. What rsyslog (`TCP_Framing="octet-counted"`), syslog-ng (`syslog()` driver)
 *   and `logger --octet-count` send.
 * - Non-transparent framing (§3.4.2): one message per line, `\n` (a `\r` before it is stripped). What
 *   rsyslog's `omfwd` and most devices send by default.
 *
 * `SyslogFramer` decides once per connection, on its first bytes that are not whitespace: 1–10 digits (not
 * starting with 0) then a space mean octet counting, anything else (`<` normally) newline framing. rsyslog's own receiver guesses per frame, but a
 * sender never switches mid-connection, and one decision keeps a line that starts with a digit from being
 * misread as a length.
 */
import { LineSplitter, OVERLONG_PREFIX_BYTES, type OverlongLineHandler } from './lines.ts';

const SP = 0x20;
const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const NUL = 0x00;
/** MSG-LEN has at most this many digits; more is a sender that does not speak octet counting. */
const MAX_LENGTH_DIGITS = 10;

const NO_MESSAGES: readonly string[] = Object.freeze([]);

/** Called when the stream cannot be framed any more (the connection should be closed), with the reason. */
export type FramingErrorHandler = (reason: string) => void;

export interface OctetCountingOptions {
  maxMessageBytes: number;
  /** A frame longer than maxMessageBytes: its first KiB and its length. The frame is skipped, the stream goes on. */
  onOverlong?: OverlongLineHandler;
  /** Malformed MSG-LEN: nothing after it can be framed. push() returns what came before and then nothing. */
  onError?: FramingErrorHandler;
}

/**
 * Decodes `MSG-LEN SP MSG` frames. Memory is bounded by maxMessageBytes per decoder: a frame announced
 * longer than that is skipped byte by byte without being held. Whitespace between frames (some senders
 * end each frame with `\n`) is skipped; a trailing `\n` or `\r\n` inside a frame is removed.
 */
export class OctetCountingDecoder {
  private readonly maxMessageBytes: number;
  private readonly onOverlong: OverlongLineHandler | undefined;
  private readonly onError: FramingErrorHandler | undefined;
  /** Digits of MSG-LEN read so far (state "length" while lengthDigits > 0). */
  private length = 0;
  private lengthDigits = 0;
  /** Bytes still expected for the current frame; -1 between frames. */
  private remaining = -1;
  /** The frame being assembled (only when it fits maxMessageBytes). */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Set while skipping an overlong frame: its kept prefix and announced length. */
  private skipping: { prefix: Buffer; length: number } | undefined;
  private failed = false;

  constructor(options: OctetCountingOptions) {
    this.maxMessageBytes = options.maxMessageBytes;
    this.onOverlong = options.onOverlong;
    this.onError = options.onError;
  }

  /** Bytes held for an incomplete frame, never more than maxMessageBytes. */
  get bufferedBytes(): number {
    return this.partsBytes;
  }

  /** True once MSG-LEN was malformed: the stream is unusable. */
  get broken(): boolean {
    return this.failed;
  }

  /** True between frames: nothing is lost if the stream stops here. */
  get atBoundary(): boolean {
    return this.remaining < 0 && this.lengthDigits === 0;
  }

  push(chunk: Buffer): string[] {
    if (this.failed) return NO_MESSAGES as string[];
    let messages: string[] | undefined;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.remaining >= 0) {
        const take = Math.min(this.remaining, n - i);
        if (this.skipping === undefined) {
          if (this.partsBytes === 0 && take === this.remaining) {
            // The whole frame is in this chunk: decode it without copying.
            if (messages === undefined) messages = [];
            messages.push(decodeFrame(chunk, i, i + take));
          } else {
            // A copy: the caller may reuse its read buffer for the next chunk.
            this.parts.push(Buffer.from(chunk.subarray(i, i + take)));
            this.partsBytes += take;
          }
        } else if (this.skipping.prefix.length < OVERLONG_PREFIX_BYTES) {
          const want = OVERLONG_PREFIX_BYTES - this.skipping.prefix.length;
          this.skipping.prefix = Buffer.concat([this.skipping.prefix, chunk.subarray(i, i + Math.min(want, take))]);
        }
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) {
          this.remaining = -1;
          if (this.skipping !== undefined) {
            const { prefix, length } = this.skipping;
            this.skipping = undefined;
            this.onOverlong?.(prefixText(prefix), length);
          } else if (this.partsBytes > 0) {
            const frame = Buffer.concat(this.parts, this.partsBytes);
            this.parts = [];
            this.partsBytes = 0;
            if (messages === undefined) messages = [];
            messages.push(decodeFrame(frame, 0, frame.length));
          }
        }
        continue;
      }
      const c = chunk[i]!;
      if (c >= 0x30 && c <= 0x39) {
        if (this.lengthDigits === 0 && c === 0x30) return this.fail(messages, 'MSG-LEN starts with 0');
        if (++this.lengthDigits > MAX_LENGTH_DIGITS) return this.fail(messages, 'MSG-LEN has more than 10 digits');
        this.length = this.length * 10 + (c - 0x30);
        i++;
        continue;
      }
      if (this.lengthDigits > 0) {
        if (c !== SP) {
          return this.fail(messages, `MSG-LEN ${this.length} is followed by byte 0x${c.toString(16)}, not a space`);
        }
        i++;
        this.remaining = this.length;
        this.lengthDigits = 0;
        this.length = 0;
        if (this.remaining > this.maxMessageBytes) this.skipping = { prefix: Buffer.alloc(0), length: this.remaining };
        if (this.remaining === 0) this.remaining = -1;
        continue;
      }
      if (c === LF || c === CR || c === SP || c === TAB || c === NUL) {
        i++;
        continue;
      }
      return this.fail(messages, `expected MSG-LEN, found byte 0x${c.toString(16)}`);
    }
    return messages ?? (NO_MESSAGES as string[]);
  }

  /**
   * When the stream stops (end, reset, shutdown): forgets an incomplete frame and returns the bytes it had
   * received (0 at a frame boundary). An overlong frame in progress is reported as overlong.
   */
  discardPartial(): number {
    if (this.skipping !== undefined) {
      const { prefix, length } = this.skipping;
      this.skipping = undefined;
      this.remaining = -1;
      this.onOverlong?.(prefixText(prefix), length);
      return 0;
    }
    const midFrame = this.remaining >= 0 || this.lengthDigits > 0;
    const held = midFrame ? Math.max(1, this.partsBytes) : 0;
    this.parts = [];
    this.partsBytes = 0;
    this.remaining = -1;
    this.lengthDigits = 0;
    this.length = 0;
    return held;
  }

  private fail(messages: string[] | undefined, reason: string): string[] {
    this.failed = true;
    this.parts = [];
    this.partsBytes = 0;
    this.onError?.(reason);
    return messages ?? (NO_MESSAGES as string[]);
  }
}

function decodeFrame(buf: Buffer, from: number, to: number): string {
  if (to > from && buf[to - 1] === LF) {
    to--;
    if (to > from && buf[to - 1] === CR) to--;
  }
  return buf.toString('utf8', from, to);
}

function prefixText(prefix: Buffer): string {
  let end = prefix.length;
  // Do not cut a UTF-8 character in two (continuation bytes are 10xxxxxx).
  if (end === OVERLONG_PREFIX_BYTES) {
    let i = end;
    while (i > end - 4 && i > 0 && (prefix[i]! & 0xc0) === 0x80) i--;
    if ((prefix[i]! & 0xc0) !== 0x80) end = i;
  }
  return prefix.toString('utf8', 0, end);
}

export type SyslogFraming = 'octet-counting' | 'newline';

export interface SyslogFramerOptions {
  maxMessageBytes: number;
  onOverlong?: OverlongLineHandler;
  onError?: FramingErrorHandler;
  /** Called once, when the framing of the stream is known. */
  onDetected?: (framing: SyslogFraming) => void;
}

/** Newline framing or octet counting, decided on the stream's first bytes: `MSG-LEN SP` means octet counting. */
export class SyslogFramer {
  private decoder: OctetCountingDecoder | LineSplitter | undefined;
  private detected: SyslogFraming | undefined;

  constructor(private readonly options: SyslogFramerOptions) {}

  get framing(): SyslogFraming | undefined {
    return this.detected;
  }

  /** True once an octet-counted stream had a malformed MSG-LEN: nothing more can be framed. */
  get broken(): boolean {
    return this.decoder instanceof OctetCountingDecoder && this.decoder.broken;
  }

  push(chunk: Buffer): string[] {
    if (this.decoder === undefined) {
      // The decision needs the first bytes up to the first non-digit; a stream may deliver them one at a time.
      const head = this.undecided ? Buffer.concat([this.undecided, chunk]) : chunk;
      let i = 0;
      while (i < head.length && isWhitespace(head[i]!)) i++;
      let j = i;
      while (j < head.length && j - i <= MAX_LENGTH_DIGITS && head[j]! >= 0x30 && head[j]! <= 0x39) j++;
      if (j === head.length && j - i <= MAX_LENGTH_DIGITS) {
        // Only the digits are kept: the whitespace before them is dropped once decided anyway, and keeping it
        // would let a peer sending nothing but spaces grow this buffer without bound (and re-copy it per chunk).
        this.undecided = i > 0 ? Buffer.from(head.subarray(i)) : head;
        return NO_MESSAGES as string[];
      }
      this.undecided = undefined;
      // RFC 6587 §3.4.1: MSG-LEN SP SYSLOG-MSG. Only that form is octet counting; a line that merely starts with
      // a digit (an access line's client IP, a bare timestamp) is newline framing.
      const octet = j > i && head[i] !== 0x30 && head[j] === 0x20;
      this.start(octet ? 'octet-counting' : 'newline');
      chunk = i > 0 ? head.subarray(i) : head;
    }
    return this.decoder!.push(chunk);
  }

  private undecided: Buffer | undefined;

  private start(framing: SyslogFraming): void {
    const o = this.options;
    this.detected = framing;
    this.decoder =
      framing === 'octet-counting'
        ? new OctetCountingDecoder({ maxMessageBytes: o.maxMessageBytes, onOverlong: o.onOverlong, onError: o.onError })
        : new LineSplitter({ maxLineBytes: o.maxMessageBytes, onOverlong: o.onOverlong });
    o.onDetected?.(framing);
  }

  /**
   * At the end of the stream: newline framing completes its last line (returned); an incomplete octet-counted
   * frame cannot be completed and is dropped, its received size in `droppedBytes`.
   */
  end(): { last: string | undefined; droppedBytes: number } {
    if (this.decoder === undefined && this.undecided) {
      // Only digits (and whitespace) before the end: that is a line, not a length.
      const rest = this.undecided;
      this.undecided = undefined;
      this.start('newline');
      this.decoder!.push(rest);
    }
    const d = this.decoder;
    if (d === undefined) return { last: undefined, droppedBytes: 0 };
    if (d instanceof LineSplitter) return { last: d.flush(), droppedBytes: 0 };
    return { last: undefined, droppedBytes: d.discardPartial() };
  }

  /** When the stream stops early (reset, shutdown): forgets the incomplete message; returns its size in bytes. */
  discardPartial(): number {
    const undecided = this.undecided?.length ?? 0;
    this.undecided = undefined;
    return this.decoder?.discardPartial() ?? undecided;
  }
}

function isWhitespace(c: number): boolean {
  return c === LF || c === CR || c === SP || c === TAB || c === NUL;
}
