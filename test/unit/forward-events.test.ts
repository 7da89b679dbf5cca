import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventTime } from '../../src/codecs/forward.ts';
import { type Event, EventIdGenerator } from '../../src/core/event.ts';
import { EntryConverter } from '../../src/sources/forward/events.ts';

function convert(entries: unknown[], chunk?: string, tag = 'app.web') {
  const out: Event[] = [];
  const invalid: { entry: unknown; reason: string }[] = [];
  new EntryConverter(new EventIdGenerator()).append(tag, entries, '10.0.0.7', chunk, out, invalid);
  return { out, invalid };
}

describe('forward entry → event mapping', () => {
  it('puts the record keys at the top level and adds tag, timestamp, host, source_type and a chunk-derived _id', () => {
    const { out } = convert(
      [
        [new EventTime(1741183200, 5_678_000), { message: 'a', status: 200, nested: { x: [1] } }],
        [1741183201, { message: 'b' }],
      ],
      'Y2h1bms=',
    );
    assert.deepEqual(out, [
      {
        message: 'a',
        status: 200,
        nested: { x: [1] },
        tag: 'app.web',
        timestamp: '2025-03-05T14:00:00.005Z',
        host: '10.0.0.7',
        source_type: 'forward',
        _id: 'Y2h1bms=:0',
      },
      {
        message: 'b',
        tag: 'app.web',
        timestamp: '2025-03-05T14:00:01.000Z',
        host: '10.0.0.7',
        source_type: 'forward',
        _id: 'Y2h1bms=:1',
      },
    ]);
  });

  it('takes `log` as `message` when there is no `message`, and keeps both otherwise', () => {
    const { out } = convert([
      [1, { log: 'from docker', stream: 'stderr' }],
      [1, { message: 'm', log: 'l' }],
      [1, { other: 1 }],
    ]);
    assert.equal(out[0]!.message, 'from docker');
    assert.equal('log' in out[0]!, false);
    assert.equal(out[1]!.message, 'm');
    assert.equal(out[1]!.log, 'l');
    assert.equal('message' in out[2]!, false);
  });

  it("keeps the record's host and string _id (an upstream Fluxo's); tag, timestamp and source_type are the source's", () => {
    const { out } = convert(
      [[1, { host: 'web-01', _id: 'origin-id', tag: 'old', timestamp: 'old', source_type: 'file' }]],
      'c',
    );
    assert.equal(out[0]!.host, 'web-01');
    assert.equal(out[0]!._id, 'origin-id');
    assert.equal(out[0]!.tag, 'app.web');
    assert.equal(out[0]!.timestamp, '1970-01-01T00:00:01.000Z');
    assert.equal(out[0]!.source_type, 'forward');
    const noChunk = convert([[1, { message: 'x' }]]).out[0]!;
    assert.match(String(noChunk._id), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('turns binary values into text and nested EventTimes into epoch milliseconds', () => {
    const { out } = convert([
      [1, { message: Buffer.from('bïn'), deep: { b: Uint8Array.of(0x68, 0x69), t: new EventTime(2, 500_000_000) } }],
    ]);
    assert.equal(out[0]!.message, 'bïn');
    assert.deepEqual(out[0]!.deep, { b: 'hi', t: 2500 });
    assert.doesNotThrow(() => JSON.stringify(out));
  });

  it('reports entries that are not [time, record] with a reason, keeping the index of the others', () => {
    const { out, invalid } = convert(
      [
        [1],
        [1, 'text'],
        [1, [1, 2]],
        ['x', {}],
        [Number.NaN, {}],
        [1e15, {}],
        [new EventTime(Number.NaN, 0), {}],
        [1, { ok: 1 }],
      ],
      'c',
    );
    assert.deepEqual(
      out.map((e) => e._id),
      ['c:7'],
    );
    assert.deepEqual(
      invalid.map((i) => i.reason),
      [
        'forward entry is not a [time, record] pair',
        'forward entry record is not a map',
        'forward entry record is not a map',
        ...Array(4).fill('forward entry time is not a number of seconds or an EventTime in years 1-9999'),
      ],
    );
  });

  it('formats milliseconds across second boundaries and float seconds', () => {
    const { out } = convert([
      [new EventTime(1741183200, 999_000_000), {}],
      [new EventTime(1741183201, 1_000_000), {}],
      [1741183200.25, {}],
    ]);
    assert.deepEqual(
      out.map((e) => e.timestamp),
      ['2025-03-05T14:00:00.999Z', '2025-03-05T14:00:01.001Z', '2025-03-05T14:00:00.250Z'],
    );
  });
});
