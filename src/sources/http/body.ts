import { NestingTooDeepError, scanJson, TooManyEventsError } from '../../codecs/body-limits.ts';
import { FluxoError } from '../../core/errors.ts';
import type { Event } from '../../core/event.ts';

/**
 * Request bodies into events, by `Content-Type`:
 * - `application/x-ndjson` (also `application/ndjson`, `application/jsonl`, `application/x-jsonlines`):
 *   one JSON value per line;
 * - `application/json`: an array of values, or one object;
 * - `text/plain`, or no Content-Type: one event per line, the line in `message`.
 * A JSON object becomes the event as sent; a JSON string becomes `{ message }`; any other value is refused.
 * Blank lines are skipped. A body that does not decode is refused whole (400), so a client never has to guess
 * which part was taken; so is one with more than `maxEvents` events (TooManyEventsError, 413) or a JSON value
 * nested deeper than `maxDepth` (NestingTooDeepError, 400: no encoder could write it again). Both are found by
 * scanning the text before anything is built from it.
 */
export type BodyFormat = 'ndjson' | 'json' | 'text';

const FORMATS: Record<string, BodyFormat> = {
  'application/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'application/x-jsonl': 'ndjson',
  'application/jsonlines': 'ndjson',
  'application/x-jsonlines': 'ndjson',
  'text/plain': 'text',
};

export const SUPPORTED_CONTENT_TYPES = Object.keys(FORMATS);

/** The body format of a Content-Type header (parameters such as `charset` ignored); undefined if unsupported. */
export function bodyFormatOf(contentType: string | undefined): BodyFormat | undefined {
  if (contentType === undefined || contentType === '') return 'text';
  const semi = contentType.indexOf(';');
  const media = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return FORMATS[media];
}

/** A body that cannot be decoded: answered 400 with `message`. */
export class MalformedBodyError extends FluxoError {
  constructor(message: string) {
    super('FLUXO_HTTP_MALFORMED_BODY', message);
  }
}

export interface BodyLimits {
  /** Most events one body may hold. */
  maxEvents: number;
  /** Deepest nesting of one event: the event object is level 1. */
  maxDepth: number;
}

/** Decodes `text` into events (fields as sent, not yet stamped). Throws MalformedBodyError and the limit errors. */
export function decodeBody(format: BodyFormat, text: string, limits: BodyLimits): Event[] {
  if (format === 'json') return decodeJson(text, limits);
  const events: Event[] = [];
  const { maxEvents, maxDepth } = limits;
  // Line by line with indexOf: a split would build every line of a 5M-line body before the count is checked.
  let start = 0;
  for (let lineNo = 1; start <= text.length; lineNo++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    let line = text.slice(start, end);
    start = end + 1;
    if (format === 'text') {
      if (line.charCodeAt(line.length - 1) === 0x0d) line = line.slice(0, -1);
      if (line.length === 0) continue;
      if (events.length >= maxEvents) throw new TooManyEventsError(maxEvents);
      events.push({ message: line });
      continue;
    }
    if (isBlank(line)) continue;
    if (events.length >= maxEvents) throw new TooManyEventsError(maxEvents);
    scanJson(line, maxDepth, 0, 0);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new MalformedBodyError(`malformed JSON on line ${lineNo}: ${(error as Error).message}`);
    }
    events.push(toEvent(value, `line ${lineNo}`));
  }
  return events;
}

function decodeJson(text: string, { maxEvents, maxDepth }: BodyLimits): Event[] {
  if (isBlank(text)) return [];
  // In an array body the events sit one level down.
  const isArrayBody = text.trimStart().startsWith('[');
  try {
    scanJson(text, isArrayBody ? maxDepth + 1 : maxDepth, 1, maxEvents);
  } catch (error) {
    throw error instanceof NestingTooDeepError ? new NestingTooDeepError(maxDepth) : error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MalformedBodyError(`malformed JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(value)) {
    const events: Event[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) events[i] = toEvent(value[i], `element ${i}`);
    return events;
  }
  if (typeof value === 'object' && value !== null) return [value as Event];
  throw new MalformedBodyError(`a JSON body must be an object or an array of events, found ${kindOf(value)}`);
}

function toEvent(value: unknown, where: string): Event {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Event;
  if (typeof value === 'string') return { message: value };
  throw new MalformedBodyError(`${where} is ${kindOf(value)}: expected an event object or a string`);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function isBlank(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return false;
  }
  return true;
}
