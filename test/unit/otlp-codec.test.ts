import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeLogsRequest,
  encodeLogsResponse,
  loadOtlpProtobuf,
  logsRequestToEvents,
  OtlpFormatError,
} from '../../src/codecs/otlp.ts';
import { EventIdGenerator } from '../../src/core/event.ts';

// The source loads it with its first protobuf request.
await loadOtlpProtobuf();

function convert(records: unknown[], resourceAttributes: unknown[] = [], scope?: unknown) {
  const request = {
    resourceLogs: [{ resource: { attributes: resourceAttributes }, scopeLogs: [{ scope, logRecords: records }] }],
  };
  return logsRequestToEvents(request, '10.1.2.3', new EventIdGenerator());
}

describe('OTLP log record → event', () => {
  it('unwraps AnyValue predictably: int64 as number or decimal string, bytes as base64, lists and maps', () => {
    const { events } = convert([
      {
        body: { stringValue: 'm' },
        attributes: [
          { key: 'a.b.c', value: { stringValue: 's' } },
          { key: 'i', value: { intValue: '42' } },
          { key: 'big', value: { intValue: '-9223372036854775808' } },
          { key: 'd', value: { doubleValue: 1.5 } },
          { key: 'inf', value: { doubleValue: 'Infinity' } },
          { key: 'b', value: { boolValue: true } },
          { key: 'raw', value: { bytesValue: 'AQID' } },
          { key: 'list', value: { arrayValue: { values: [{ intValue: 1 }, { stringValue: 'x' }, {}] } } },
          { key: 'map', value: { kvlistValue: { values: [{ key: 'k', value: { boolValue: false } }] } } },
          { key: 'empty', value: {} },
          { key: 'missing' },
        ],
      },
    ]);
    assert.deepEqual(events[0]!.attributes, {
      'a.b.c': 's',
      i: 42,
      big: '-9223372036854775808',
      d: 1.5,
      inf: 'Infinity',
      b: true,
      raw: 'AQID',
      list: [1, 'x', null],
      map: { k: false },
      empty: null,
      missing: null,
    });
  });

  it('takes time, else observed time, else receipt time; host from host.name, else the peer', () => {
    const { events } = convert(
      [
        { timeUnixNano: '1741183200001999999', observedTimeUnixNano: '1741183300000000000' },
        { timeUnixNano: '0', observedTimeUnixNano: 1741183300000000000 },
        {},
      ],
      [{ key: 'host.name', value: { stringValue: 'web-3' } }],
    );
    assert.equal(events[0]!.timestamp, '2025-03-05T14:00:00.001Z');
    assert.equal(events[0]!.observed_timestamp, '2025-03-05T14:01:40.000Z');
    assert.equal(events[1]!.timestamp, '2025-03-05T14:01:40.000Z');
    assert.match(String(events[2]!.timestamp), /^\d{4}-/);
    assert.equal(events[2]!.observed_timestamp, undefined);
    for (const e of events) assert.equal(e.host, 'web-3');
    assert.equal(convert([{}]).events[0]!.host, '10.1.2.3');
  });

  it('converts protobuf fixed64 nanoseconds exactly, also next to a millisecond boundary', () => {
    const long = (n: bigint) => ({ low: Number(n & 0xffffffffn) | 0, high: Number(n >> 32n) | 0, unsigned: true });
    const { events } = convert([
      { timeUnixNano: long(1741183200001999999n) },
      { timeUnixNano: long(1741183200002000000n) },
      { timeUnixNano: long(18446744073709551615n) },
    ]);
    assert.deepEqual(
      events.map((e) => e.timestamp),
      ['2025-03-05T14:00:00.001Z', '2025-03-05T14:00:00.002Z', '2554-07-21T23:34:33.709Z'],
    );
  });

  it('keeps ids as lowercase hex, drops all-zero ones, maps severity names, keeps the scope', () => {
    const { events, rejected } = convert(
      [
        {
          traceId: 'ABCDEF0123456789ABCDEF0123456789',
          spanId: '0000000000000000',
          severityNumber: 'SEVERITY_NUMBER_WARN2',
          flags: 257,
        },
      ],
      [],
      { name: 'lib', version: '', attributes: [{ key: 'x', value: { intValue: 1 } }] },
    );
    assert.equal(rejected, 0);
    assert.equal(events[0]!.trace_id, 'abcdef0123456789abcdef0123456789');
    assert.equal(events[0]!.span_id, undefined);
    assert.equal(events[0]!.severity_number, 14);
    assert.equal(events[0]!.trace_flags, 1);
    assert.deepEqual(events[0]!.scope, { name: 'lib', attributes: { x: 1 } });
  });

  it('rejects records with wrong values and counts them; a wrong request shape is a format error', () => {
    const { events, rejected, firstError } = convert([
      { body: { stringValue: 1 } },
      { attributes: 'nope' },
      { timeUnixNano: 'soon' },
      { body: { stringValue: 'kept' } },
    ]);
    assert.equal(rejected, 3);
    assert.equal(firstError, 'log record: stringValue: expected a string');
    assert.deepEqual(
      events.map((e) => e.message),
      ['kept'],
    );
    assert.throws(() => logsRequestToEvents({ resourceLogs: {} }, '', new EventIdGenerator()), OtlpFormatError);
    assert.throws(() => logsRequestToEvents([], '', new EventIdGenerator()), OtlpFormatError);
    assert.deepEqual(logsRequestToEvents({}, '', new EventIdGenerator()).events, []);
  });

  it('decodes protobuf it cannot read as a format error, and encodes responses', () => {
    assert.throws(() => decodeLogsRequest(Buffer.from([0x0a, 0x05, 0x01]), 'protobuf'), /invalid protobuf/);
    assert.throws(() => decodeLogsRequest(Buffer.from('{'), 'json'), /invalid JSON/);
    assert.deepEqual(encodeLogsResponse('protobuf', 0, ''), Buffer.alloc(0));
    assert.equal(encodeLogsResponse('json', 0, '').toString(), '{}');
    assert.deepEqual(JSON.parse(encodeLogsResponse('json', 2, 'why').toString()), {
      partialSuccess: { rejectedLogRecords: '2', errorMessage: 'why' },
    });
    // field 1 (message, length 7): field 1 varint 2, field 2 string "why"
    assert.deepEqual(
      [...encodeLogsResponse('protobuf', 2, 'why')],
      [0x0a, 0x07, 0x08, 0x02, 0x12, 0x03, 0x77, 0x68, 0x79],
    );
  });
});
