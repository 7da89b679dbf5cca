import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { z } from 'zod';
import { MemoryBuffer } from '../../src/buffers/memory.ts';
import { zstdDecompressor } from '../../src/codecs/zstd.ts';
import { Acknowledgement } from '../../src/core/ack.ts';
import { defineSink, type Sink } from '../../src/core/component.ts';
import { RetryableError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { compress, compressionOption } from '../../src/core/sink/compression.ts';
import { encodeEvents, encodingOf, encodingOptions, frame, pickLines } from '../../src/core/sink/encoding.ts';
import type { SendResult, SinkRequest } from '../../src/core/sink/request.ts';
import { SinkRunner } from '../../src/core/sink/runner.ts';
import { Semaphore } from '../../src/core/sink/semaphore.ts';
import { numbered } from '../helpers/components.ts';
import { componentContext, recordingLogger, tempDir, testLogger } from '../helpers/context.ts';
import { testPipeline, until } from '../helpers/pipeline.ts';

const fast = 'retry: { initial_backoff: 1ms, max_backoff: 5ms }';

/** What a scripted sink saw: every request, and its answer to each. */
interface Script {
  connects: number;
  connectFailures: number;
  healthchecks: number;
  healthcheckFails: boolean;
  requests: { events: string[]; attempt: number; payload: Buffer | undefined; request: SinkRequest }[];
  answer: (request: SinkRequest, signal: AbortSignal) => Promise<SendResult | undefined>;
}

function scriptedSink(script: Script, encoded: boolean) {
  return defineSink({
    kind: 'sink',
    type: 'scripted',
    description: 'a sink whose answers the test writes',
    options: z.object({}),
    build() {
      return {
        ...(encoded ? { encoding: { codec: 'ndjson' as const }, compression: 'gzip' as const } : {}),
        async connect() {
          script.connects++;
          if (script.connectFailures > 0) {
            script.connectFailures--;
            throw new Error('connection refused (scripted)');
          }
        },
        async healthcheck() {
          script.healthchecks++;
          if (script.healthcheckFails) throw new Error('unhealthy (scripted)');
        },
        async send(request, signal) {
          script.requests.push({
            events: request.events.map((e) => String(e.n)),
            attempt: request.attempt,
            payload: encoded ? request.payload() : undefined,
            request,
          });
          return script.answer(request, signal);
        },
        async stop() {},
      };
    },
  });
}

function newScript(answer: Script['answer'] = async () => undefined): Script {
  return { connects: 0, connectFailures: 0, healthchecks: 0, healthcheckFails: false, requests: [], answer };
}

function pipeline(t: { after: (fn: () => Promise<unknown>) => void }, script: Script, sinkYaml = '', encoded = true) {
  const p = testPipeline(
    `
sources: { in: { type: manual } }
sinks:
  out: { type: scripted, inputs: [in], ${fast}${sinkYaml} }
  dead: { type: controlled, inputs: [dead_letter] }
`,
    tempDir(t as never),
    [scriptedSink(script, encoded)],
  );
  t.after(() => p.topology.stop(1000));
  return p;
}

describe('sink kit: the runner', () => {
  it('a partial answer: delivered ones are not sent again, rejected ones are dead-lettered, the rest retried', async (t) => {
    let calls = 0;
    const script = newScript(async (request) => {
      calls++;
      if (calls === 1) {
        // Of 1..6: 2 rejected, 4 and 6 to retry, the others delivered.
        return {
          rejected: [{ index: 1, reason: 'bad field' }],
          retry: [3, 5],
          error: new RetryableError('2 timed out'),
        };
      }
      assert.equal(request.events.length, 2);
      return undefined;
    });
    const p = pipeline(t, script);
    await p.topology.start();
    await p.source('in').emit(numbered(1, 6));
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.deepEqual(p.source('in').acks, ['delivered']);
    assert.deepEqual(
      script.requests.map((r) => r.events),
      [
        ['1', '2', '3', '4', '5', '6'],
        ['4', '6'],
      ],
    );
    assert.equal(script.requests[1]!.attempt, 1);
    // The retry's body holds only what was left, taken from the first encoding.
    assert.deepEqual(
      gunzipSync(script.requests[1]!.payload!)
        .toString()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).n),
      [4, 6],
    );
    const dead = p.sink('dead').written;
    assert.deepEqual(
      dead.map((e) => [e.n, (e._dead_letter as { reason: string }).reason]),
      [[2, 'bad field']],
    );
    await p.topology.stop(1000);
  });

  it('a full retry gets the same request object and the same bytes; the memo is computed once', async (t) => {
    let calls = 0;
    let made = 0;
    const script = newScript(async (request) => {
      request.memo(() => ++made);
      calls++;
      if (calls < 3) throw new RetryableError('try again');
      return undefined;
    });
    const p = pipeline(t, script);
    await p.topology.start();
    await p.source('in').emit(numbered(1, 3));
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    const [a, b, c] = script.requests;
    assert.equal(a!.request, b!.request);
    assert.equal(b!.request, c!.request);
    assert.ok(a!.payload!.equals(c!.payload!));
    assert.deepEqual(
      script.requests.map((r) => r.attempt),
      [0, 1, 2],
    );
    assert.equal(made, 1);
    await p.topology.stop(1000);
  });

  it('connect() is retried with backoff until it succeeds; writes wait for it; a failed healthcheck is only logged', async (t) => {
    const script = newScript();
    script.connectFailures = 3;
    script.healthcheckFails = true;
    const p = pipeline(t, script);
    await p.topology.start();
    await p.source('in').emit(numbered(1, 2));
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.equal(script.connects, 4);
    assert.equal(script.healthchecks, 1);
    assert.equal(script.requests.length, 1);
    const errors = await p.metrics.registry.getSingleMetricAsString('fluxo_component_errors_total');
    assert.match(errors, /error_type="connect_failed"\} 3/);
    assert.match(errors, /error_type="healthcheck_failed"\} 1/);
    await p.topology.stop(1000);
  });

  it('healthcheck: false skips it', async (t) => {
    const script = newScript();
    const p = pipeline(t, script, ', healthcheck: false');
    await p.topology.start();
    await p.source('in').emit(numbered(1, 1));
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.equal(script.healthchecks, 0);
    await p.topology.stop(1000);
  });

  it('a shutdown while connect() keeps failing releases the events as failed', async (t) => {
    const script = newScript();
    script.connectFailures = 1_000_000;
    const p = pipeline(t, script);
    await p.topology.start();
    await p.source('in').emit(numbered(1, 2));
    assert.equal(await p.topology.stop(100), false);
    assert.deepEqual(p.source('in').acks, ['failed']);
    assert.equal(script.requests.length, 0);
  });

  it('timeout: an attempt that does not answer in time is aborted and retried', async (t) => {
    let calls = 0;
    const script = newScript(async (_request, signal) => {
      calls++;
      if (calls > 1) return undefined;
      await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      return undefined;
    });
    const p = pipeline(t, script, ', timeout: 50ms');
    await p.topology.start();
    await p.source('in').emit(numbered(1, 1));
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.equal(calls, 2);
    const errors = await p.metrics.registry.getSingleMetricAsString('fluxo_component_errors_total');
    assert.match(errors, /error_type="timeout"\} 1/);
    await p.topology.stop(1000);
  });

  it('batch.max_events and max_bytes split one big batch into several writes, acknowledged once', async (t) => {
    const script = newScript();
    const p = pipeline(t, script, ', batch: { max_events: 4, max_bytes: 1MiB }');
    await p.topology.start();
    await p.source('in').emit(numbered(1, 10));
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.deepEqual(p.source('in').acks, ['delivered']);
    assert.ok(script.requests.length >= 3, `${script.requests.length} writes`);
    for (const r of script.requests) assert.ok(r.events.length <= 4);
    assert.deepEqual(
      script.requests.flatMap((r) => r.events),
      numbered(1, 10).map((e) => String(e.n)),
    );
    await p.topology.stop(1000);

    const bytes = newScript();
    const q = pipeline(t, bytes, ', batch: { max_bytes: 200 }');
    await q.topology.start();
    const big: Event[] = numbered(1, 10).map((e) => ({ ...e, message: 'x'.repeat(100) }));
    await q.source('in').ctx!.emit(big, { bytes: 1000, onSettled: (s) => q.source('in').acks.push(s) });
    await until(() => q.source('in').acks.length > 0, 'acknowledged');
    assert.ok(bytes.requests.length >= 5, `${bytes.requests.length} writes for 1000 bytes at 200 per write`);
    await q.topology.stop(1000);
  });

  it('an event that cannot be encoded is dead-lettered before send(), the others sent', async (t) => {
    const script = newScript();
    const p = pipeline(t, script);
    await p.topology.start();
    await p.source('in').emit([
      { _id: 'a', n: 1 },
      { _id: 'b', n: 2, big: 10n },
      { _id: 'c', n: 3 },
    ]);
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    assert.deepEqual(script.requests[0]!.events, ['1', '3']);
    // What reaches the dead letter output can be encoded: the event's id, the reason, and its raw form.
    const dead = p.sink('dead').written;
    assert.deepEqual(
      dead.map((e) => e._id),
      ['b'],
    );
    assert.match((dead[0]!._dead_letter as { reason: string }).reason, /cannot be encoded/);
    assert.match(Buffer.from(String(dead[0]!._raw), 'base64').toString(), /10n/);
    await p.topology.stop(1000);
  });
});

