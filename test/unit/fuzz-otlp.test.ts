/**
 * Fuzzing OTLP/HTTP logs bodies, protobuf and JSON, as an exporter (or an attacker) sends them: valid
 * ExportLogsServiceRequests encoded with protobufjs, then mutated. Whatever the body, only the errors the otlp
 * source answers 400/413 may escape; never more events than maxRecords, never an event deeper than maxDepth.
 * Bounded runs in `npm test`; FLUXO_FUZZ_RUNS=<n> (scripts/fuzz.js) runs each property n times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { NestingTooDeepError, TooManyEventsError } from '../../src/codecs/body-limits.ts';
import { decodeLogsRequest, loadOtlpProtobuf, logsRequestToEvents, OtlpFormatError } from '../../src/codecs/otlp.ts';
import { EventIdGenerator } from '../../src/core/event.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

// The source loads it with its first protobuf request.
await loadOtlpProtobuf();

const runs = fuzzRuns;

// opentelemetry-proto's logs messages (logs/v1, common/v1, resource/v1, collector/logs/v1), field numbers as there.
const root = protobuf.parse(`
syntax = "proto3";
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Resource { repeated KeyValue attributes = 1; }
message LogRecord {
  fixed64 time_unix_nano = 1; fixed64 observed_time_unix_nano = 11; int32 severity_number = 2;
  string severity_text = 3; AnyValue body = 5; repeated KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7; fixed32 flags = 8; bytes trace_id = 9; bytes span_id = 10;
  string event_name = 12;
}
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; }
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
`).root;
const Request = root.lookupType('ExportLogsServiceRequest');

const MAX_RECORDS = 6;
const MAX_DEPTH = 5;
const LIMITS = { maxRecords: MAX_RECORDS, maxDepth: MAX_DEPTH };
const ids = new EventIdGenerator();

// --- generators: one model, rendered as protobuf and as OTLP/JSON ------------------------------------------------

const { anyValue } = fc.letrec((tie) => ({
  anyValue: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ stringValue: fc.string({ maxLength: 10 }) }),
    fc.record({ boolValue: fc.boolean() }),
    fc.record({ intValue: fc.oneof(fc.integer(), fc.constantFrom('9223372036854775807', '-9223372036854775808')) }),
    fc.record({ doubleValue: fc.double() }),
    fc.record({ bytesValue: fc.uint8Array({ maxLength: 8 }) }),
    fc.record({ arrayValue: fc.record({ values: fc.array(tie('anyValue'), { maxLength: 3 }) }) }),
    fc.record({ kvlistValue: fc.record({ values: fc.array(tie('keyValue'), { maxLength: 3 }) }) }),
  ),
  keyValue: fc.record({ key: fc.constantFrom('a', 'b.c', '__proto__', 'host.name', ''), value: tie('anyValue') }),
}));
const attributes = fc.array(
  fc.record({ key: fc.constantFrom('k', 'host.name', '__proto__', 'x.y'), value: anyValue }),
  { maxLength: 3 },
);
const nanos = fc.oneof(fc.constant('0'), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String));
const logRecord = fc.record(
  {
    timeUnixNano: nanos,
    observedTimeUnixNano: nanos,
    severityNumber: fc.integer({ min: 0, max: 30 }),
    severityText: fc.string({ maxLength: 5 }),
    body: anyValue,
    attributes,
    droppedAttributesCount: fc.nat(),
    flags: fc.nat(),
    traceId: fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 20 })),
    spanId: fc.oneof(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.uint8Array({ maxLength: 10 })),
    eventName: fc.string({ maxLength: 5 }),
  },
  { requiredKeys: [] },
);
const request = fc.record({
  resourceLogs: fc.array(
    fc.record({
      resource: fc.record({ attributes }),
      scopeLogs: fc.array(
        fc.record(
          {
            scope: fc.record({ name: fc.string({ maxLength: 5 }), version: fc.string({ maxLength: 3 }), attributes }),
            logRecords: fc.array(logRecord, { maxLength: 4 }),
          },
          { requiredKeys: ['logRecords'] },
        ),
        { maxLength: 3 },
      ),
    }),
    { maxLength: 3 },
  ),
});

function toProtobuf(req: unknown): Buffer {
  return Buffer.from(Request.encode(Request.fromObject(req as Record<string, unknown>)).finish());
}

/** The proto3 JSON mapping, as OTLP/JSON has it: bytes base64 except trace and span ids (hex), int64 as strings. */
function toJson(req: unknown): string {
  return JSON.stringify(req, function (this: Record<string, unknown>, key, value) {
    const raw = this[key];
    if (raw instanceof Uint8Array) {
      return key === 'traceId' || key === 'spanId'
        ? Buffer.from(raw).toString('hex')
        : Buffer.from(raw).toString('base64');
    }
    return value;
  });
}

