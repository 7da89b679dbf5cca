/**
 * RELP, rsyslog's Reliable Event Logging Protocol (what `omrelp` speaks): every frame is
 *
 *   TXNR SP COMMAND SP DATALEN [SP DATA] LF
 *
 * TXNR and DATALEN are 1 to 9 digits, COMMAND 1 to 32 letters; DATA is DATALEN octets and is absent (no SP)
 * when DATALEN is 0. The server answers each client frame with `TXNR rsp DATALEN SP <code> SP <text>` in the
 * order of the transaction numbers; a client resends what was not answered when its session broke.
 *
 * The decoder is a byte-level state machine so a frame may be split anywhere across reads, and holds at most
 * one frame's header and `maxDataBytes` of data per connection: a longer DATA is skipped as it arrives, and its
 * frame is handed over with its first `prefixBytes` and its declared length (the source dead-letters it).
 */

const SP = 0x20;
const LF = 0x0a;
const ZERO = 0x30;
const NINE = 0x39;
const MAX_DIGITS = 9;
const MAX_COMMAND = 32;

export interface RelpFrame {
  readonly txnr: number;
  readonly command: string;
  /** DATA (empty when DATALEN was 0); only its first `prefixBytes` when `overlong` is set. */
  readonly data: Buffer;
  /** DATALEN when it was over `maxDataBytes`: `data` is then only its first bytes. */
  readonly overlong?: number;
}

export interface RelpDecoderOptions {
  /** Longest DATA kept whole; a longer one is skipped and handed over as a prefix with `overlong` set. */
  readonly maxDataBytes: number;
  /** How much of an overlong DATA is kept, for the dead letter output. */
  readonly prefixBytes?: number;
}

enum State {
  Txnr,
  Command,
  Length,
  Data,
  Skip,
  Trailer,
  Broken,
}

/** Frames a RELP byte stream; after a protocol error it is `broken` and takes no more input. */
export class RelpDecoder {
  /** Why the stream cannot be framed any more (set once `push()` returned an error). */
  error: string | undefined;
  private state = State.Txnr;
  private txnr = 0;
  private digits = 0;
  private command = '';
  private length = 0;
  /** DATA of the current frame when it spans reads: `data[0, filled)`. */
  private data: Buffer | undefined;
  private filled = 0;
  /** Bytes of an overlong DATA still to skip. */
  private skip = 0;
  private readonly maxDataBytes: number;
  private readonly prefixBytes: number;

  constructor(options: RelpDecoderOptions) {
    this.maxDataBytes = options.maxDataBytes;
    this.prefixBytes = Math.min(options.prefixBytes ?? 1024, options.maxDataBytes);
  }

  get broken(): boolean {
    return this.state === State.Broken;
  }

  /** Bytes held for an unfinished frame (its DATA so far; the header is a few numbers and ≤ 32 letters). */
  get bufferedBytes(): number {
    return this.data === undefined ? 0 : this.data.length;
  }

  /** True between frames: nothing of a frame was received yet. */
  get idle(): boolean {
    return this.state === State.Txnr && this.digits === 0;
  }

