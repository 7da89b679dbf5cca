/**
 * One line per event, for sinks that write line-oriented files or objects.
 * `json`: `JSON.stringify(event)` (NDJSON; JSON escapes newlines, so a line is always one event).
 * `text`: the `message` field as is (a string), JSON for a non-string value, an empty line when absent.
 */
import type { Event } from '../core/event.ts';

export type LineEncoding = 'json' | 'text';

/** One event's line without its `\n`, or undefined when it cannot be encoded (a BigInt or a cycle a transform put there). */
export function encodeLine(event: Event, encoding: LineEncoding): string | undefined {
  try {
    if (encoding === 'json') return JSON.stringify(event);
    const message = event.message;
    if (typeof message === 'string') return message;
    if (message === undefined || message === null) return '';
    return JSON.stringify(message);
  } catch {
    return undefined;
  }
}

/**
 * Encodes `events` into one string, each line ending in `\n`. An event that cannot be encoded is left out and
 * pushed to `rejected`, so one bad event cannot block a batch.
 */
export function encodeLines(events: readonly Event[], encoding: LineEncoding, rejected: Event[]): string {
  let out = '';
  for (const event of events) {
    const line = encodeLine(event, encoding);
    if (line === undefined) rejected.push(event);
    else out += `${line}\n`;
  }
  return out;
}

/** Scratch space reused across calls: encodeLinesToBuffer copies its result out, so one grows and stays. */
let scratch = Buffer.allocUnsafe(1 << 20);

/**
 * The bytes of encodeLines, written straight into a reused scratch buffer with one `buf.write` per line
 * instead of a string rope flattened and copied by Buffer.from (~15% less CPU per event in
 * bench/micro/encode-lines.ts). Returns a copy the caller owns.
 */
export function encodeLinesToBuffer(events: readonly Event[], encoding: LineEncoding, rejected: Event[]): Buffer {
  let offset = 0;
  for (const event of events) {
    const line = encodeLine(event, encoding);
    if (line === undefined) {
      rejected.push(event);
      continue;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: grow before writing so nothing is cut.
    const need = offset + line.length * 3 + 1;
    if (need > scratch.length) {
      const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, need));
      scratch.copy(bigger, 0, 0, offset);
      scratch = bigger;
    }
    offset += scratch.write(line, offset);
    scratch[offset++] = 0x0a;
  }
  return Buffer.from(scratch.subarray(0, offset));
}

/**
 * Where each of the `count` lines of `lines` starts, and at the end where they end: `count + 1` offsets; or
 * undefined when `lines` does not hold exactly `count` newline-terminated lines.
 */
export function lineOffsets(lines: Buffer, count: number): Uint32Array | undefined {
  const offsets = new Uint32Array(count + 1);
  let at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    const end = lines.indexOf(0x0a, at);
    if (end < 0) return undefined;
    at = end + 1;
  }
  offsets[count] = at;
  return at === lines.length ? offsets : undefined;
}

/** The lines at `indices` (positions into `offsets`, from lineOffsets), copied into one buffer in that order. */
export function pickLines(lines: Buffer, offsets: Uint32Array, indices: readonly number[]): Buffer {
  let size = 0;
  for (const i of indices) size += offsets[i + 1]! - offsets[i]!;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const i of indices) at += lines.copy(out, at, offsets[i]!, offsets[i + 1]!);
  return out;
}
