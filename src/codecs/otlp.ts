/**
 * OTLP/HTTP logs (`POST /v1/logs`): the ExportLogsServiceRequest in protobuf or JSON, its response, and how each
 * log record becomes a Fluxo event.
 *
 * Record → event (docs/components.md repeats this):
 * - `message`: the body when it is a string. Any other body (map, array, number, bool, bytes) goes to `body` as a
 *   JSON value instead, and the event has no `message`.
 * - `severity_text`, `severity_number` (1-24), `event_name`: when set.
 * - `attributes`: the record's attributes as one JSON object, keys exactly as sent (`http.method` stays one key,
 *   never nested); values unwrapped from AnyValue: string, bool, double as they are; int64 as a number (a
 *   decimal string beyond ±2^53); bytes as base64; arrays as arrays; key-value lists as objects.
 * - `resource`: the resource attributes, the same way; `scope`: `{ name, version, attributes }` of the
 *   instrumentation scope (absent when unnamed).
 * - `trace_id`, `span_id`: lowercase hex (absent when empty or all zero); `trace_flags` when not zero.
 * - `timestamp`: time_unix_nano as ISO-8601 (milliseconds), else observed_time_unix_nano, else the time of receipt;
 *   `observed_timestamp`: observed_time_unix_nano when set.
 * - `host`: the resource's `host.name`, else the client's address; `source_type`: `otlp`; `_id`: a UUIDv7.
 * `dropped_attributes_count` is kept when not zero. A record whose fields have the wrong type (JSON) or a trace id
 * of the wrong length is rejected and reported in the response's partial success.
 */
import { FluxoError } from '../core/errors.ts';
import type { Event, EventIdGenerator } from '../core/event.ts';
import { lazyImport } from '../core/lazy-import.ts';
import {
  DEFAULT_MAX_EVENTS_PER_REQUEST,
  DEFAULT_MAX_NESTING_DEPTH,
  NestingTooDeepError,
  scanJson,
} from './body-limits.ts';

type ProtobufCodec = typeof import('./otlp-protobuf.ts');
let protobufCodec: ProtobufCodec | undefined;
const importProtobuf = lazyImport(() => import('./otlp-protobuf.ts'));

/**
 * Loads protobufjs and the OTLP schema (src/codecs/otlp-protobuf.ts), once: ~20 ms of CPU that a start, and an
 * agent whose clients send OTLP/JSON or nothing, does not pay. The source awaits it before it decodes or answers
 * its first protobuf request; the functions below need it for protobuf and throw when it was not loaded.
 */
export async function loadOtlpProtobuf(): Promise<void> {
  protobufCodec ??= await importProtobuf();
}

export const otlpProtobufLoaded = (): boolean => protobufCodec !== undefined;

function protobuf(): ProtobufCodec {
  if (protobufCodec === undefined) throw new Error('the OTLP protobuf codec is used before loadOtlpProtobuf()');
  return protobufCodec;
}

/** The body cannot be read as an ExportLogsServiceRequest: answered 400. */
export class OtlpFormatError extends FluxoError {
  constructor(message: string) {
    super('FLUXO_OTLP_MALFORMED', message);
  }
}

export type OtlpEncoding = 'protobuf' | 'json';

export interface OtlpLimits {
  /** Most log records in one request. */
  maxRecords: number;
  /** Deepest nesting of one event (the event object is level 1; `body` and `attributes` are level 2). */
  maxDepth: number;
}

const DEFAULT_LIMITS: OtlpLimits = { maxRecords: DEFAULT_MAX_EVENTS_PER_REQUEST, maxDepth: DEFAULT_MAX_NESTING_DEPTH };

// In OTLP/JSON the log records are the elements of the arrays at level 6:
// {resourceLogs:[{scopeLogs:[{logRecords:[ record …
const JSON_RECORDS_LEVEL = 6;