describe('sink kit: encoding and compression', () => {
  const events: Event[] = [{ message: 'a\nb', n: 1 }, { message: 'c', n: 2 }, { n: 3 }];

  it('frames ndjson, a json array and text (with another field), with positions for picks', () => {
    const rejected: number[] = [];
    const lines = encodeEvents(events, { codec: 'ndjson' }, rejected);
    assert.deepEqual(rejected, []);
    assert.deepEqual(JSON.parse(frame(lines, 'json').toString()), events);
    assert.deepEqual(
      frame(lines, 'ndjson')
        .toString()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      events,
    );
    assert.equal(frame(encodeEvents([], { codec: 'json' }, []), 'json').toString(), '[]');
    // text keeps a newline inside a value: positions are recorded, not found by scanning.
    const text = encodeEvents(events, { codec: 'text' }, []);
    assert.equal(text.bytes.toString(), 'a\nb\nc\n\n');
    assert.equal(pickLines(text, [0, 2]).bytes.toString(), 'a\nb\n\n');
    assert.equal(encodeEvents(events, { codec: 'text', field: 'n' }, []).bytes.toString(), '1\n2\n3\n');
    assert.deepEqual(JSON.parse(frame(pickLines(lines, [2, 0]), 'json').toString()), [events[2], events[0]]);
  });

  it('encoding options: codecs, old spellings parsed into what they mean, the text field', () => {
    const schema = z.object(encodingOptions(['ndjson', 'text'], { codec: 'ndjson', aliases: { json: 'ndjson' } }));
    assert.deepEqual(encodingOf(schema.parse({})), { codec: 'ndjson', field: 'message' });
    assert.deepEqual(encodingOf(schema.parse({ encoding: 'json' })), { codec: 'ndjson', field: 'message' });
    assert.deepEqual(encodingOf(schema.parse({ encoding: 'text', text_field: 'msg' })), {
      codec: 'text',
      field: 'msg',
    });
    assert.throws(() => schema.parse({ encoding: 'parquet' }));
  });

  it('compresses with gzip and zstd on every Node (zstd: node:zlib from 22.15, WebAssembly before)', async () => {
    const data = Buffer.from('hello '.repeat(100));
    assert.ok(gunzipSync(await compress(data, 'gzip')).equals(data));
    assert.equal(await compress(data, 'none'), data);
    const zstd = await compress(data, 'zstd');
    assert.equal(zstd.readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
    assert.ok(zstd.length < data.length);
    const decompress = await zstdDecompressor();
    assert.ok(Buffer.from(decompress(zstd, data.length)).equals(data));
    assert.throws(() => compressionOption(['none', 'gzip'], { default: 'none' }).parse('zstd'));
  });

  it('a semaphore lets `n` holders in, the next when one leaves, in order', async () => {
    const s = new Semaphore(2);
    const order: number[] = [];
    await s.acquire();
    await s.acquire();
    const third = s.acquire().then(() => order.push(3));
    const fourth = s.acquire().then(() => order.push(4));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, []);
    s.release();
    await third;
    assert.deepEqual(order, [3]);
    s.release();
    await fourth;
    assert.deepEqual(order, [3, 4]);
  });
});

