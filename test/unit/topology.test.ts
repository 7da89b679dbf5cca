import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { buffers } from '../../src/buffers/index.ts';
import { readTests, runTest } from '../../src/cli/test-command.ts';
import { defineTransform, type Transform } from '../../src/core/component.ts';
import { createRegistry } from '../../src/core/pipeline-config.ts';
import { stampDeadLetter } from '../../src/core/topology/dead-letter.ts';
import { numbered } from '../helpers/components.ts';
import { recordingLogger, tempDir } from '../helpers/context.ts';
import { testPipeline, tick, until } from '../helpers/pipeline.ts';

const fast = 'retry: { initial_backoff: 1ms, max_backoff: 5ms }';

describe('Topology acknowledgements', () => {
  it('acks once, only after both fan-out sinks settled, through a dropping filter and a transient failure', async (t) => {
    const p = testPipeline(
      `
sources:
  in: { type: manual }
transforms:
  odd: { type: filter, inputs: [in], condition: 'n % 2 == 1' }
sinks:
  all: { type: controlled, inputs: [in], ${fast} }
  odds: { type: controlled, inputs: [odd], ${fast} }
`,
      tempDir(t),
    );
    await p.topology.start();
    p.sink('all').behaviour = { failTimes: 2 };
    p.sink('odds').behaviour = 'stall';
    await p.source('in').emit(numbered(1, 10));
    await p.sink('all').waitForAttempts(3);
    await until(() => p.sink('all').written.length === 10, 'sink all delivered after retries');
    assert.deepEqual(p.source('in').acks, [], 'not acknowledged while odds stalls');
    p.sink('odds').release();
    await until(() => p.source('in').acks.length > 0, 'acknowledged');
    await tick();
    assert.deepEqual(p.source('in').acks, ['delivered'], 'exactly once');
    assert.deepEqual(
      p.sink('odds').written.map((e) => e.n),
      [1, 3, 5, 7, 9],
    );
    assert.equal(p.sink('all').attempts, 3);
    await p.topology.stop(1000);
  });

  it('acks a batch the filter drops entirely at once', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
transforms: { none: { type: filter, inputs: [in], condition: 'n > 1000' } }
sinks: { out: { type: controlled, inputs: [none] } }
`,
      tempDir(t),
    );
    await p.topology.start();
    await p.source('in').emit(numbered(1, 5));
    assert.deepEqual(p.source('in').acks, ['delivered']);
    assert.equal(p.sink('out').written.length, 0);
    const text = await p.metrics.registry.getSingleMetricAsString('fluxo_component_discarded_events_total');
    assert.match(text, /component_id="none".*reason="filtered"\} 5/);
    await p.topology.stop(1000);
  });

  it('dead-letters permanent rejections and acks only after the dead letter sink delivered them', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  out: { type: controlled, inputs: [in] }
  dlq: { type: controlled, inputs: [dead_letter] }
`,
      tempDir(t),
    );
    await p.topology.start();
    p.sink('out').behaviour = { reject: (e) => (e.n as number) > 3 };
    p.sink('dlq').behaviour = 'stall';
    await p.source('in').emit(numbered(1, 5));
    await p.sink('dlq').waitForAttempts(1);
    await tick();
    assert.deepEqual(p.source('in').acks, []);
    p.sink('dlq').release();
    await until(() => p.source('in').acks.length === 1, 'acknowledged');
    assert.deepEqual(
      p.sink('out').written.map((e) => e.n),
      [1, 2, 3],
    );
    const dead = p.sink('dlq').written;
    assert.deepEqual(
      dead.map((e) => e.n),
      [4, 5],
    );
    assert.deepEqual((dead[0]!._dead_letter as { reason: string; component_id: string }).reason, 'injected rejection');
    assert.equal((dead[0]!._dead_letter as { component_id: string }).component_id, 'out');
    await p.topology.stop(1000);
  });

  it('gives up after max_attempts and dead-letters with the last error', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  out: { type: controlled, inputs: [in], retry: { initial_backoff: 1ms, max_backoff: 2ms, max_attempts: 3 } }
  dlq: { type: controlled, inputs: [dead_letter] }
`,
      tempDir(t),
    );
    await p.topology.start();
    p.sink('out').behaviour = { failTimes: 100 };
    await p.source('in').emit(numbered(1, 2));
    await until(() => p.source('in').acks.length === 1, 'acknowledged after dead letter');
    assert.equal(p.sink('out').attempts, 3);
    assert.match((p.sink('dlq').written[0]!._dead_letter as { reason: string }).reason, /gave up after 3 attempts/);
    await p.topology.stop(1000);
  });
});

describe('Topology backpressure and shutdown', () => {
  it('block: a stalled sink stops the source, the buffer stays within its limit, nothing is lost', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  out: { type: controlled, inputs: [in], buffer: { type: memory, max_events: 100 }, batch: { max_events: 50 } }
`,
      tempDir(t),
    );
    await p.topology.start();
    p.sink('out').behaviour = 'stall';
    const node = () => p.topology.busySinks();
    let sent = 0;
    let blocked = false;
    const bufferEvents = async () => {
      const text = await p.metrics.registry.getSingleMetricAsString('fluxo_buffer_events');
      return Number(/ (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    for (let i = 0; i < 30 && !blocked; i++) {
      const pending = p.source('in').emit(numbered(sent + 1, 10));
      sent += 10;
      const state = await Promise.race([pending.then(() => 'accepted'), tick().then(() => 'blocked')]);
      assert.ok((await bufferEvents()) <= 100, 'buffer within max_events');
      if (state === 'blocked') {
        blocked = true;
        p.sink('out').release();
        await pending;
      }
    }
    assert.ok(blocked, 'the source was blocked by the full buffer');
    assert.ok(sent <= 120, `source stopped early (sent ${sent})`);
    await until(() => node().length === 0, 'drained');
    assert.deepEqual(
      p.sink('out').written.map((e) => e.n),
      Array.from({ length: sent }, (_, i) => i + 1),
    );
    await p.topology.stop(1000);
    assert.equal(p.source('in').acks.filter((s) => s === 'delivered').length, sent / 10);
  });

  it('stop drains within the timeout; what is not delivered by then is failed, never acknowledged', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  ok: { type: controlled, inputs: [in] }
  stuck: { type: controlled, inputs: [in] }
`,
      tempDir(t),
    );
    await p.topology.start();
    p.sink('stuck').behaviour = 'stall';
    await p.source('in').emit(numbered(1, 5));
    const drained = await p.topology.stop(50);
    assert.equal(drained, false);
    assert.deepEqual(p.source('in').acks, ['failed']);
    assert.equal(p.sink('ok').written.length, 5);
    assert.equal(p.sink('stuck').stopped, true);
    assert.equal(p.source('in').stopped, true);
  });
});

describe('Topology reload', () => {
  it('keeps unchanged components, swaps a changed sink without losing or duplicating events', async (t) => {
    const dir = tempDir(t);
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks:
  keep: { type: controlled, inputs: [in] }
  swap: { type: controlled, inputs: [in] }
`,
      dir,
    );
    await p.topology.start();
    const keep = p.sink('keep');
    await p.source('in').emit(numbered(1, 5));
    const oldSwap = p.sink('swap');
    oldSwap.behaviour = 'stall';
    await p.source('in').emit(numbered(6, 5));
    const reloading = p.topology.reload(
      p.load(`
sources: { in: { type: manual } }
sinks:
  keep: { type: controlled, inputs: [in] }
  swap: { type: controlled, inputs: [in], concurrency: 2 }
`),
    );
    await tick();
    oldSwap.release();
    const summary = await reloading;
    assert.deepEqual(summary, { added: [], changed: ['swap'], removed: [] });
    assert.equal(p.sink('keep'), keep, 'unchanged sink kept');
    assert.equal(oldSwap.stopped, true, 'old sink drained and stopped');
    await p.source('in').emit(numbered(11, 5));
    await until(() => p.topology.busySinks().length === 0, 'drained');
    const swapped = [...oldSwap.written, ...(p.sink('swap') === oldSwap ? [] : p.sink('swap').written)];
    assert.deepEqual(
      swapped.map((e) => e.n).sort((a, b) => (a as number) - (b as number)),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      keep.written.map((e) => e.n),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    await p.topology.stop(1000);
  });
});