/**
 * Decodes a request body into plain objects with the OTLP/JSON field names. Throws OtlpFormatError, and
 * TooManyEventsError when the body holds more than `maxRecords` records (counted on the wire, before protobufjs
 * or JSON.parse builds one object per record). In JSON, nesting deeper than any event within `maxDepth` can
 * need is refused before parsing (NestingTooDeepError); logsRequestToEvents checks each value's exact depth.
 */
export function decodeLogsRequest(body: Uint8Array, encoding: OtlpEncoding, limits = DEFAULT_LIMITS): unknown {
  if (encoding === 'protobuf') {
    const codec = protobuf();
    codec.countProtobufLogRecords(body, limits.maxRecords);
    try {
      return codec.decodeRequest(body);
    } catch (error) {
      throw new OtlpFormatError(`invalid protobuf ExportLogsServiceRequest: ${(error as Error).message}`);
    }
  }
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  // A record sits at level 7 and each AnyValue level takes at most 4 JSON levels ({kvlistValue:{values:[{value:).
  try {
    scanJson(text, JSON_RECORDS_LEVEL + 4 * limits.maxDepth + 4, JSON_RECORDS_LEVEL, limits.maxRecords);
  } catch (error) {
    throw error instanceof NestingTooDeepError ? new NestingTooDeepError(limits.maxDepth) : error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new OtlpFormatError(`invalid JSON: ${(error as Error).message}`);
  }
}

/** The success response: empty when everything was accepted, else a partial success with the count and reason. */
export function encodeLogsResponse(encoding: OtlpEncoding, rejected: number, errorMessage: string): Buffer {
  if (encoding === 'protobuf') return protobuf().encodeResponse(rejected, errorMessage);
  if (rejected === 0) return EMPTY_JSON_RESPONSE;
  // int64 is a decimal string in OTLP/JSON (proto3 JSON mapping).
  const json = rejected > 0 ? { partialSuccess: { rejectedLogRecords: String(rejected), errorMessage } } : {};
  return Buffer.from(JSON.stringify(json));
}

/** The full-success body, the same for every request (Node copies a buffer into the socket, never keeps it). */
const EMPTY_JSON_RESPONSE = Buffer.from('{}');

/** A google.rpc.Status body for error responses (400, 413, 415, 429, 503). */
export function encodeStatus(encoding: OtlpEncoding, code: number, message: string): Buffer {
  if (encoding === 'protobuf') return protobuf().encodeStatus(code, message);
  return Buffer.from(JSON.stringify({ code, message }));
}

export interface ConvertResult {
  events: Event[];
  rejected: number;
  /** The reason of the first rejection, for the partial success message. */
  firstError: string;
}

/** A value of the wrong shape inside one log record: that record is rejected, the others go on. */
class RecordError extends Error {}

/**
 * Turns a decoded request (protobuf or JSON) into events, one per log record. Throws OtlpFormatError when the
 * request itself has the wrong shape; records with wrong values are counted in `rejected` instead.
 */