/** A protobuf varint, as many bytes as `minBytes` at least (padded with continuation bits, as decoders allow). */
function varint(n: number, minBytes = 1): number[] {
  const out: number[] = [];
  let v = n;
  do {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  } while (v > 0 || out.length < minBytes);
  out[out.length - 1]! &= 0x7f;
  return out;
}

/** Mutations a fuzzer (or someone who read the decoders) would make to a protobuf body. */
function mutatedProtobuf(base: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc
      .tuple(base, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([b, flips]) => {
        const copy = Buffer.from(b);
        for (const [at, v] of flips) if (copy.length > 0) copy[at % copy.length] = v;
        return copy;
      }),
    fc.tuple(base, fc.nat()).map(([b, at]) => b.subarray(0, b.length === 0 ? 0 : at % b.length)),
    fc
      .tuple(base, base, fc.nat(), fc.nat())
      .map(([a, b, i, j]) => Buffer.concat([a.subarray(0, i % (a.length + 1)), b.subarray(j % (b.length + 1))])),
    // Concatenated messages merge (repeated fields append): the records of both count.
    fc.tuple(base, base).map(([a, b]) => Buffer.concat([a, b])),
    // An unknown field before the rest: a group (wire type 3 … 4), a varint, a fixed64.
    fc
      .tuple(
        base,
        fc.constantFrom([0x2b, 0x2c], [0x28, 0x01], [0x29, 0, 0, 0, 0, 0, 0, 0, 0], [0x2b, 0x08, 0x01, 0x2c]),
      )
      .map(([b, field]) => Buffer.concat([Buffer.from(field), b])),
    // The same message with its outer tags and lengths written as longer (still valid) varints.
    fc.tuple(base, fc.integer({ min: 2, max: 10 })).map(([b, width]) => rewriteTopLevel(b, width)),
  );
}

/** Re-encodes the top-level fields of `body` with tag and length varints `width` bytes long. */
function rewriteTopLevel(body: Buffer, width: number): Buffer {
  const reader = protobuf.Reader.create(body);
  const out: number[] = [];
  try {
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if ((tag & 7) !== 2) return body;
      const len = reader.uint32();
      out.push(...varint(tag, width), ...varint(len, width), ...body.subarray(reader.pos, reader.pos + len));
      reader.skip(len);
    }
  } catch {
    return body;
  }
  return Buffer.from(out);
}