describe('Topology tap', () => {
  it('shows what a source emits, what each transform output carries and what a sink receives', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
transforms: { odd: { type: filter, inputs: [in], condition: 'n % 2 == 1' } }
sinks: { out: { type: controlled, inputs: [odd] } }
`,
      tempDir(t),
    );
    await p.topology.start();
    const seen: Record<string, number[]> = { in: [], odd: [], out: [] };
    const removers = Object.keys(seen).map((id) =>
      p.topology.tap(id, (events) => seen[id]!.push(...events.map((e) => e.n as number))),
    );
    assert.equal(
      p.topology.tap('nope', () => {}),
      undefined,
    );
    await p.source('in').emit(numbered(1, 4));
    assert.deepEqual(seen, { in: [1, 2, 3, 4], odd: [1, 3], out: [1, 3] });
    for (const r of removers) r!();
    await p.source('in').emit(numbered(5, 2));
    assert.deepEqual(seen.in, [1, 2, 3, 4], 'removed taps see nothing more');
    await p.topology.stop(1000);
  });
});

describe('Sink batch timeout (linger)', () => {
  for (const buffer of ['{ type: memory }', '{ type: disk, max_size: 1MiB }']) {
    it(`gathers batches that arrive within batch.timeout into one write (buffer ${buffer})`, async (t) => {
      const p = testPipeline(
        `
sources: { in: { type: manual } }
sinks: { out: { type: controlled, inputs: [in], buffer: ${buffer}, batch: { max_events: 100, timeout: 300ms } } }
`,
        tempDir(t),
      );
      await p.topology.start();
      const source = p.source('in');
      await Promise.all([source.emit(numbered(1, 3)), source.emit(numbered(4, 3)), source.emit(numbered(7, 3))]);
      await until(() => source.acks.length === 3, 'all three batches acknowledged');
      await until(() => p.sink('out').written.length === 9, 'all nine events written');
      assert.equal(p.sink('out').writes, 1, 'one write for the three batches');
      assert.deepEqual(
        p.sink('out').written.map((e) => e.n),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      await p.topology.stop(1000);
    });

    it(`writes as soon as max_events are ready, long before batch.timeout (buffer ${buffer})`, async (t) => {
      const p = testPipeline(
        `
sources: { in: { type: manual } }
sinks: { out: { type: controlled, inputs: [in], buffer: ${buffer}, batch: { max_events: 6, timeout: 1h } } }
`,
        tempDir(t),
      );
      await p.topology.start();
      t.after(() => p.topology.stop(1000)); // also when an assertion fails: the runner must not linger for the hour
      const source = p.source('in');
      await source.emit(numbered(1, 3));
      await tick();
      assert.equal(p.sink('out').writes, 0, 'a short write waits');
      await source.emit(numbered(4, 3));
      // until() gives up after 10 s: a runner that waited for the hour fails here.
      await until(() => p.sink('out').written.length === 6, 'the full write went out');
      assert.equal(p.sink('out').writes, 1);
      await until(() => source.acks.length === 2, 'both acknowledged');
    });
  }

  it('without a timeout a write goes out at once: batches arriving meanwhile make the next one', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks: { out: { type: controlled, inputs: [in], batch: { max_events: 100 } } }
`,
      tempDir(t),
    );
    await p.topology.start();
    const source = p.source('in');
    await Promise.all([source.emit(numbered(1, 3)), source.emit(numbered(4, 3)), source.emit(numbered(7, 3))]);
    await until(() => p.sink('out').written.length === 9, 'all nine events written');
    assert.ok(p.sink('out').writes >= 2, `the first batch went alone (${p.sink('out').writes} writes)`);
    await p.topology.stop(1000);
  });

  it('stops promptly while a write lingers, delivering what it held', async (t) => {
    const p = testPipeline(
      `
sources: { in: { type: manual } }
sinks: { out: { type: controlled, inputs: [in], batch: { max_events: 100, timeout: 1h } } }
`,
      tempDir(t),
    );
    await p.topology.start();
    await p.source('in').emit(numbered(1, 3));
    await tick();
    assert.equal(p.sink('out').writes, 0);
    await p.topology.stop(5000);
    assert.deepEqual(p.source('in').acks, ['delivered'], 'drained on stop, not after the hour');
    assert.equal(p.sink('out').written.length, 3);
  });
});

