/**
 * The Fluentd Forward Protocol v1 on the wire, shared by the `forward` source (server) and sink (client).
 *
 * A connection carries a stream of MessagePack values without any other framing. Clients send arrays:
 *   Message                  [tag, time, record, option?]
 *   Forward                  [tag, [[time, record], …], option?]
 *   PackedForward            [tag, bin|str of concatenated [time, record] entries, option?]
 *   CompressedPackedForward  the same with option.compressed = "gzip" and the entries gzipped (members may be
 *                            concatenated)
 *   PING                     ["PING", hostname, shared_key_salt, sha512_hex(salt+hostname+nonce+key), user, pw_digest]
 * and servers answer maps `{ack: chunk}` and the arrays HELO and PONG. `option` may hold `size` (number of
 * entries), `chunk` (an id the server echoes in its ack once the events are safe) and `compressed`.
 * `time` is an integer of seconds or the EventTime extension (type 0: uint32 seconds, uint32 nanoseconds, big-endian).
 *
 * `MsgpackScanner` finds where a value ends without decoding it, resumably, so a connection knows a frame is
 * complete (and not larger than allowed) before spending any work on it; msgpackr then decodes whole frames.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Packr, Unpackr } from 'msgpackr';
import { FluxoError } from '../core/errors.ts';
import { lazyRequire } from '../core/lazy-import.ts';

/** Fluentd's nanosecond timestamp (msgpack ext type 0). */
export class EventTime {
  constructor(
    readonly seconds: number,
    readonly nanos: number,
  ) {}

  static fromMs(ms: number): EventTime {
    const seconds = Math.floor(ms / 1000);
    return new EventTime(seconds, Math.round((ms - seconds * 1000) * 1e6));
  }

  get ms(): number {
    return this.seconds * 1000 + Math.floor(this.nanos / 1e6);
  }
}

const EVENT_TIME_TYPE = 0;

type Msgpackr = typeof import('msgpackr');
type MsgpackCodec = { packr: Packr; unpackr: Unpackr };
const msgpackr = lazyRequire<Msgpackr>('msgpackr');
let codec: MsgpackCodec | undefined;

/**
 * The forward protocol's msgpackr packer and unpacker, made on first use: msgpackr loads a native addon
 * (msgpackr-extract) when it is imported, which a start, and a config without forward, need not pay for.
 * - int64 values decode as numbers (JSON has no BigInt; precision is lost above 2^53), maps as plain objects;
 * - packing uses no msgpackr records or bundled strings: plain MessagePack any Fluentd implementation reads.
 */
