import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { estimateEventBytes } from '../../src/core/event.ts';
import { httpSink } from '../../src/sinks/http.ts';
import { numbered } from '../helpers/components.ts';
import { tempDir } from '../helpers/context.ts';
import { testPipeline, tick, until } from '../helpers/pipeline.ts';
import { metricValue } from './fixtures/disk-buffer-harness.ts';

/**
 * A real HTTP server that takes every request and holds its answer while `stalled`: the http sink's write
 * never completes, as with a destination that accepts and hangs. release() answers 200 to everything.
 */
async function stallingServer(t: { after: (fn: () => void) => void }) {
  const held: ServerResponse[] = [];
  const delivered: number[] = [];
  let stalled = true;
  let requests = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const answer = () => {
        for (const e of JSON.parse(Buffer.concat(chunks).toString('utf8')) as { n: number }[]) delivered.push(e.n);
        res.writeHead(200).end('ok');
      };
      if (stalled) held.push(Object.assign(res, { answer }));
      else answer();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`,
    delivered,
    get requests() {
      return requests;
    },
    release() {
      stalled = false;
      for (const res of held.splice(0)) (res as ServerResponse & { answer: () => void }).answer();
    },
  };
}

/**
 * Samples the buffer's gauges from the pipeline's registry on every turn of the event loop, as a scrape of
 * /metrics would read them, and keeps the largest values seen.
 */
function sampleBuffer(p: ReturnType<typeof testPipeline>) {
  const max = { events: 0, bytes: 0, samples: 0 };
  let last = { events: 0, bytes: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      last = {
        events: await metricValue(p.metrics.registry, 'fluxo_buffer_events'),
        bytes: await metricValue(p.metrics.registry, 'fluxo_buffer_bytes'),
      };
      max.events = Math.max(max.events, last.events);
      max.bytes = Math.max(max.bytes, last.bytes);
      max.samples++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    max,
    get last() {
      return last;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

const BATCHES = 40;
const PER_BATCH = 10;
const TOTAL = BATCHES * PER_BATCH;

async function stalledRun(t: Parameters<typeof tempDir>[0], buffer: string) {
  const server = await stallingServer(t);
  const p = testPipeline(
    `
sources: { in: { type: manual } }
sinks:
  out:
    type: http
    inputs: [in]
    uri: ${server.uri}
    request_timeout: 10m
    buffer: ${buffer}
`,
    tempDir(t),
    [httpSink],
  );
  t.after(() => p.topology.stop(100));
  await p.topology.start();
  const sampler = sampleBuffer(p);
  // Every batch offered at once, as many connections would; each resolves when the buffer takes it.
  let accepted = 0;
  const emits = Array.from({ length: BATCHES }, (_, i) =>
    p
      .source('in')
      .emit(numbered(1 + i * PER_BATCH, PER_BATCH))
      .then(() => {
        accepted++;
      }),
  );
  return { server, p, sampler, emits, accepted: () => accepted };
}

describe('memory buffer under a stalled sink', { timeout: 60_000 }, () => {
  it('max_events: holds at most its limit, in flight included, pushes back the rest, loses nothing', async (t) => {
    const run = await stalledRun(t, '{ type: memory, max_events: 50, max_bytes: 1MiB }');
    await until(() => run.server.requests === 1, 'the sink sent a write that is never answered');
    await until(() => run.sampler.last.events === 50, 'the buffer full at max_events');
    const accepted = run.accepted();
    assert.equal(accepted, 5, 'only the batches that fit were accepted: 5 × 10 events');
    assert.equal(run.p.source('in').acks.length, 0, 'nothing acknowledged while the sink is stalled');
    assert.equal(await metricValue(run.p.metrics.registry, 'fluxo_buffer_max_events'), 50);

    run.server.release();
    await Promise.all(run.emits);
    await until(() => run.p.source('in').acks.length === BATCHES, 'every batch acknowledged after the release');
    await run.sampler.stop();
    assert.deepEqual(new Set(run.p.source('in').acks), new Set(['delivered']));
    assert.deepEqual(
      [...run.server.delivered].sort((a, b) => a - b),
      Array.from({ length: TOTAL }, (_, i) => i + 1),
      'each event delivered once',
    );
    assert.ok(run.sampler.max.events <= 50, `buffer events peaked at ${run.sampler.max.events}`);
    assert.ok(run.sampler.max.samples >= 2, `${run.sampler.max.samples} samples`);
    assert.equal(await metricValue(run.p.metrics.registry, 'fluxo_buffer_events'), 0);
  });

  it('max_bytes: the byte count never passes its limit while stalled', async (t) => {
    // estimateEventBytes: message length + 128, so ~1,360 bytes per batch of 10: three fit, not four.
    const maxBytes = 5000;
    // Which batches fit, by the same estimate the pipeline makes of events without wire bytes.
    const sizes = Array.from({ length: BATCHES }, (_, i) =>
      numbered(1 + i * PER_BATCH, PER_BATCH).reduce((sum, e) => sum + estimateEventBytes(e), 0),
    );
    let fit = 0;
    let held = 0;
    while (fit < BATCHES && (held === 0 || held + sizes[fit]! <= maxBytes)) held += sizes[fit++]!;
    assert.ok(fit > 1 && fit < BATCHES, `${fit} batches fit in ${maxBytes} bytes`);

    const run = await stalledRun(t, `{ type: memory, max_events: 100000, max_bytes: ${maxBytes} }`);
    await until(() => run.server.requests === 1, 'the sink sent a write that is never answered');
    await until(() => run.accepted() === fit && run.sampler.last.bytes === held, `${fit} batches, ${held} bytes held`);
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(run.accepted(), fit, 'the next batch waits: it would pass max_bytes');
    assert.ok(run.sampler.max.bytes <= maxBytes, `buffer bytes peaked at ${run.sampler.max.bytes}`);

    run.server.release();
    await Promise.all(run.emits);
    await until(() => run.p.source('in').acks.length === BATCHES, 'every batch acknowledged after the release');
    await run.sampler.stop();
    assert.equal(run.server.delivered.length, TOTAL);
    assert.ok(run.sampler.max.bytes <= maxBytes, `buffer bytes peaked at ${run.sampler.max.bytes}`);
  });
});