/** A transform of no options that runs `process`. */
const testTransform = (type: string, process: Transform['process']) =>
  defineTransform({
    kind: 'transform',
    type,
    description: 'test transform',
    options: z.object({}),
    build: () => ({ process }),
  });

/** Keeps n = 1, dead-letters n = 2, pushes n = 3 to an output it does not declare. */
const misroute = testTransform('misroute', (events, out) => {
  out.push(events.filter((e) => e.n === 1));
  out.deadLetter(
    events.filter((e) => e.n === 2),
    'bad n',
  );
  out.push(
    events.filter((e) => e.n === 3),
    'nowhere',
  );
});

/** A dead letter consumer that rejects everything it gets. */
const rejectAll = testTransform('reject_all', (events, out) => out.deadLetter(events, 'still bad'));

const deadLetterGraph = `
sources: { in: { type: manual } }
transforms:
  misroute: { type: misroute, inputs: [in] }
  again: { type: reject_all, inputs: [dead_letter] }
sinks:
  out: { type: controlled, inputs: [misroute] }
  dlq: { type: controlled, inputs: [dead_letter] }
`;

describe('Dead letter', () => {
  it('stamps copies with reason, component and time, and sets apart events that were dead-lettered already', () => {
    const fresh = Object.freeze({ message: 'a' });
    const again = Object.freeze({ message: 'b', _dead_letter: { reason: 'first', component_id: 'x', at: 'then' } });
    const { stamped, rejectedAgain } = stampDeadLetter([fresh, again], 'bad', 'parse', '2025-01-01T00:00:00.000Z');
    assert.deepEqual(stamped, [
      { message: 'a', _dead_letter: { reason: 'bad', component_id: 'parse', at: '2025-01-01T00:00:00.000Z' } },
    ]);
    assert.deepEqual(rejectedAgain, [again]);
    assert.deepEqual(fresh, { message: 'a' }, 'the original is not changed');
  });

  it('the pipeline: a push to an undeclared output is dead-lettered, a rejection by a dead letter consumer is logged', async (t) => {
    const { logger, lines } = recordingLogger('error');
    const p = testPipeline(deadLetterGraph, tempDir(t), [misroute, rejectAll], logger);
    await p.topology.start();
    await p.source('in').emit(numbered(1, 3));
    await until(() => p.source('in').acks.length === 1, 'acknowledged');
    assert.deepEqual(p.source('in').acks, ['delivered']);
    assert.deepEqual(
      p.sink('out').written.map((e) => e.n),
      [1],
    );
    const dead = p.sink('dlq').written.map((e) => {
      const { reason, component_id } = e._dead_letter as Record<string, unknown>;
      return { n: e.n, reason, component_id };
    });
    assert.deepEqual(dead, [
      { n: 2, reason: 'bad n', component_id: 'misroute' },
      { n: 3, reason: 'transform misroute pushed to unknown output nowhere', component_id: 'misroute' },
    ]);
    const again = lines.filter((l) => l.msg === 'dead-lettered event rejected again by a dead letter consumer');
    assert.deepEqual(
      again.map((l) => [l.component, l.reason, (l.event as { n: number }).n]),
      [
        ['again', 'still bad', 2],
        ['again', 'still bad', 3],
      ],
    );
    const errors = await p.metrics.registry.getSingleMetricAsString('fluxo_component_errors_total');
    assert.match(errors, /component_id="misroute".*error_type="unknown_output"\} 1/);
    await p.topology.stop(1000);
  });

  it('fluxo test extracts from dead_letter what the pipeline sends there', (t) => {
    const p = testPipeline(deadLetterGraph, tempDir(t), [misroute, rejectAll]);
    const { tests, problems } = readTests([
      {
        file: 'tests.yaml',
        value: [
          {
            name: 'dead letters',
            inputs: [{ insert_at: 'misroute', events: numbered(1, 3) }],
            outputs: [
              { extract_from: 'misroute', count: 1 },
              {
                extract_from: 'dead_letter',
                count: 2,
                conditions: [
                  { equals: { n: 2, '_dead_letter.reason': 'bad n', '_dead_letter.component_id': 'misroute' } },
                  { equals: { n: 3, '_dead_letter.reason': 'transform misroute pushed to unknown output nowhere' } },
                ],
              },
            ],
          },
        ],
      },
    ]);
    assert.deepEqual(problems, []);
    const components = createRegistry([misroute, rejectAll], buffers);
    assert.deepEqual(runTest(tests[0]!.tests[0]!, p.load(deadLetterGraph), components), []);
  });
});
