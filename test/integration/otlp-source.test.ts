import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchLogRecordProcessor,
  InMemoryLogRecordExporter,
  LoggerProvider,
  type LogRecordExporter,
} from '@opentelemetry/sdk-logs';
import protobuf from 'protobufjs';
import { otlpSource } from '../../src/sources/otlp.ts';
import { eventually, settlingContext } from './fixtures/forward-helpers.ts';

async function startSource(t: TestContext, raw: Record<string, unknown> = {}, mode: 'auto' | 'manual' = 'auto') {
  const rec = settlingContext('otel', mode);
  const source = otlpSource.build(otlpSource.options.parse({ address: '127.0.0.1:0', ...raw }), rec.ctx);
  await source.start();
  t.after(async () => {
    rec.unblock();
    rec.settle('failed');
    await source.stop();
  });
  const url = `http://${source.endpoint!()!.split(' ')[1]}`;
  return { rec, source, url };
}

const TRACE_ID = '5b8efff798038103d269b633813fc60c';
const SPAN_ID = 'eee19b7ec3c1b174';

function sdk(t: TestContext, exporter: JsonExporter | ProtoExporter) {
  const memory = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'checkout', 'host.name': 'web-07', 'deployment.env': 'prod' }),
    // The batch processor's forceFlush waits for the export's response (the simple one's does not).
    processors: [
      new BatchLogRecordProcessor({ exporter, scheduledDelayMillis: 60_000 }),
      new BatchLogRecordProcessor({ exporter: memory }),
    ],
  });
  t.after(() => provider.shutdown());
  return { provider, memory, logger: provider.getLogger('shop.payments', '1.4.2') };
}

function emitSamples(logger: ReturnType<LoggerProvider['getLogger']>) {
  const spanContext = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: SPAN_ID,
    traceFlags: TraceFlags.SAMPLED,
  });
  logger.emit({
    severityNumber: SeverityNumber.ERROR,
    severityText: 'ERROR',
    body: 'payment declined',
    timestamp: new Date('2025-03-05T14:00:00.123Z'),
    attributes: {
      'http.method': 'POST',
      'http.status_code': 402,
      ratio: 0.25,
      retried: false,
      tags: ['a', 'b'],
      'user.id': 12345678901,
    },
    context: spanContext,
  });
  logger.emit({
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: { order: 'A-1', items: [1, 2], paid: true },
    eventName: 'order.placed',
  });
}