function msgpack(): MsgpackCodec {
  if (codec !== undefined) return codec;
  const { addExtension, Packr, Unpackr } = msgpackr();
  // msgpackr keeps extensions per process. Type 0 is otherwise read as `undefined` (notepack's convention), which
  // no Fluxo component relies on; the forward protocol owns it.
  addExtension({
    type: EVENT_TIME_TYPE,
    unpack(data: Uint8Array) {
      if (data.length !== 8) return new EventTime(Number.NaN, 0);
      const seconds = ((data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!) >>> 0;
      const nanos = ((data[4]! << 24) | (data[5]! << 16) | (data[6]! << 8) | data[7]!) >>> 0;
      return new EventTime(seconds, nanos);
    },
  });
  // msgpackr refuses to register a packer for type 0 (it tests the type for truthiness), so the packer is
  // registered under an unused type and writes the whole fixext 8 itself (0xd7, type 0, seconds, nanoseconds)
  // through the raw write callback, returning nothing for msgpackr to wrap. Type 99 is neither a msgpackr nor a
  // Fluentd type.
  addExtension({
    Class: EventTime,
    type: 99,
    pack(time: EventTime, allocateForWrite: (size: number) => { target: Uint8Array; position: number }) {
      const { target, position } = allocateForWrite(10);
      target[position] = 0xd7;
      target[position + 1] = EVENT_TIME_TYPE;
      writeUInt32(target, position + 2, time.seconds);
      writeUInt32(target, position + 6, time.nanos);
      return undefined;
    },
  } as unknown as Parameters<Msgpackr['addExtension']>[0]);
  codec = {
    unpackr: new Unpackr({ mapsAsObjects: true, useRecords: false, int64AsType: 'number' }),
    packr: new Packr({ useRecords: false, variableMapSize: true }),
  };
  return codec;
}

/** The forward protocol's unpacker (see msgpack()). */
export const forwardUnpackr = (): Unpackr => msgpack().unpackr;

function writeUInt32(target: Uint8Array, p: number, n: number): void {
  target[p] = n >>> 24;
  target[p + 1] = (n >>> 16) & 0xff;
  target[p + 2] = (n >>> 8) & 0xff;
  target[p + 3] = n & 0xff;
}

/** A malformed, oversized or truncated frame: the connection that sent it is closed with `message` logged. */
export class ForwardProtocolError extends FluxoError {
  constructor(
    message: string,
    /** Set when the frame was well-formed but over a configured limit (`max_entries_per_message`, …). */
    readonly limit?: string,
  ) {
    super('FLUXO_FORWARD_PROTOCOL', message);
  }
}

/** No limit on entries per message (for clients decoding what they produced). */
const NO_ENTRY_LIMIT = Number.POSITIVE_INFINITY;

function tooManyEntries(maxEntries: number): ForwardProtocolError {
  return new ForwardProtocolError(
    `message holds more than max_entries_per_message (${maxEntries}) entries`,
    'max_entries_per_message',
  );
}

/**
 * Finds the end of the next MessagePack value in a buffer without decoding it. It counts values still to read
 * (an array of n adds n, a map 2n) and skips payloads by their declared lengths, so the state is two numbers
 * and scanning resumes where the previous chunk ended: a frame arriving in many chunks is scanned once.
 */
export class MsgpackScanner {
  /** Offset from the frame start of the next header to read (may lie beyond the bytes received so far). */
  private offset = 0;
  /** Values still to read in the current frame; 0 between frames. */
  private remaining = 0;

  constructor(
    private readonly maxBytes: number,
    /** `array`: every frame must be an array (what clients send); `any`: server replies. */
    private readonly topLevel: 'array' | 'any',
  ) {}

  /** True while part of a frame has been seen. */
  get inFrame(): boolean {
    return this.remaining > 0;
  }

  /**
   * Scans the frame starting at `buf[start]`; `end` is the end of the bytes received. Returns the index just past
   * the frame, or -1 when more bytes are needed (call again with the same frame start and more bytes).
   */
  scan(buf: Uint8Array, start: number, end: number): number {
    const max = this.maxBytes;
    if (this.remaining === 0) {
      if (start >= end) return -1;
      const b = buf[start]!;
      if (this.topLevel === 'array' && !((b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd)) {
        throw new ForwardProtocolError(
          `not a forward protocol message: expected a MessagePack array, found byte 0x${b.toString(16).padStart(2, '0')}`,
        );
      }
      this.offset = 0;
      this.remaining = 1;
    }
    let offset = this.offset;
    let remaining = this.remaining;
    const available = end - start;
    while (remaining > 0) {
      if (offset >= available) break;
      const p = start + offset;
      const b = buf[p]!;
      let header = 1;
      let payload = 0;
      let children = 0;
      if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
        // fixint, nil, booleans
      } else if (b <= 0x8f) children = 2 * (b & 0x0f);
      else if (b <= 0x9f) children = b & 0x0f;
      else if (b <= 0xbf) payload = b & 0x1f;
      else {
        const size = FIXED_SIZES[b - 0xc0]!;
        if (size > 0) {
          header = size;
        } else {
          // Variable length: a big-endian length after the type byte.
          const lengthBytes = LENGTH_BYTES[b - 0xc0]!;
          if (lengthBytes === 0) {
            throw new ForwardProtocolError(`invalid MessagePack: reserved byte 0x${b.toString(16)}`);
          }
          const extra = b >= 0xc7 && b <= 0xc9 ? 1 : 0; // ext carries its type byte after the length
          header = 1 + lengthBytes + extra;
          if (offset + 1 + lengthBytes > available) break;
          const n = readLength(buf, p + 1, lengthBytes);
          if (b === 0xdc || b === 0xdd) children = n;
          else if (b === 0xde || b === 0xdf) children = 2 * n;
          else payload = n;
        }
      }
      if (offset + header > available) break;
      remaining += children - 1;
      offset += header + payload;
      // Each value takes at least one byte: a frame announcing more values than the limit allows is too large.
      if (offset + remaining > max) {
        this.remaining = 0;
        throw new ForwardProtocolError(`message larger than max_message_bytes (${max} bytes)`, 'max_message_bytes');
      }
    }
    this.offset = offset;
    this.remaining = remaining;
    if (remaining > 0 || offset > available) return -1;
    this.remaining = 0;
    return start + offset;
  }
}

/** Header size of fixed-size types from 0xc0 (0: variable or not fixed). */
const FIXED_SIZES = new Uint8Array(32);
/** Length-field size of variable types from 0xc0 (0: none, or reserved). */
const LENGTH_BYTES = new Uint8Array(32);
for (const [b, n] of [
  [0xca, 5],
  [0xcb, 9],
  [0xcc, 2],
  [0xcd, 3],
  [0xce, 5],
  [0xcf, 9],
  [0xd0, 2],
  [0xd1, 3],
  [0xd2, 5],
  [0xd3, 9],
  [0xd4, 3],
  [0xd5, 4],
  [0xd6, 6],
  [0xd7, 10],
  [0xd8, 18],
] as const) {
  FIXED_SIZES[b - 0xc0] = n;
}
for (const [b, n] of [
  [0xc4, 1],
  [0xc5, 2],
  [0xc6, 4],
  [0xc7, 1],
  [0xc8, 2],
  [0xc9, 4],
  [0xd9, 1],
  [0xda, 2],
  [0xdb, 4],
  [0xdc, 2],
  [0xdd, 4],
  [0xde, 2],
  [0xdf, 4],
] as const) {
  LENGTH_BYTES[b - 0xc0] = n;
}

function readLength(buf: Uint8Array, p: number, bytes: number): number {
  if (bytes === 1) return buf[p]!;
  if (bytes === 2) return (buf[p]! << 8) | buf[p + 1]!;
  return ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
}

export interface ForwardOption {
  size?: number;
  chunk?: string;
  compressed?: string;
}

/** A client frame, decoded as far as the frame itself goes: packed entries are decoded later (after gunzip). */
export type ClientFrame =
  | { kind: 'entries'; tag: string; entries: unknown[]; option: ForwardOption | undefined }
  | { kind: 'packed'; tag: string; packed: Uint8Array; gzip: boolean; option: ForwardOption | undefined }
  | { kind: 'ping'; ping: PingMessage };

export interface PingMessage {
  hostname: string;
  salt: string | Uint8Array;
  digest: string;
  username: string;
  passwordDigest: string;
}

/**
 * Decodes one complete client frame `frame` (as found by MsgpackScanner). Throws ForwardProtocolError, also when a
 * Forward message declares more than `maxEntries` entries: the count is read from the array header before msgpackr
 * builds anything, since 3 wire bytes (`[0, {}]`) become an object of a few hundred bytes.
 */
export function decodeClientFrame(frame: Buffer, maxEntries = NO_ENTRY_LIMIT): ClientFrame {
  // Read the array header and the tag by hand: the second element decides the mode, and a PackedForward stream
  // sent as msgpack `str` (as Fluentd does) must not be decoded as UTF-8 text.
  let p = 0;
  const h = frame[p++]!;
  let length: number;
  if (h <= 0x9f) length = h & 0x0f;
  else if (h === 0xdc) {
    length = frame.readUInt16BE(p);
    p += 2;
  } else {
    length = frame.readUInt32BE(p);
    p += 4;
  }
  const tagLength = strLength(frame, p);
  if (tagLength === undefined) throw new ForwardProtocolError('malformed forward message: the tag is not a string');
  p += tagLength.header;
  const tag = frame.toString('utf8', p, p + tagLength.length);
  p += tagLength.length;
  if (tag === 'PING' && length === 6) return { kind: 'ping', ping: decodePing(frame) };
  if (length < 2 || length > 4) {
    throw new ForwardProtocolError(`malformed forward message: an array of ${length} elements`);
  }
  const t = frame[p]!;
  const binLength = binOrStrLength(frame, p);
  if (binLength !== undefined) {
    if (length > 3) throw new ForwardProtocolError('malformed PackedForward message: more than 3 elements');
    const from = p + binLength.header;
    const to = from + binLength.length;
    const option = length === 3 ? decodeOption(unpackOrThrow(frame.subarray(to))) : undefined;
    const packed = frame.subarray(from, to);
    return { kind: 'packed', tag, packed, gzip: option?.compressed === 'gzip', option };
  }
  if (maxEntries !== NO_ENTRY_LIMIT) {
    const entries =
      t <= 0x9f ? t & 0x0f : t === 0xdc ? frame.readUInt16BE(p + 1) : t === 0xdd ? frame.readUInt32BE(p + 1) : 0;
    if (((t >= 0x90 && t <= 0x9f) || t === 0xdc || t === 0xdd) && entries > maxEntries)
      throw tooManyEntries(maxEntries);
  }
  const array = unpackOrThrow(frame) as unknown[];
  if ((t >= 0x90 && t <= 0x9f) || t === 0xdc || t === 0xdd) {
    if (length > 3) throw new ForwardProtocolError('malformed Forward message: more than 3 elements');
    return { kind: 'entries', tag, entries: array[1] as unknown[], option: decodeOption(array[2]) };
  }
  if (length < 3) throw new ForwardProtocolError('malformed Message: fewer than 3 elements');
  return { kind: 'entries', tag, entries: [[array[1], array[2]]], option: decodeOption(array[3]) };
}

/** msgpackr's errors (an unknown extension type, …) as the protocol error the connection reports. */
function unpackOrThrow(bytes: Buffer): unknown {
  try {
    return msgpack().unpackr.unpack(bytes);
  } catch (error) {
    throw new ForwardProtocolError(`invalid MessagePack: ${(error as Error).message}`);
  }
}

function strLength(buf: Buffer, p: number): { header: number; length: number } | undefined {
  const b = buf[p];
  if (b === undefined) return undefined;
  if (b >= 0xa0 && b <= 0xbf) return { header: 1, length: b & 0x1f };
  if (b === 0xd9) return { header: 2, length: buf[p + 1]! };
  if (b === 0xda) return { header: 3, length: buf.readUInt16BE(p + 1) };
  if (b === 0xdb) return { header: 5, length: buf.readUInt32BE(p + 1) };
  return undefined;
}

function binOrStrLength(buf: Buffer, p: number): { header: number; length: number } | undefined {
  const b = buf[p];
  if (b === 0xc4) return { header: 2, length: buf[p + 1]! };
  if (b === 0xc5) return { header: 3, length: buf.readUInt16BE(p + 1) };
  if (b === 0xc6) return { header: 5, length: buf.readUInt32BE(p + 1) };
  return strLength(buf, p);
}

function decodeOption(value: unknown): ForwardOption | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ForwardProtocolError('malformed forward message: the option is not a map');
  }
  const o = value as Record<string, unknown>;
  if (o.chunk !== undefined && typeof o.chunk !== 'string') {
    throw new ForwardProtocolError('malformed forward message: option.chunk is not a string');
  }
  return o as ForwardOption;
}