/**
 * A SinkRunner for `out` over `buffer`: one batch of up to 100 events at a time, no deadline per attempt,
 * retrying forever with 1–2 ms backoff, a repeated failure logged every 200 ms; nothing may be dead-lettered.
 */
function retryingRunner(
  sink: Sink,
  buffer: MemoryBuffer,
  ctx: ReturnType<typeof componentContext>,
  logger: Logger,
  healthcheck: boolean,
): SinkRunner {
  return new SinkRunner(
    'out',
    sink,
    buffer,
    {
      batchMaxEvents: 100,
      batchMaxBytes: 1e9,
      batchTimeoutMs: 0,
      timeoutMs: 0,
      healthcheck,
      concurrency: 1,
      retry: { initialBackoffMs: 1, maxBackoffMs: 2, maxAttempts: 0 },
      failureLogEveryMs: 200,
    },
    ctx.metrics,
    logger,
    () => assert.fail('nothing is dead-lettered'),
  );
}

describe('sink kit: a write that keeps failing the same way', () => {
  it('is logged rate-limited with its attempt count and error, counted in fluxo_sink_retries_total, and does not hold shutdown', async () => {
    const { logger, lines } = recordingLogger('warn');
    const ctx = componentContext('out', '/tmp');
    const buffer = new MemoryBuffer({ maxEvents: 100, maxBytes: 1e9, whenFull: 'block' });
    let sends = 0;
    const sink: Sink = {
      async send() {
        sends++;
        throw new RetryableError('Invalid string length (scripted)');
      },
      async stop() {},
    };
    const runner = retryingRunner(sink, buffer, ctx, logger, false);
    const statuses: string[] = [];
    buffer.push({ events: numbered(1, 3), ack: new Acknowledgement((s) => statuses.push(s)), bytes: 300 });
    runner.start();
    await until(() => sends >= 20, '20 attempts');
    const failed = () => lines.filter((l) => l.msg === 'sink write failed, retrying');
    assert.equal(failed().length, 1, 'the first failure is logged, its repeats are not, yet');
    assert.equal(failed()[0]!.attempt, 1);
    assert.match(String(failed()[0]!.err), /Invalid string length/);
    await until(() => failed().length >= 2, 'the next log line, once failureLogEveryMs passed');
    const second = failed()[1]!;
    assert.ok((second.attempt as number) > 10, `attempt ${second.attempt}: the count of attempts so far`);
    assert.ok((second.suppressed as number) > 5, `${second.suppressed} failures not logged since the first`);
    assert.equal(second.sink, 'out');
    const retries = await ctx.pipelineMetrics.registry.getSingleMetricAsString('fluxo_sink_retries_total');
    const counted = Number(/component_id="out"[^}]*\} (\d+)/.exec(retries)?.[1]);
    assert.ok(counted >= sends - 1 && counted > 10, `${counted} retries counted for ${sends} attempts`);
    // Shutdown within its deadline although the write is still retrying: undelivered, never acknowledged.
    const started = Date.now();
    assert.equal(await runner.drain(Date.now() + 100), false);
    assert.ok(Date.now() - started < 1000, `drained in ${Date.now() - started} ms`);
    assert.deepEqual(statuses, ['failed']);
  });
});