/** JSON text mutated: characters replaced, inserted or cut; a value replaced by deep nesting. */
function mutatedJson(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const junk = fc.constantFrom('[', ']', '{', '}', '"', ',', ':', '\\', 'null', '1e999', '-', '0', '\u2028', ' ');
  return fc.oneof(
    fc
      .tuple(base, fc.nat(), fc.nat({ max: 3 }), junk)
      .map(([t, at, cut, ins]) => t.slice(0, at % (t.length + 1)) + ins + t.slice((at % (t.length + 1)) + cut)),
    fc.tuple(base, fc.nat()).map(([t, at]) => t.slice(0, at % (t.length + 1))),
    fc.tuple(base, fc.integer({ min: 1, max: 3000 }), fc.nat()).map(([t, depth, which]) => {
      // Replace one {"stringValue":…} (or any value) by nested arrayValues or raw arrays.
      const deep =
        which % 2 === 0
          ? `${'{"arrayValue":{"values":['.repeat(depth)}${']}}'.repeat(depth)}`
          : `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const at = t.indexOf('{"stringValue"');
      if (at < 0) return t.replace('"logRecords":[', `"logRecords":[{"body":${deep}},`);
      const end = t.indexOf('}', at);
      return t.slice(0, at) + deep + t.slice(end + 1);
    }),
    // Many empty records: the count is the cap's business.
    fc
      .tuple(base, fc.integer({ min: 0, max: 50 }))
      .map(([t, n]) => t.replace('"logRecords":[', `"logRecords":[${'{},'.repeat(n)}`)),
  );
}

// --- the property ------------------------------------------------------------------------------------------------

function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let max = 0;
  for (const child of Object.values(v as object)) max = Math.max(max, depthOf(child));
  return 1 + max;
}

/** The body through the codec as the otlp source runs it; checks the caps; rethrows only undeclared errors. */
function check(body: Uint8Array, encoding: 'protobuf' | 'json'): void {
  try {
    const decoded = decodeLogsRequest(body, encoding, LIMITS);
    const { events, rejected } = logsRequestToEvents(decoded, '192.0.2.1', ids, MAX_DEPTH);
    assert.ok(events.length + rejected <= MAX_RECORDS, `${events.length} events + ${rejected} rejected`);
    for (const e of events) {
      assert.ok(depthOf(e) <= MAX_DEPTH, `an event ${depthOf(e)} levels deep > ${MAX_DEPTH}`);
      assert.equal(typeof JSON.stringify(e), 'string');
    }
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    if (error instanceof OtlpFormatError || error instanceof TooManyEventsError) return;
    if (error instanceof NestingTooDeepError) return;
    assert.fail(`undeclared ${(error as Error)?.constructor?.name}: ${(error as Error)?.message ?? error}`);
  }
}

describe('fuzz: OTLP logs request decoding', () => {
  const protobufBody = request.map(toProtobuf);
  const jsonBody = request.map(toJson);

  it('property: protobuf bodies, valid and mutated, never escape the declared errors nor the caps', () => {
    fc.assert(
      fc.property(fc.oneof(protobufBody, mutatedProtobuf(protobufBody), fc.uint8Array({ maxLength: 100 })), (body) =>
        check(body, 'protobuf'),
      ),
      runs(600),
    );
  });

  it('property: JSON bodies, valid and mutated, never escape the declared errors nor the caps', () => {
    fc.assert(
      fc.property(fc.oneof(jsonBody, mutatedJson(jsonBody), fc.string({ maxLength: 100 })), (text) =>
        check(Buffer.from(text), 'json'),
      ),
      runs(600),
    );
  });

  it('regression: records behind an unknown group field are counted', () => {
    // Found by the protobuf property: the record count walked the wire its own way and stopped at a group
    // (wire type 3), which protobufjs skips before decoding the rest, so a body could hold any number of records
    // past max_events_per_request.
    const records = Array(MAX_RECORDS + 1).fill({});
    const many = toProtobuf({ resourceLogs: [{ scopeLogs: [{ logRecords: records }] }] });
    const group = [0x2b, 0x2c]; // field 5: start group, end group
    const scopeLogs = Buffer.from(root.lookupType('ScopeLogs').encode({ logRecords: records }).finish());
    const inner = [...group, 0x12, ...varint(scopeLogs.length), ...scopeLogs]; // a ResourceLogs, group first
    for (const body of [
      Buffer.concat([Buffer.from(group), many]),
      Buffer.from([0x0a, ...varint(inner.length), ...inner]),
    ]) {
      assert.equal((Request.decode(body).toJSON().resourceLogs as unknown[]).length, 1, 'protobufjs reads it');
      assert.throws(() => decodeLogsRequest(body, 'protobuf', LIMITS), TooManyEventsError);
    }
  });
});
