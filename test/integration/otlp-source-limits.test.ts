import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { DEFAULT_MAX_CONNECTIONS } from '../../src/core/net/options.ts';
import { otlpSource } from '../../src/sources/otlp.ts';
import { eventually, settlingContext } from './fixtures/forward-helpers.ts';

async function startSource(t: TestContext, raw: Record<string, unknown> = {}, mode: 'auto' | 'manual' = 'auto') {
  const rec = settlingContext('otel', mode);
  const source = otlpSource.build(otlpSource.options.parse({ address: '127.0.0.1:0', ...raw }), rec.ctx);
  await source.start();
  t.after(async () => {
    rec.settle('failed');
    await source.stop();
  });
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const values = (await rec.pipelineMetrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
      .reduce((s, v) => s + v.value, 0);
  };
  return { rec, url: `http://${source.endpoint!()!.split(' ')[1]}`, metric };
}

const PROTO = { 'content-type': 'application/x-protobuf' };
const JSON_TYPE = { 'content-type': 'application/json' };
const GZIP = { 'content-encoding': 'gzip' };

async function post(url: string, body: string | Buffer, headers: Record<string, string>) {
  const res = await request(url, { method: 'POST', body, headers });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  const json = headers['content-type'] === 'application/json' ? JSON.parse(bytes.toString('utf8') || '{}') : {};
  return { status: res.statusCode, json: json as { code?: number; message?: string } };
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited protobuf field. */
const field = (no: number, payload: Buffer) => Buffer.concat([varint((no << 3) | 2), varint(payload.length), payload]);

/** ExportLogsServiceRequest { resource_logs { scope_logs { <records> } } } with the records' raw bytes. */
const requestOf = (records: Buffer) => field(1, field(2, records));

/** A LogRecord whose body is `depth` nested ArrayValues around a string: the innermost array at event level depth + 1. */
function deepRecord(depth: number): Buffer {
  const inner = field(1, Buffer.from('x')); // AnyValue { string_value }
  // AnyValue { array_value { values: <inner> } } per level; headers built inside-out, copied once.
  const headers: Buffer[] = [];
  let length = inner.length;
  for (let i = 0; i < depth; i++) {
    const values = Buffer.concat([varint((1 << 3) | 2), varint(length)]);
    const arrayValue = Buffer.concat([varint((5 << 3) | 2), varint(values.length + length)]);
    headers.push(values, arrayValue);
    length += values.length + arrayValue.length;
  }
  const value = Buffer.concat([...headers.reverse(), inner]);
  return field(2, field(5, value)); // ScopeLogs.log_records { LogRecord.body }
}

const errors = 'fluxo_component_errors_total';

describe('otlp source limits on decoded requests (issue 13)', { timeout: 120_000 }, () => {
  it('answers 413 to 8M empty records in 16 KB of gzip, counted before protobufjs builds them', async (t) => {
    const { rec, url, metric } = await startSource(t);
    const records = Buffer.alloc(16_000_000);
    for (let i = 0; i < records.length; i += 2) records[i] = 0x12; // log_records = 2, length 0
    const bomb = gzipSync(requestOf(records), { level: 9 });
    assert.ok(bomb.length < 20 * 1024, `${bomb.length} bytes on the wire`);
    const r = await post(url, bomb, { ...PROTO, ...GZIP });
    assert.equal(r.status, 413);
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'too_many_events' }), 1);
    assert.equal(await metric('fluxo_otlp_requests_rejected_total'), 1);
  });

  it('stops inflating at max_decoded_body_bytes: never more than the cap + one chunk', async (t) => {
    const { rec, url, metric } = await startSource(t);
    const bomb = gzipSync(Buffer.alloc(300 * 1024 * 1024), { level: 9 });
    for (let i = 0; i < 3; i++) {
      const r = await post(url, bomb, { ...JSON_TYPE, ...GZIP });
      assert.equal(r.status, 413);
      assert.equal(r.json.code, 8);
      assert.match(String(r.json.message), /decompressed body larger than max_decoded_body_bytes \(20971520 bytes\)/);
    }
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'decoded_body_too_large' }), 3);
    const inflated = await metric('fluxo_otlp_decompressed_bytes_total');
    assert.ok(inflated > 3 * 20 * 1024 * 1024 && inflated <= 3 * (20 * 1024 * 1024 + 16 * 1024), `${inflated}`);
  });

  it('answers 400 (INVALID_ARGUMENT, counted), never 500, to JSON and protobuf nested too deep', async (t) => {
    const { rec, url, metric } = await startSource(t);
    const deepJson = `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":${'{"arrayValue":{"values":['.repeat(100_000)}${']}}'.repeat(100_000)}}]}]}]}`;
    let r = await post(url, deepJson, JSON_TYPE);
    assert.deepEqual([r.status, r.json.code], [400, 3]);
    assert.match(String(r.json.message), /nested deeper than max_nesting_depth \(100 levels\)/);
    // protobufjs stops at 100 nested messages (two per AnyValue level): refused as malformed before ours
    r = await post(url, requestOf(deepRecord(100)), PROTO);
    assert.equal(r.status, 400);
    // deep enough to overflow protobufjs's recursion: a RangeError is still the client's fault
    r = await post(url, requestOf(deepRecord(100_000)), PROTO);
    assert.equal(r.status, 400);
    assert.equal(rec.batches.length, 0);
    assert.equal(await metric(errors, { error_type: 'nesting_too_deep' }), 1);
    assert.equal(await metric(errors, { error_type: 'malformed' }), 2);
    assert.equal(await metric(errors, { error_type: 'internal' }), 0);
    // At the limit it is taken, and can be encoded again.
    r = await post(url, requestOf(deepRecord(40)), PROTO);
    assert.equal(r.status, 200);
    const json = `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":${'{"kvlistValue":{"values":[{"key":"k","value":'.repeat(99)}{"stringValue":"x"}${'}]}}'.repeat(99)}}]}]}]}`;
    r = await post(url, json, JSON_TYPE);
    assert.equal(r.status, 200);
    assert.equal(rec.events().length, 2);
    for (const e of rec.events()) assert.equal(typeof JSON.stringify(e), 'string');
  });

  it('takes max_events_per_request records, refuses one more; splits into batches of 1,000 answered once all settled', async (t) => {
    const { rec, url, metric } = await startSource(t, { max_events_per_request: 2500 }, 'manual');
    const body = (n: number) =>
      JSON.stringify({
        resourceLogs: [
          {
            resource: { attributes: [{ key: 'host.name', value: { stringValue: 'web-1' } }] },
            scopeLogs: [{ logRecords: Array.from({ length: n }, (_, i) => ({ body: { stringValue: `r${i}` } })) }],
          },
        ],
      });
    const refused = await post(url, body(2501), JSON_TYPE);
    assert.equal(refused.status, 413);
    assert.equal(await metric(errors, { error_type: 'too_many_events' }), 1);
    assert.equal(rec.batches.length, 0);
    let answered = false;
    const pending = post(url, body(2500), JSON_TYPE).then((r) => {
      answered = true;
      return r;
    });
    await eventually(() => rec.batches.length === 3, 'three batches emitted');
    assert.deepEqual(
      rec.batches.map((b) => b.events.length),
      [1000, 1000, 500],
    );
    assert.deepEqual(
      rec.events().map((e) => e.message),
      Array.from({ length: 2500 }, (_, i) => `r${i}`),
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(answered, false);
    rec.settle('delivered');
    assert.equal((await pending).status, 200);
  });

  it('max_connections: 2 — a third connection is accepted and closed at once, unanswered, and counted', async (t) => {
    const { url, metric } = await startSource(t, { max_connections: 2 });
    const { port } = new URL(url);
    const open = async () => {
      const socket = connect(Number(port), '127.0.0.1');
      t.after(() => {
        socket.destroy();
      });
      await once(socket, 'connect');
      return socket;
    };
    const held = [await open(), await open()];
    const third = await open();
    let answer = '';
    third.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    third.on('error', () => {});
    third.write('POST /v1/logs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
    await once(third, 'close');
    assert.equal(answer, '', 'no HTTP answer: the connection is closed before anything is read');
    assert.equal(await metric('fluxo_otlp_connections_rejected_total'), 1);
    assert.equal(
      otlpSource.options.parse({}).max_connections,
      DEFAULT_MAX_CONNECTIONS,
      'the default every listening source shares',
    );
    // A slot freed is a slot for the next exporter.
    for (const s of held) s.destroy();
    await eventually(async () => {
      try {
        return (await post(url, '{}', JSON_TYPE)).status === 200;
      } catch {
        return false;
      }
    }, 'a request answered once the held connections closed');
  });
});