export function logsRequestToEvents(
  request: unknown,
  peerHost: string,
  ids: EventIdGenerator,
  maxDepth = DEFAULT_MAX_NESTING_DEPTH,
): ConvertResult {
  const now = Date.now();
  const receivedIso = new Date(now).toISOString();
  const events: Event[] = [];
  let rejected = 0;
  let firstError = '';
  if (!isObject(request)) throw new OtlpFormatError('expected an ExportLogsServiceRequest object');
  const resourceLogs = field(request, 'resourceLogs');
  if (resourceLogs === undefined) return { events, rejected, firstError };
  if (!Array.isArray(resourceLogs)) {
    throw new OtlpFormatError('expected an ExportLogsServiceRequest: an object with a `resourceLogs` array');
  }
  for (const rl of resourceLogs) {
    if (!isObject(rl)) throw new OtlpFormatError('resourceLogs: expected objects');
    let resource: Record<string, unknown> | undefined;
    let host = peerHost;
    const scopeLogs = field(rl, 'scopeLogs') ?? [];
    if (!Array.isArray(scopeLogs)) throw new OtlpFormatError('scopeLogs: expected an array');
    try {
      resource = attributesOf(field(field(rl, 'resource'), 'attributes'), 2, maxDepth);
      const hostName = resource?.['host.name'];
      if (typeof hostName === 'string' && hostName !== '') host = hostName;
    } catch (error) {
      // A resource that cannot be read spoils every record under it.
      const count = scopeLogs.reduce((n: number, sl: unknown) => n + arrayLength(field(sl, 'logRecords')), 0);
      rejected += count;
      firstError ||= `resource: ${(error as Error).message}`;
      continue;
    }
    for (const sl of scopeLogs) {
      if (!isObject(sl)) throw new OtlpFormatError('scopeLogs: expected objects');
      const records = field(sl, 'logRecords') ?? [];
      if (!Array.isArray(records)) throw new OtlpFormatError('logRecords: expected an array');
      let scope: Record<string, unknown> | undefined;
      try {
        scope = scopeOf(field(sl, 'scope'), maxDepth);
      } catch (error) {
        rejected += records.length;
        firstError ||= `scope: ${(error as Error).message}`;
        continue;
      }
      for (const record of records) {
        try {
          events.push(recordToEvent(record, resource, scope, host, receivedIso, ids.next(now), maxDepth));
        } catch (error) {
          if (!(error instanceof RecordError)) throw error;
          rejected++;
          firstError ||= `log record: ${error.message}`;
        }
      }
    }
  }
  return { events, rejected, firstError };
}

function recordToEvent(
  record: unknown,
  resource: Record<string, unknown> | undefined,
  scope: Record<string, unknown> | undefined,
  host: string,
  receivedIso: string,
  id: string,
  maxDepth: number,
): Event {
  if (!isObject(record)) throw new RecordError('expected an object');
  const event: Event = {};
  const body = field(record, 'body');
  if (body !== undefined && body !== null) {
    const value = anyValue(body, 2, maxDepth);
    if (typeof value === 'string') event.message = value;
    else if (value !== null) event.body = value;
  }
  const severityText = field(record, 'severityText');
  if (severityText !== undefined && typeof severityText !== 'string')
    throw new RecordError('severityText: expected a string');
  if (severityText) event.severity_text = severityText;
  const severityNumber = severityOf(field(record, 'severityNumber'));
  if (severityNumber > 0) event.severity_number = severityNumber;
  const eventName = field(record, 'eventName');
  if (typeof eventName === 'string' && eventName !== '') event.event_name = eventName;
  const attributes = attributesOf(field(record, 'attributes'), 2, maxDepth);
  if (attributes) event.attributes = attributes;
  if (resource) event.resource = resource;
  if (scope) event.scope = scope;
  const traceId = idHex(field(record, 'traceId'), 16, 'traceId');
  if (traceId) event.trace_id = traceId;
  const spanId = idHex(field(record, 'spanId'), 8, 'spanId');
  if (spanId) event.span_id = spanId;
  const flags = integer(field(record, 'flags'), 'flags');
  if (flags) event.trace_flags = flags & 0xff;
  const dropped = integer(field(record, 'droppedAttributesCount'), 'droppedAttributesCount');
  if (dropped) event.dropped_attributes_count = dropped;
  const time = nanosToIso(field(record, 'timeUnixNano'), 'timeUnixNano');
  const observed = nanosToIso(field(record, 'observedTimeUnixNano'), 'observedTimeUnixNano');
  event.timestamp = time ?? observed ?? receivedIso;
  if (observed) event.observed_timestamp = observed;
  event.host = host;
  event.source_type = 'otlp';
  event._id = id;
  return event;
}