function decodePing(frame: Buffer): PingMessage {
  const m = unpackOrThrow(frame) as unknown[];
  const [, hostname, salt, digest, username, passwordDigest] = m;
  if (
    typeof hostname !== 'string' ||
    !(typeof salt === 'string' || salt instanceof Uint8Array) ||
    typeof digest !== 'string' ||
    typeof username !== 'string' ||
    typeof passwordDigest !== 'string'
  ) {
    throw new ForwardProtocolError('malformed PING');
  }
  return { hostname, salt, digest, username, passwordDigest };
}

/**
 * Decodes the concatenated entries of a (decompressed) PackedForward message, stopping with ForwardProtocolError
 * at entry `maxEntries + 1`: a 58 KB gzip of 20 million empty entries must not become 20 million objects.
 */
export function decodePackedEntries(packed: Uint8Array, maxEntries = NO_ENTRY_LIMIT): unknown[] {
  const entries: unknown[] = [];
  // A message of no entries is valid (and owed its ack); msgpackr reads an empty buffer as truncated.
  if (packed.length === 0) return entries;
  let over = false;
  try {
    msgpack().unpackr.unpackMultiple(packed as Buffer, (value: unknown) => {
      if (entries.length >= maxEntries) {
        over = true;
        return false;
      }
      entries.push(value);
      return true;
    });
  } catch (error) {
    throw new ForwardProtocolError(`invalid MessagePack in packed entries: ${(error as Error).message}`);
  }
  if (over) throw tooManyEntries(maxEntries);
  return entries;
}