  /**
   * Appends the frames completed by `chunk` to `out`. Returns the protocol error that broke the stream (the
   * frames before it are in `out`), or undefined. Never throws on any input.
   */
  push(chunk: Uint8Array, out: RelpFrame[]): string | undefined {
    if (this.state === State.Broken) return this.error;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case State.Txnr: {
          const b = chunk[i++]!;
          if (b >= ZERO && b <= NINE) {
            if (++this.digits > MAX_DIGITS) return this.fail('TXNR longer than 9 digits');
            this.txnr = this.txnr * 10 + (b - ZERO);
          } else if (b === SP && this.digits > 0) {
            this.state = State.Command;
          } else if (b === LF && this.digits === 0) {
            // librelp tolerates stray newlines between frames; so do we.
          } else {
            return this.fail(`bad TXNR: expected a digit${this.digits > 0 ? ' or a space' : ''}, got ${describe(b)}`);
          }
          break;
        }
        case State.Command: {
          const b = chunk[i++]!;
          if ((b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a)) {
            if (this.command.length >= MAX_COMMAND) return this.fail('COMMAND longer than 32 letters');
            this.command += String.fromCharCode(b);
          } else if (b === SP && this.command.length > 0) {
            this.state = State.Length;
            this.digits = 0;
          } else {
            return this.fail(`bad COMMAND: expected a letter${this.command ? ' or a space' : ''}, got ${describe(b)}`);
          }
          break;
        }
        case State.Length: {
          const b = chunk[i++]!;
          if (b >= ZERO && b <= NINE) {
            if (++this.digits > MAX_DIGITS) return this.fail('DATALEN longer than 9 digits');
            this.length = this.length * 10 + (b - ZERO);
          } else if (b === LF && this.digits > 0) {
            if (this.length !== 0) return this.fail(`DATALEN ${this.length} but the frame ends without DATA`);
            this.complete(EMPTY, undefined, out);
          } else if (b === SP && this.digits > 0) {
            if (this.length === 0) this.state = State.Trailer;
            else if (this.length > this.maxDataBytes) {
              this.state = State.Skip;
              this.skip = this.length;
            } else this.state = State.Data;
          } else {
            return this.fail(
              `bad DATALEN: expected a digit${this.digits > 0 ? ', a space or LF' : ''}, got ${describe(b)}`,
            );
          }
          break;
        }
        case State.Data: {
          const want = this.length - this.filled;
          const have = n - i;
          if (this.data === undefined && have >= want) {
            // The whole DATA is in this chunk: no copy.
            const data = Buffer.from(chunk.buffer, chunk.byteOffset + i, want);
            i += want;
            this.data = data;
            this.filled = want;
            this.state = State.Trailer;
            break;
          }
          this.data ??= Buffer.allocUnsafe(this.length);
          const take = Math.min(want, have);
          this.data.set(chunk.subarray(i, i + take), this.filled);
          this.filled += take;
          i += take;
          if (this.filled === this.length) this.state = State.Trailer;
          break;
        }
        case State.Skip: {
          const take = Math.min(this.skip, n - i);
          const kept = this.length - this.skip;
          if (kept < this.prefixBytes) {
            this.data ??= Buffer.allocUnsafe(this.prefixBytes);
            const copy = Math.min(take, this.prefixBytes - kept);
            this.data.set(chunk.subarray(i, i + copy), kept);
            this.filled = kept + copy;
          }
          this.skip -= take;
          i += take;
          if (this.skip === 0) this.state = State.Trailer;
          break;
        }
        case State.Trailer: {
          const b = chunk[i++]!;
          if (b !== LF)
            return this.fail(
              `frame ${this.txnr} ${this.command} not terminated by LF after its ${this.length} octets of DATA (got ${describe(b)})`,
            );
          const overlong = this.length > this.maxDataBytes ? this.length : undefined;
          const data = this.data === undefined ? EMPTY : this.data.subarray(0, this.filled);
          this.complete(data, overlong, out);
          break;
        }
        default:
          return this.error;
      }
    }
    return undefined;
  }

  /** Drops an unfinished frame (the connection closed); returns how many of its bytes were received. */
  discardPartial(): number {
    const partial = this.idle || this.state === State.Broken ? 0 : Math.max(1, this.filled);
    this.reset();
    return partial;
  }

  private complete(data: Buffer, overlong: number | undefined, out: RelpFrame[]): void {
    out.push(
      overlong === undefined
        ? { txnr: this.txnr, command: this.command, data }
        : { txnr: this.txnr, command: this.command, data, overlong },
    );
    this.reset();
  }

  private reset(): void {
    this.state = State.Txnr;
    this.txnr = 0;
    this.digits = 0;
    this.command = '';
    this.length = 0;
    this.data = undefined;
    this.filled = 0;
    this.skip = 0;
  }

  private fail(reason: string): string {
    this.reset();
    this.state = State.Broken;
    this.error = reason;
    return reason;
  }
}

const EMPTY = Buffer.alloc(0);

function describe(b: number): string {
  return b >= 0x21 && b <= 0x7e ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, '0')}`;
}

/** One server frame: `TXNR COMMAND DATALEN[ DATA]\n`. */
export function encodeRelpFrame(txnr: number, command: string, data = ''): Buffer {
  const length = Buffer.byteLength(data);
  return Buffer.from(length === 0 ? `${txnr} ${command} 0\n` : `${txnr} ${command} ${length} ${data}\n`);
}

/** The answer to a client frame: `TXNR rsp DATALEN <code> <text>[\n<offers>]`. */
export function encodeRelpResponse(txnr: number, code: number, text: string, offers?: string): Buffer {
  return encodeRelpFrame(txnr, 'rsp', offers === undefined ? `${code} ${text}` : `${code} ${text}\n${offers}`);
}

/** What a server tells a client before closing on its own (librelp: txnr 0, no DATA). */
export const RELP_SERVERCLOSE = encodeRelpFrame(0, 'serverclose');

/**
 * The offers of a client's `open` (`relp_version=0\nrelp_software=…\ncommands=syslog`), as name → value.
 */
export function parseRelpOffers(data: string): Map<string, string> {
  const offers = new Map<string, string>();
  for (const line of data.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    offers.set(eq < 0 ? line : line.slice(0, eq), eq < 0 ? '' : line.slice(eq + 1));
  }
  return offers;
}