/** A field of a decoded message: own properties only (protobufjs keeps proto3 defaults on the prototype). */
function field(o: unknown, name: string): unknown {
  if (o === null || typeof o !== 'object') return undefined;
  const value = (o as Record<string, unknown>)[name];
  // Most optional fields are absent: one load decides; a present one must be the object's own.
  return value === undefined || !Object.hasOwn(o, name) ? undefined : value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function arrayLength(v: unknown): number {
  return Array.isArray(v) ? v.length : 0;
}

function scopeOf(scope: unknown, maxDepth: number): Record<string, unknown> | undefined {
  if (scope === undefined || scope === null) return undefined;
  if (!isObject(scope)) throw new RecordError('expected an object');
  const name = field(scope, 'name');
  if (typeof name !== 'string' || name === '') return undefined;
  const out: Record<string, unknown> = { name };
  const version = field(scope, 'version');
  if (typeof version === 'string' && version !== '') out.version = version;
  const attributes = attributesOf(field(scope, 'attributes'), 3, maxDepth);
  if (attributes) out.attributes = attributes;
  return out;
}

/** KeyValue list → object at nesting level `depth` of the event; undefined when empty. */
function attributesOf(list: unknown, depth: number, maxDepth: number): Record<string, unknown> | undefined {
  if (list === undefined || list === null) return undefined;
  if (depth > maxDepth) throw new NestingTooDeepError(maxDepth);
  if (!Array.isArray(list)) throw new RecordError('attributes: expected an array of key-value pairs');
  if (list.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  for (const kv of list) {
    const key = field(kv, 'key');
    if (typeof key !== 'string') throw new RecordError('attributes: a key is not a string');
    const value = field(kv, 'value');
    // A key such as `__proto__` must stay a key: an assignment would set the object's prototype instead.
    const unwrapped = value === undefined || value === null ? null : anyValue(value, depth + 1, maxDepth);
    if (key === '__proto__') Object.defineProperty(out, key, { value: unwrapped, enumerable: true, writable: true });
    else out[key] = unwrapped;
  }
  return out;
}

/**
 * AnyValue → JSON value (null when empty); an array or key-value list becomes a container at nesting level
 * `depth` of the event, refused past `maxDepth` (NestingTooDeepError) so what is accepted can be encoded again.
 */
function anyValue(v: unknown, depth: number, maxDepth: number): unknown {
  if (!isObject(v)) throw new RecordError('expected an AnyValue object');
  if (Object.hasOwn(v, 'stringValue')) {
    if (typeof v.stringValue !== 'string') throw new RecordError('stringValue: expected a string');
    return v.stringValue;
  }
  if (Object.hasOwn(v, 'boolValue')) {
    if (typeof v.boolValue !== 'boolean') throw new RecordError('boolValue: expected a boolean');
    return v.boolValue;
  }
  if (Object.hasOwn(v, 'intValue')) return int64(v.intValue, 'intValue');
  if (Object.hasOwn(v, 'doubleValue')) {
    const d = v.doubleValue;
    if (typeof d === 'number') return Number.isFinite(d) ? d : String(d);
    if (d === 'NaN' || d === 'Infinity' || d === '-Infinity') return d;
    if (typeof d === 'string' && d.trim() !== '' && Number.isFinite(Number(d))) return Number(d);
    throw new RecordError('doubleValue: expected a number');
  }
  if (Object.hasOwn(v, 'arrayValue')) {
    const values = field(v.arrayValue, 'values') ?? [];
    if (!Array.isArray(values)) throw new RecordError('arrayValue.values: expected an array');
    if (depth > maxDepth) throw new NestingTooDeepError(maxDepth);
    return values.map((value) => anyValue(value, depth + 1, maxDepth));
  }
  if (Object.hasOwn(v, 'kvlistValue')) {
    if (depth > maxDepth) throw new NestingTooDeepError(maxDepth);
    return attributesOf(field(v.kvlistValue, 'values') ?? [], depth, maxDepth) ?? {};
  }
  if (Object.hasOwn(v, 'bytesValue')) {
    const b = v.bytesValue;
    if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
    if (typeof b === 'string') return b; // already base64 in OTLP/JSON
    throw new RecordError('bytesValue: expected base64');
  }
  return null;
}

interface LongLike {
  low: number;
  high: number;
  unsigned: boolean;
}

function isLong(v: unknown): v is LongLike {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as LongLike).low === 'number' &&
    typeof (v as LongLike).high === 'number'
  );
}