describe('sink kit: a connect or healthcheck that never answers', () => {
  for (const stuck of ['connect', 'healthcheck'] as const) {
    it(`${stuck}: a drain past its deadline aborts it and returns, the batch released as failed`, async () => {
      const ctx = componentContext('out', '/tmp');
      const buffer = new MemoryBuffer({ maxEvents: 100, maxBytes: 1e9, whenFull: 'block' });
      let asked = false;
      // Ignores its signal, as a client library waiting on a server that stopped answering may.
      const never = () => {
        asked = true;
        return new Promise<void>(() => {});
      };
      const sink: Sink = {
        ...(stuck === 'connect' ? { connect: never } : { healthcheck: never }),
        async send() {
          throw new Error('not reached while connecting');
        },
        async stop() {},
      };
      const runner = retryingRunner(sink, buffer, ctx, testLogger(), stuck === 'healthcheck');
      const statuses: string[] = [];
      buffer.push({ events: numbered(1, 3), ack: new Acknowledgement((s) => statuses.push(s)), bytes: 300 });
      runner.start();
      await until(() => asked, `the ${stuck} asked`);
      // Without the runner's abortable connect this never returned: drain waits for the loops, they for the connect.
      assert.equal(await runner.drain(Date.now() + 50), false);
      assert.deepEqual(statuses, ['failed']);
    });
  }
});
