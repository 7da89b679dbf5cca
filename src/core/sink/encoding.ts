import { z } from 'zod';
import type { Event } from '../event.ts';

/**
 * How a sink turns events into bytes, with one meaning in every sink:
 * - `ndjson`: one JSON object per line;
 * - `json`: one JSON array of the events;
 * - `text`: the value of one field (`message` by default) per line, as is when it is a string, JSON otherwise,
 *   an empty line when it is absent.
 */
export type EncodingCodec = 'ndjson' | 'json' | 'text';

export interface Encoding {
  readonly codec: EncodingCodec;
  /** The field `text` writes; `message` when not set. */
  readonly field?: string | undefined;
}

/**
 * The events of one write, encoded once: each kept event's line (`\n`-terminated; JSON never holds a raw
 * newline, a `text` value may, so positions are recorded as the lines are written, not found by scanning).
 * Retries and partial retries take their bytes from here instead of serializing again.
 */
export interface EncodedLines {
  readonly bytes: Buffer;
  /** `count + 1` positions: line i is bytes[offsets[i], offsets[i + 1]). */
  readonly offsets: Uint32Array;
  readonly count: number;
}

/**
 * The `encoding` and `text_field` options of a sink, to spread into its options schema: the codecs it
 * accepts, its default, and old spellings that keep working (parsed into the codec they name).
 */
export function encodingOptions<const C extends readonly EncodingCodec[]>(
  codecs: C,
  defaults: { codec: C[number]; aliases?: Record<string, C[number]> },
) {
  const aliases = defaults.aliases ?? {};
  const meaning: Record<EncodingCodec, string> = {
    ndjson: '`ndjson`, one JSON object per line',
    json: '`json`, one JSON array of the events',
    text: '`text`, the `text_field` of each event (`message` by default), one per line',
  };
  const old = Object.entries(aliases).map(([from, to]) => `\`${from}\` is the old spelling of \`${to}\``);
  const encoding = z
    .enum([...codecs, ...Object.keys(aliases)] as unknown as [string, ...string[]])
    .transform((value) => (aliases[value] ?? value) as C[number])
    .default(defaults.codec as never)
    .describe(
      `${codecs.map((c) => meaning[c]).join('; ')}.${old.length > 0 ? ` ${old.join('; ')} (still accepted).` : ''}`,
    ) as unknown as z.ZodDefault<z.ZodType<C[number], string | undefined>>;
  const text_field = z
    .string()
    .min(1)
    .optional()
    .describe(
      'With `encoding: text`: the field written (a string as it is, another value as JSON); default `message`.',
    );
  return { encoding, text_field };
}

/** The Encoding of a sink's parsed `encoding` and `text_field` options. */
export function encodingOf(options: { encoding: EncodingCodec; text_field?: string }): Encoding {
  return { codec: options.encoding, field: options.text_field ?? 'message' };
}

/** The reason given to events an encoder cannot write (dead-lettered with it). */
export const UNENCODABLE_REASON = 'event cannot be encoded (a BigInt or a cycle)';

/** Scratch space reused across calls: encode() copies its result out, so one grows and stays. */
let scratch = Buffer.allocUnsafe(1 << 20);

function lineOf(event: Event, encoding: Encoding): string | undefined {
  try {
    if (encoding.codec !== 'text') return JSON.stringify(event);
    const value = event[encoding.field ?? 'message'];
    if (typeof value === 'string') return value;
    if (value === undefined || value === null) return '';
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/**
 * Encodes `events` into lines, one buffer for all, with one `buf.write` per line into a reused scratch buffer
 * (cheaper than a string rope flattened by Buffer.from). An event that cannot be encoded (a BigInt, a cycle a
 * transform put there) is left out and its index pushed to `rejected`, so one bad event never blocks a write.
 */
export function encodeEvents(events: readonly Event[], encoding: Encoding, rejected: number[]): EncodedLines {
  const offsets = new Uint32Array(events.length + 1);
  let offset = 0;
  let count = 0;
  for (let i = 0; i < events.length; i++) {
    const line = lineOf(events[i]!, encoding);
    if (line === undefined) {
      rejected.push(i);
      continue;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: grow before writing so nothing is cut.
    const need = offset + line.length * 3 + 1;
    if (need > scratch.length) {
      const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, need));
      scratch.copy(bigger, 0, 0, offset);
      scratch = bigger;
    }
    offsets[count++] = offset;
    offset += scratch.write(line, offset);
    scratch[offset++] = 0x0a;
  }
  offsets[count] = offset;
  return {
    bytes: Buffer.from(scratch.subarray(0, offset)),
    offsets: count === events.length ? offsets : offsets.subarray(0, count + 1),
    count,
  };
}

/**
 * JSON lines a buffer already encoded (Batch.ndjson) as EncodedLines, their positions found by scanning for
 * newlines; undefined unless `bytes` holds exactly `count` newline-terminated lines, so lines that do not
 * match their events are never trusted.
 */
export function scanLines(bytes: Buffer, count: number): EncodedLines | undefined {
  const offsets = new Uint32Array(count + 1);
  let at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) return undefined;
    at = end + 1;
  }
  if (at !== bytes.length) return undefined;
  offsets[count] = at;
  return { bytes, offsets, count };
}

/** The lines at `indices`, in that order, as new EncodedLines. */
export function pickLines(lines: EncodedLines, indices: readonly number[]): EncodedLines {
  const from = lines.offsets;
  const offsets = new Uint32Array(indices.length + 1);
  let size = 0;
  for (const i of indices) size += from[i + 1]! - from[i]!;
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    offsets[k] = at;
    at += lines.bytes.copy(bytes, at, from[i]!, from[i + 1]!);
  }
  offsets[indices.length] = at;
  return { bytes, offsets, count: indices.length };
}

/** The body of a write: the lines as they are (`ndjson`, `text`), or joined into one JSON array (`json`). */
export function frame(lines: EncodedLines, codec: EncodingCodec): Buffer {
  if (codec !== 'json') return lines.bytes;
  const { bytes, count } = lines;
  if (count === 0) return Buffer.from('[]');
  // Each line ends in `\n`, which JSON never holds raw: it becomes the `,` between items, and the last the `]`.
  const out = Buffer.allocUnsafe(bytes.length + 1);
  out[0] = 0x5b;
  bytes.copy(out, 1);
  const offsets = lines.offsets;
  for (let i = 1; i <= count; i++) out[offsets[i]!] = 0x2c;
  out[out.length - 1] = 0x5d;
  return out;
}