function toBigInt(v: unknown, name: string): bigint {
  if (isLong(v)) {
    const value = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    return v.unsigned ? value : BigInt.asIntN(64, value);
  }
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return BigInt(v);
  throw new RecordError(`${name}: expected an integer`);
}

/** int64 → number when exact, else its decimal string. */
function int64(v: unknown, name: string): number | string {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  const big = toBigInt(v, name);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(big)
    : big.toString();
}

function integer(v: unknown, name: string): number {
  if (v === undefined || v === null) return 0;
  const n = int64(v, name);
  return typeof n === 'number' ? n : 0;
}

const SEVERITY_NAMES = new Map<string, number>(
  ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'].flatMap((level, i) =>
    ['', '2', '3', '4'].map((suffix, j) => [`SEVERITY_NUMBER_${level}${suffix}`, i * 4 + j + 1] as const),
  ),
);

function severityOf(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 24) return v;
  if (typeof v === 'string') {
    const n = SEVERITY_NAMES.get(v);
    if (n !== undefined) return n;
    if (v === 'SEVERITY_NUMBER_UNSPECIFIED') return 0;
  }
  throw new RecordError('severityNumber: expected an integer from 0 to 24');
}

const ZERO_ID = /^0*$/;

/** trace/span id → lowercase hex: bytes in protobuf, hex in OTLP/JSON. Undefined when empty or all zero. */
function idHex(v: unknown, bytes: number, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  let hex: string;
  if (v instanceof Uint8Array) {
    if (v.length === 0) return undefined;
    if (v.length !== bytes) throw new RecordError(`${name}: expected ${bytes} bytes, found ${v.length}`);
    hex = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  } else if (typeof v === 'string') {
    if (v === '') return undefined;
    if (v.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(v)) {
      throw new RecordError(`${name}: expected ${bytes * 2} hex digits`);
    }
    hex = v.toLowerCase();
  } else {
    throw new RecordError(`${name}: expected hex`);
  }
  return ZERO_ID.test(hex) ? undefined : hex;
}

/** The largest epoch milliseconds a Date holds. */
const MAX_MS = 8_640_000_000_000_000;

/** Unix nanoseconds → ISO-8601 (milliseconds); undefined when 0 or absent. Exact, without BigInt on the common paths. */
function nanosToIso(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  let ms: number;
  if (isLong(v) && v.unsigned) {
    // nanos = high·2^32 + low and 2^32 = 4294·10^6 + 967296: every term stays below 2^53.
    const high = v.high >>> 0;
    const low = v.low >>> 0;
    if (high === 0 && low === 0) return undefined;
    ms = high * 4294 + Math.floor((high * 967_296 + low) / 1e6);
  } else if (typeof v === 'string' && DECIMAL_NANOS.test(v)) {
    if (ALL_ZEROS.test(v)) return undefined;
    ms = v.length <= 6 ? 0 : Number(v.slice(0, -6));
  } else {
    const nanos = toBigInt(v, name);
    if (nanos === 0n) return undefined;
    ms = Number(nanos / 1_000_000n);
  }
  return msToIso(ms, name);
}

const DECIMAL_NANOS = /^\d{1,20}$/;
const ALL_ZEROS = /^0+$/;
// Records of one request mostly share their millisecond: the last conversion is kept.
let lastMs = Number.NaN;
let lastIso = '';

function msToIso(ms: number, name: string): string {
  if (ms === lastMs) return lastIso;
  if (!(ms <= MAX_MS && ms >= -MAX_MS)) throw new RecordError(`${name}: out of range`);
  lastIso = new Date(ms).toISOString();
  lastMs = ms;
  return lastIso;
}