function checkSamples(events: Record<string, unknown>[]) {
  assert.equal(events.length, 2);
  const [first, second] = events;
  assert.deepEqual(
    { ...first, _id: undefined, observed_timestamp: undefined },
    {
      message: 'payment declined',
      severity_text: 'ERROR',
      severity_number: 17,
      attributes: {
        'http.method': 'POST',
        'http.status_code': 402,
        ratio: 0.25,
        retried: false,
        tags: ['a', 'b'],
        'user.id': 12345678901,
      },
      resource: { 'service.name': 'checkout', 'host.name': 'web-07', 'deployment.env': 'prod' },
      scope: { name: 'shop.payments', version: '1.4.2' },
      trace_id: TRACE_ID,
      span_id: SPAN_ID,
      trace_flags: 1,
      timestamp: '2025-03-05T14:00:00.123Z',
      host: 'web-07',
      source_type: 'otlp',
      _id: undefined,
      observed_timestamp: undefined,
    },
  );
  assert.match(String(first!.observed_timestamp), /^\d{4}-\d\d-\d\dT/);
  assert.match(String(first!._id), /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  assert.equal(second!.message, undefined, 'a map body is not a message');
  assert.deepEqual(second!.body, { order: 'A-1', items: [1, 2], paid: true });
  assert.equal(second!.event_name, 'order.placed');
  assert.equal(second!.severity_number, 9);
  assert.equal(second!.trace_id, undefined);
  assert.equal(second!.timestamp, second!.observed_timestamp, 'no time: the observed time');
}

describe('otlp source with the OpenTelemetry JS logs SDK', { timeout: 60_000 }, () => {
  for (const [name, Exporter, Serializer] of [
    ['JSON (exporter-logs-otlp-http)', JsonExporter, JsonLogsSerializer],
    ['protobuf (exporter-logs-otlp-proto)', ProtoExporter, ProtobufLogsSerializer],
  ] as const) {
    for (const compression of ['none', 'gzip'] as const) {
      it(`${name}, compression ${compression}: body, severity, attributes, resource, scope and trace context arrive`, async (t) => {
        const { rec, url } = await startSource(t);
        const { provider, logger, memory } = sdk(
          t,
          new Exporter({ url, compression } as ConstructorParameters<typeof Exporter>[0]),
        );
        emitSamples(logger);
        await provider.forceFlush();
        await rec.waitForEvents(2);
        checkSamples(rec.events());
        // The wire bytes Fluxo reports: the serialized request as is, or smaller when gzipped.
        const plain = Serializer.serializeRequest(memory.getFinishedLogRecords())!.length;
        const wire = rec.batches[0]!.options!.bytes!;
        if (compression === 'gzip') assert.ok(wire < plain, `${wire} < ${plain}`);
        else assert.equal(wire, plain);
        assert.equal(await rec.metric('fluxo_otlp_requests_total'), 1, 'one export request, both records');
      });
    }
  }

  it('answers only once the records are delivered', async (t) => {
    const { rec, url } = await startSource(t, {}, 'manual');
    const { provider, logger } = sdk(t, new ProtoExporter({ url }));
    logger.emit({ body: 'waits for its ack' });
    let flushed = false;
    const flushing = provider.forceFlush().then(() => {
      flushed = true;
    });
    await rec.waitForEvents(1);
    await eventually(() => rec.unsettled === 1, 'the batch waits for settlement');
    assert.equal(await rec.metric('fluxo_otlp_requests_total'), 0);
    assert.equal(flushed, false);
    rec.settle('delivered');
    await flushing;
    assert.equal(await rec.metric('fluxo_otlp_requests_total'), 1);
  });
});

const protoRoot = protobuf.parse(`
syntax = "proto3";
message AnyValue { oneof value { string string_value = 1; int64 int_value = 3; } }
message KeyValue { string key = 1; AnyValue value = 2; }
message LogRecord { fixed64 time_unix_nano = 1; AnyValue body = 5; repeated KeyValue attributes = 6; bytes trace_id = 9; }
message ScopeLogs { repeated LogRecord log_records = 2; }
message ResourceLogs { repeated ScopeLogs scope_logs = 2; }
message Request { repeated ResourceLogs resource_logs = 1; }
`).root;
const ProtoRequest = protoRoot.lookupType('Request');

function jsonRequest(records: unknown[]) {
  return JSON.stringify({ resourceLogs: [{ resource: { attributes: [] }, scopeLogs: [{ logRecords: records }] }] });
}

async function post(url: string, body: Uint8Array | string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', body: body as string, headers });
  return { status: res.status, headers: res.headers, body: new Uint8Array(await res.arrayBuffer()) };
}

describe('otlp source: errors, partial success and backpressure', { timeout: 60_000 }, () => {
  it('reports records with wrong values as partial success (JSON), with the count and reason', async (t) => {
    const { rec, url } = await startSource(t);
    const res = await post(
      url,
      jsonRequest([
        {
          body: { stringValue: 'good' },
          timeUnixNano: '1741183200123456789',
          attributes: [{ key: 'n', value: { intValue: '9007199254740993' } }],
        },
        { body: { stringValue: 'bad trace' }, traceId: 'xyz' },
        { body: { stringValue: 'bad severity' }, severityNumber: 99 },
      ]),
      { 'content-type': 'application/json' },
    );
    assert.equal(res.status, 200);
    const parsed = JsonLogsSerializer.deserializeResponse(res.body);
    assert.deepEqual(parsed, {
      partialSuccess: { rejectedLogRecords: '2', errorMessage: 'log record: traceId: expected 32 hex digits' },
    });
    assert.deepEqual(
      rec.events().map((e) => [e.message, e.timestamp, (e.attributes as Record<string, unknown>)?.n]),
      [['good', '2025-03-05T14:00:00.123Z', '9007199254740993']],
    );
    assert.equal(await rec.metric('fluxo_otlp_log_records_rejected_total'), 2);
  });

  it('reports partial success in protobuf, read by the OpenTelemetry deserializer', async (t) => {
    const { rec, url } = await startSource(t);
    const request = ProtoRequest.encode(
      ProtoRequest.fromObject({
        resourceLogs: [
          {
            scopeLogs: [
              {
                logRecords: [
                  { body: { stringValue: 'ok' }, traceId: Buffer.alloc(16, 1) },
                  { body: { stringValue: 'short trace id' }, traceId: Buffer.alloc(3, 1) },
                ],
              },
            ],
          },
        ],
      }),
    ).finish();
    const res = await post(url, request, { 'content-type': 'application/x-protobuf' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-protobuf');
    const parsed = ProtobufLogsSerializer.deserializeResponse(res.body);
    assert.equal(Number(parsed.partialSuccess?.rejectedLogRecords), 1);
    assert.equal(parsed.partialSuccess?.errorMessage, 'log record: traceId: expected 16 bytes, found 3');
    assert.deepEqual(
      rec.events().map((e) => [e.message, e.trace_id]),
      [['ok', '01'.repeat(16)]],
    );
  });

  it('answers 400 for malformed bodies, 415, 404, 405 and 413', async (t) => {
    const { rec, url } = await startSource(t, { max_body_bytes: 10_000, max_decoded_body_bytes: 50_000 });
    const json = { 'content-type': 'application/json' };
    const pb = { 'content-type': 'application/x-protobuf' };
    const cases: [Uint8Array | string, Record<string, string>, number, RegExp, string?][] = [
      ['{"resourceLogs": [', json, 400, /invalid JSON/],
      ['{"resourceLogs": 5}', json, 400, /resourceLogs/],
      [Buffer.from([0x0a, 0xff, 0xff, 0xff]), pb, 400, /invalid protobuf/],
      [gzipSync('x'), { ...json, 'content-encoding': 'gzip' }, 400, /invalid JSON/],
      [Buffer.from('not gzip'), { ...json, 'content-encoding': 'gzip' }, 400, /invalid gzip/],
      ['{}', { 'content-type': 'text/plain' }, 415, /unsupported Content-Type/],
      ['x'.repeat(20_000), json, 413, /larger than 10000 bytes/],
      [gzipSync(' '.repeat(100_000)), { ...json, 'content-encoding': 'gzip' }, 413, /decompressed body larger/],
    ];
    for (const [body, headers, status, reason] of cases) {
      const res = await post(url, body, headers);
      assert.equal(res.status, status, `${reason}`);
      const text = Buffer.from(res.body).toString();
      if (headers['content-type'] === 'application/x-protobuf') assert.match(text, /invalid protobuf/);
      else assert.match(String(JSON.parse(text).message), reason);
    }
    assert.equal((await post(url.replace('/v1/logs', '/v1/traces'), '{}', json)).status, 404);
    assert.equal((await fetch(url)).status, 405);
    assert.equal(rec.events().length, 0);
    // An empty request is fine.
    assert.equal((await post(url, '{}', json)).status, 200);
  });

  it('answers 429 with Retry-After while the pipeline is full, and 503 for a batch it failed', async (t) => {
    const { rec, url } = await startSource(t, { retry_after: '3s' }, 'manual');
    rec.block();
    const body = jsonRequest([{ body: { stringValue: 'first' } }]);
    const first = post(url, body, { 'content-type': 'application/json' });
    await rec.waitForEvents(1);
    const second = await post(url, body, { 'content-type': 'application/json' });
    assert.equal(second.status, 429);
    assert.equal(second.headers.get('retry-after'), '3');
    assert.equal(await rec.metric('fluxo_otlp_requests_throttled_total'), 1);
    rec.unblock();
    await eventually(() => rec.unsettled === 1, 'accepted, waiting for delivery');
    rec.settle('failed');
    const res = await first;
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '3');
    assert.match(JSON.parse(Buffer.from(res.body).toString()).message, /not delivered/);
  });
});

const StatusType = protobuf
  .parse('syntax = "proto3"; message Status { int32 code = 1; string message = 2; }')
  .root.lookupType('Status');

describe('otlp source: auth', { timeout: 60_000 }, () => {
  const TOKEN = 'otlp-s3cret';

  /** Exports one record through the real OpenTelemetry SDK; resolves with the export's error, if any. */
  async function exportOne(t: TestContext, exporter: JsonExporter | ProtoExporter, body: string) {
    // The batch processor hands export errors to the global error handler: the result is read on the way back.
    const results: Parameters<Parameters<LogRecordExporter['export']>[1]>[0][] = [];
    const capturing: LogRecordExporter = {
      export: (records, done) =>
        exporter.export(records, (result) => {
          results.push(result);
          done(result);
        }),
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush(),
    };
    const provider = new LoggerProvider({
      processors: [new BatchLogRecordProcessor({ exporter: capturing, scheduledDelayMillis: 60_000 })],
    });
    t.after(() => provider.shutdown());
    provider.getLogger('auth-test').emit({ body, severityText: 'INFO' });
    await provider.forceFlush();
    assert.equal(results.length, 1, 'one export');
    return results[0]!.error as (Error & { code?: number }) | undefined;
  }

  for (const [name, Exporter] of [
    ['JSON', JsonExporter],
    ['protobuf', ProtoExporter],
  ] as const) {
    it(`bearer, ${name}: the exporter's Authorization header is accepted; a wrong or missing token gets 401`, async (t) => {
      const { rec, url } = await startSource(t, { auth: { strategy: 'bearer', token: TOKEN } });
      const good = await exportOne(t, new Exporter({ url, headers: { Authorization: `Bearer ${TOKEN}` } }), 'let in');
      assert.equal(good, undefined, String(good));
      await rec.waitForEvents(1);
      assert.equal(rec.events()[0]!.message, 'let in');

      const wrong: Record<string, string>[] = [{ Authorization: `Bearer ${TOKEN}x` }, { Authorization: 'Bearer' }, {}];
      for (const headers of wrong) {
        const refused = await exportOne(t, new Exporter({ url, headers }), 'kept out');
        assert.ok(refused, `refused with ${JSON.stringify(headers)}`);
        assert.equal(refused.code, 401, String(refused));
      }
      assert.deepEqual(
        rec.events().map((e) => e.message),
        ['let in'],
        'nothing of a refused request reaches the pipeline',
      );
      assert.equal(await rec.metric('fluxo_component_errors_total'), 3, 'counted as error_type="unauthorized"');
      assert.equal(await rec.metric('fluxo_otlp_requests_rejected_total'), 3);
      const warnings = rec.logs.filter((l) => /missing or wrong credentials/.test(l.msg));
      assert.equal(warnings.length, 1, 'the warning is rate-limited');
    });
  }

  it('basic: the right user and password are accepted, others get 401', async (t) => {
    const { rec, url } = await startSource(t, { auth: { strategy: 'basic', user: 'agent', password: 'pa:ss' } });
    const basic = (credentials: string) => ({
      Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
    });
    assert.equal(await exportOne(t, new ProtoExporter({ url, headers: basic('agent:pa:ss') }), 'basic in'), undefined);
    const wrong = await exportOne(t, new JsonExporter({ url, headers: basic('agent:pass') }), 'basic out');
    assert.equal(wrong?.code, 401);
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['basic in'],
    );
  });

  it('a refused request is answered 401 with WWW-Authenticate and a google.rpc.Status in its own encoding', async (t) => {
    const { rec, url } = await startSource(t, { auth: { strategy: 'bearer', token: TOKEN } });
    const body = jsonRequest([{ body: { stringValue: 'x' } }]);
    const json = await post(url, body, { 'content-type': 'application/json', authorization: 'Bearer nope' });
    assert.equal(json.status, 401);
    assert.equal(json.headers.get('www-authenticate'), 'Bearer realm="fluxo"');
    assert.equal(json.headers.get('content-type'), 'application/json');
    assert.deepEqual(JSON.parse(Buffer.from(json.body).toString()), {
      code: 16,
      message: 'missing or wrong credentials',
    });
    const request = ProtoRequest.encode(
      ProtoRequest.fromObject({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { stringValue: 'x' } }] }] }] }),
    ).finish();
    const proto = await post(url, request, { 'content-type': 'application/x-protobuf' });
    assert.equal(proto.status, 401);
    assert.equal(proto.headers.get('content-type'), 'application/x-protobuf');
    assert.deepEqual(StatusType.toObject(StatusType.decode(proto.body)), {
      code: 16,
      message: 'missing or wrong credentials',
    });
    // The credentials are checked before anything else about the request is looked at.
    const unsupported = await post(url, 'x', { 'content-type': 'text/plain' });
    assert.equal(unsupported.status, 401);
    assert.equal(rec.events().length, 0);
  });

  it('rejects an incomplete auth block at validation', () => {
    assert.equal(otlpSource.options.safeParse({ auth: { strategy: 'bearer' } }).success, false);
    assert.equal(otlpSource.options.safeParse({ auth: { strategy: 'basic', user: 'u' } }).success, false);
    assert.equal(otlpSource.options.safeParse({ auth: { strategy: 'bearer', token: 't', extra: 1 } }).success, false);
  });
});