/** Epoch milliseconds of an entry's time, or NaN when it is neither a number of seconds nor an EventTime. */
export function entryTimeMs(time: unknown): number {
  if (typeof time === 'number') return time * 1000;
  if (time instanceof EventTime) return time.ms;
  return Number.NaN;
}

// --- server → client ---------------------------------------------------------------------------------------------

export function encodeAck(chunk: string): Buffer {
  return msgpack().packr.pack({ ack: chunk });
}

export function encodeHelo(nonce: Uint8Array, authSalt: Uint8Array | undefined): Buffer {
  return msgpack().packr.pack([
    'HELO',
    { nonce: Buffer.from(nonce), auth: authSalt ? Buffer.from(authSalt) : '', keepalive: true },
  ]);
}

export function encodePong(ok: boolean, reason: string, hostname: string, digest: string): Buffer {
  return msgpack().packr.pack(['PONG', ok, reason, hostname, digest]);
}

// --- client → server ---------------------------------------------------------------------------------------------

export function encodePing(
  hostname: string,
  salt: Uint8Array,
  digest: string,
  username: string,
  passwordDigest: string,
): Buffer {
  return msgpack().packr.pack(['PING', hostname, Buffer.from(salt), digest, username, passwordDigest]);
}

/**
 * One PackedForward (or CompressedPackedForward) message: `entries` already packed and concatenated.
 * The option always carries `size` and `chunk`, so the server acknowledges.
 */
