import { createGunzip } from 'node:zlib';
import { FluxoError } from '../core/errors.ts';

/**
 * Limits on what a small request body may become once decoded: its decompressed bytes, the events it yields and
 * how deeply its JSON nests. Each is checked before the memory is spent (while inflating, and by scanning the JSON
 * text before `JSON.parse`), because a 10 KB gzip body can hold gigabytes and a deep JSON value can be parsed but
 * never encoded again (`JSON.stringify` recurses).
 */

/** Pipeline-sized batches: a source splits a large request into batches of at most this many events. */
export const MAX_BATCH_EVENTS = 1000;

/** Defaults shared by the http and otlp sources; docs/components.md repeats them in the option descriptions. */
export const DEFAULT_MAX_DECODED_BODY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_EVENTS_PER_REQUEST = 100_000;
export const DEFAULT_MAX_NESTING_DEPTH = 100;

/** The body inflates past `max_decoded_body_bytes`: answered 413. */
export class DecodedBodyTooLargeError extends FluxoError {
  constructor(
    readonly limit: number,
    /** Bytes the inflater had produced when it was stopped: at most `limit` + one zlib chunk. */
    readonly produced: number,
  ) {
    super('FLUXO_DECODED_BODY_TOO_LARGE', `decompressed body larger than max_decoded_body_bytes (${limit} bytes)`);
  }
}

/** The body holds more events than `max_events_per_request`: answered 413. */
export class TooManyEventsError extends FluxoError {
  constructor(readonly limit: number) {
    super('FLUXO_TOO_MANY_EVENTS', `more than max_events_per_request (${limit}) events in one request`);
  }
}

/** A JSON value nests deeper than `max_nesting_depth`: answered 400. */
export class NestingTooDeepError extends FluxoError {
  constructor(readonly limit: number) {
    super('FLUXO_NESTING_TOO_DEEP', `JSON nested deeper than max_nesting_depth (${limit} levels)`);
  }
}

/** The gzip stream is corrupt or truncated: answered 400. */
export class InvalidGzipError extends Error {}

export interface InflateResult {
  body: Buffer;
  /** Decompressed bytes, the same as `body.length`. */
  produced: number;
}

/**
 * Inflates a gzip body (several members allowed), stopping the inflater as soon as its output passes `maxBytes`:
 * memory stays at the cap plus one zlib chunk (16 KiB) whatever the ratio. Rejects with DecodedBodyTooLargeError
 * or InvalidGzipError.
 */
export function gunzipCapped(input: Buffer, maxBytes: number): Promise<InflateResult> {
  return new Promise((resolve, reject) => {
    const inflater = createGunzip();
    const chunks: Buffer[] = [];
    let produced = 0;
    let over = false;
    inflater.on('data', (chunk: Buffer) => {
      if (over) return;
      produced += chunk.length;
      if (produced > maxBytes) {
        over = true;
        chunks.length = 0;
        inflater.destroy();
        reject(new DecodedBodyTooLargeError(maxBytes, produced));
        return;
      }
      chunks.push(chunk);
    });
    inflater.on('error', (error) => {
      if (!over) reject(new InvalidGzipError(`invalid gzip body: ${error.message}`));
    });
    inflater.on('end', () => {
      if (!over) resolve({ body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, produced), produced });
    });
    inflater.end(input);
  });
}

/**
 * Scans JSON text without building it: throws NestingTooDeepError as soon as arrays and objects nest deeper than
 * `maxDepth` (the outermost container is level 1), and TooManyEventsError once the arrays whose elements sit at
 * level `countDepth` hold more than `maxElements` elements in all. Returns that element count. Malformed text is
 * not reported here: `JSON.parse` does it afterwards; the scan only has to bound what that parse may build.
 */
export function scanJson(text: string, maxDepth: number, countDepth: number, maxElements: number): number {
  const isArray = new Uint8Array(maxDepth + 1);
  let depth = 0;
  let counting = false;
  let sawValue = false;
  let elements = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20) continue;
    if (counting && c !== 0x5d && (c === 0x2c || !sawValue)) {
      sawValue = true;
      if (++elements > maxElements) throw new TooManyEventsError(maxElements);
      if (c === 0x2c) continue;
    }
    if (c === 0x22) {
      // Skip the string: a backslash escapes the next character, whatever it is.
      for (i++; i < n; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c) i++;
        else if (s === 0x22) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) throw new NestingTooDeepError(maxDepth);
      isArray[depth] = c === 0x5b ? 1 : 0;
      counting = depth === countDepth && c === 0x5b;
      sawValue = false;
    } else if (c === 0x7d || c === 0x5d) {
      if (depth > 0) depth--;
      counting = depth === countDepth && isArray[depth] === 1;
      sawValue = true;
    }
  }
  return elements;
}
