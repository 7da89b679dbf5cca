import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FluentClient } from '@fluent-org/logger';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { tempDir } from '../helpers/context.ts';
import { readNdjsonDir, runDefaultConfig } from '../helpers/fluxo-process.ts';

// The OTLP protobuf codec and msgpackr load with the first request that needs them, not at start
// (docs/architecture.md, "What a start does not load"). This runs them as a user does, through the CLI (the
// compiled bundle, where the OTLP codec is a chunk of its own), with real clients.
describe('codecs loaded on first use, through the CLI with the default config', { timeout: 60_000 }, () => {
  it('an OTLP/protobuf export and a Fluentd forward message both land in the master dataset', async (t) => {
    const dir = tempDir(t);
    const fluxo = runDefaultConfig(t, dir, { FLUXO_MASTER_FORMAT: 'ndjson' });
    const otlpPort = await fluxo.port('otel');
    const forwardPort = await fluxo.port('agents');

    const provider = new LoggerProvider({
      processors: [
        new BatchLogRecordProcessor({
          exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${otlpPort}/v1/logs` }),
          scheduledDelayMillis: 60_000,
        }),
      ],
    });
    t.after(() => provider.shutdown());
    provider.getLogger('e2e').emit({ body: 'sent as OTLP protobuf' });
    // The batch processor's forceFlush waits for the export's answer, which Fluxo gives once delivered.
    await provider.forceFlush();

    const fluent = new FluentClient('web.access', {
      socket: { host: '127.0.0.1', port: forwardPort, timeout: 10_000 },
      ack: { ackTimeout: 10_000 },
    });
    t.after(() => fluent.disconnect());
    await fluent.emit({
      message: '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET /forwarded HTTP/1.1" 200 5 "-" "e2e"',
    });

    await fluxo.waitForMetric('fluxo_otlp_requests_total', {}, (v) => v >= 1);
    await fluxo.waitForMetric('fluxo_component_sent_events_total', { component_id: 'master' }, (v) => v >= 2);
    assert.equal(await fluxo.stop('SIGINT'), 0, fluxo.stderr);
    const events = readNdjsonDir(join(dir, 'data', 'master'));
    const otlp = events.filter((e) => e.source_type === 'otlp');
    assert.deepEqual(
      otlp.map((e) => e.message),
      ['sent as OTLP protobuf'],
    );
    const forwarded = events.filter((e) => e.path === '/forwarded');
    assert.equal(forwarded.length, 1, JSON.stringify(events));
    assert.equal(forwarded[0]!.status, 200);
  });
});