export function encodePackedForward(tag: string, entries: Buffer, size: number, chunk: string, gzip: boolean): Buffer {
  const option: ForwardOption = gzip ? { size, chunk, compressed: 'gzip' } : { size, chunk };
  const { packr } = msgpack();
  const head = packr.pack(tag);
  const optionBytes = packr.pack(option);
  const binHeader = binHeaderOf(entries.length);
  return Buffer.concat([Buffer.from([0x93]), head, binHeader, entries, optionBytes]);
}

function binHeaderOf(length: number): Buffer {
  if (length < 0x100) return Buffer.from([0xc4, length]);
  if (length < 0x10000) return Buffer.from([0xc5, length >> 8, length & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xc6;
  b.writeUInt32BE(length, 1);
  return b;
}

/** Packs `[time, record]` entries and returns them concatenated, without the enclosing array header. */
export function packEntries(entries: unknown[]): Buffer {
  const packed = msgpack().packr.pack(entries);
  const h = packed[0]!;
  const header = h <= 0x9f ? 1 : h === 0xdc ? 3 : 5;
  return packed.subarray(header);
}

/** A server reply: an ack, HELO or PONG; anything else is a protocol error. */
export type ServerMessage =
  | { kind: 'ack'; chunk: string }
  | { kind: 'helo'; nonce: Uint8Array | string; authSalt: Uint8Array | string }
  | { kind: 'pong'; ok: boolean; reason: string; hostname: string; digest: string };

export function decodeServerMessage(frame: Buffer): ServerMessage {
  let value: unknown;
  try {
    value = msgpack().unpackr.unpack(frame);
  } catch (error) {
    throw new ForwardProtocolError(`invalid MessagePack from the server: ${(error as Error).message}`);
  }
  if (Array.isArray(value)) {
    if (value[0] === 'HELO' && value[1] && typeof value[1] === 'object') {
      const o = value[1] as Record<string, unknown>;
      const nonce = o.nonce;
      if (typeof nonce === 'string' || nonce instanceof Uint8Array) {
        const auth = o.auth;
        return { kind: 'helo', nonce, authSalt: typeof auth === 'string' || auth instanceof Uint8Array ? auth : '' };
      }
    }
    if (value[0] === 'PONG' && value.length === 5 && typeof value[1] === 'boolean') {
      return {
        kind: 'pong',
        ok: value[1],
        reason: String(value[2] ?? ''),
        hostname: String(value[3] ?? ''),
        digest: String(value[4] ?? ''),
      };
    }
  } else if (value && typeof value === 'object' && typeof (value as { ack?: unknown }).ack === 'string') {
    return { kind: 'ack', chunk: (value as { ack: string }).ack };
  }
  throw new ForwardProtocolError('unexpected message from the server (neither ack, HELO nor PONG)');
}

// --- shared-key handshake ----------------------------------------------------------------------------------------

/** sha512_hex(salt + hostname + nonce + shared_key), the digest both PING and PONG carry. */
export function sharedKeyDigest(
  salt: string | Uint8Array,
  hostname: string,
  nonce: string | Uint8Array,
  sharedKey: string,
): string {
  return createHash('sha512').update(salt).update(hostname).update(nonce).update(sharedKey).digest('hex');
}

/** sha512_hex(auth_salt + username + password), PING's user authentication. */
export function passwordDigest(authSalt: string | Uint8Array, username: string, password: string): string {
  return createHash('sha512').update(authSalt).update(username).update(password).digest('hex');
}

/** Constant-time comparison of two hex digests. */
export function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
