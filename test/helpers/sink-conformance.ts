import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type { AckStatus } from '../../src/core/ack.ts';
import type { SinkDefinition } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';
import { tempDir } from './context.ts';
import { testPipeline, until } from './pipeline.ts';

/** What the conformance suite checks of every sink; a harness names the checks its destination cannot take, and why. */
export const CHECKS = [
  'settles only after delivery',
  'honours abort',
  'a retried write sends the same bytes, once delivered',
  'an event it cannot encode goes to the dead letter and never loops',
  'a partial answer retries only the rest',
  'stop() flushes',
  'a destination down at start is retried with backoff, then delivered',
] as const;
export type Check = (typeof CHECKS)[number];

/**
 * Six events for the partial-answer check, three at 03:00 UTC and three at 04:00 (two partitions, subjects or
 * topics when the destination's name is templated by the hour), with the three a destination that fails the
 * 04 part answers for.
 */
export function partialEvents(): { events: Event[]; answered: string[] } {
  return {
    events: Array.from({ length: 6 }, (_, i) => ({
      _id: `p-${1 + i}`,
      message: `partial ${1 + i}`,
      timestamp: new Date(Date.UTC(2026, 11, 2, i < 3 ? 3 : 4, 0, 0, i)).toISOString(),
    })),
    answered: ['p-1', 'p-2', 'p-3'],
  };
}

/** One real destination, started for one test. */
export interface Destination {
  /** The sink's options (as in a config) that point at this destination. */
  readonly options: Record<string, unknown>;
  /** The `_id`s the destination holds, in arrival order, duplicates kept; undefined for a sink that keeps nothing. */
  received(): string[] | undefined;
  /** The bytes of each delivery attempt the destination saw. */
  attempts?(): Buffer[];
  /** The next attempt reaches the destination, which then fails it as a transient error. */
  failNextAttempt?(): void;
  /** Holds the destination's answers until resume(). */
  stall?(): void;
  resume?(): void;
  /** Brings the destination up, when it was started down. */
  up?(): Promise<void>;
  /**
   * Events for the partial-answer check, those of them the destination will answer for (take), and what makes
   * it take that part of their write and fail the rest (once). The rest may arrive twice (a lost answer).
   */
  partial?: { events: Event[]; answered: string[]; arm(): void };
}

export interface SinkHarness {
  readonly definition: SinkDefinition;
  /** Starts a destination; `down` asks for one that refuses writes until `up()`. */
  destination(t: TestContext, options: { down: boolean; dataDir: string }): Promise<Destination>;
  /** The checks this destination cannot take, each with the reason. */
  readonly notApplicable?: Partial<Record<Check, string>>;
}

function numberedEvents(from: number, count: number): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: `c-${from + i}`,
    message: `conformance ${from + i}`,
    timestamp: new Date(Date.UTC(2026, 11, 2, 3, 0, 0, from + i)).toISOString(),
    n: from + i,
  }));
}

/** A sink under test in the real Topology: a manual source, the sink, and a controlled sink reading dead_letter. */
async function pipelineFor(t: TestContext, harness: SinkHarness, destination: Destination, dataDir: string) {
  const type = harness.definition.type;
  const config = {
    sources: { in: { type: 'manual' } },
    sinks: {
      out: {
        type,
        inputs: ['in'],
        ...destination.options,
        retry: { initial_backoff: '20ms', max_backoff: '200ms' },
        batch: { timeout: '0ms' },
      },
      dead: { type: 'controlled', inputs: ['dead_letter'] },
    },
  };
  const p = testPipeline(stringify(config), dataDir, [harness.definition]);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await p.topology.stop(2000);
  });
  await p.topology.start();
  const source = p.source('in');
  const emit = (events: Event[]) => {
    const status: { value: AckStatus | undefined; receivedAtSettle: string[] | undefined } = {
      value: undefined,
      receivedAtSettle: undefined,
    };
    const accepted = source.ctx!.emit(events, {
      onSettled: (s) => {
        status.value = s;
        status.receivedAtSettle = destination.received();
      },
    });
    return { status, accepted };
  };
  const metric = async (name: string) => {
    const m = p.metrics.registry.getSingleMetric(name);
    if (!m) return 0;
    let sum = 0;
    for (const v of (await m.get()).values) if (v.labels.component_id === 'out') sum += v.value;
    return sum;
  };
  return {
    ...p,
    emit,
    metric,
    dead: () => p.sink('dead'),
    stop: async (timeoutMs?: number) => {
      stopped = true;
      return p.topology.stop(timeoutMs);
    },
  };
}

const ids = (events: readonly Event[]) => events.map((e) => e._id as string);

function assertEachOnce(received: string[] | undefined, expected: string[], what: string): void {
  if (received === undefined) return;
  for (const id of expected) {
    const n: number = received.filter((r) => r === id).length;
    assert.equal(n, 1, `${what}: ${id} arrived ${n} times (received ${JSON.stringify(received)})`);
  }
}

function assertHas(received: string[] | undefined, expected: string[], what: string): void {
  if (received === undefined) return;
  const have = new Set(received);
  const missing = expected.filter((id) => !have.has(id));
  assert.deepEqual(missing, [], `${what}: missing ${missing.join(', ')}`);
}

/**
 * The sink conformance suite: every sink runs it through the real Topology against a real destination, by one
 * line in test/integration/sink-conformance.test.ts. A check a destination cannot take is named, with the
 * reason, in the harness's `notApplicable`, and the suite says so in a test of its own.
 */
export function sinkConformance(harness: SinkHarness): void {
  const type = harness.definition.type;
  const skip = harness.notApplicable ?? {};
  const check = (name: Check, fn: (t: TestContext, dataDir: string) => Promise<void>) => {
    if (skip[name] !== undefined) return;
    it(name, async (t) => fn(t, tempDir(t, `fluxo-conformance-${type}-`)));
  };

  describe(`sink conformance: ${type}`, { timeout: 60_000 }, () => {
    it('names a reason for every check it does not take', () => {
      for (const [name, reason] of Object.entries(skip)) {
        assert.ok((CHECKS as readonly string[]).includes(name), `unknown check "${name}"`);
        assert.ok(typeof reason === 'string' && reason.length > 10, `check "${name}" is skipped without a reason`);
      }
    });

    check('settles only after delivery', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: false, dataDir });
      const p = await pipelineFor(t, harness, dest, dataDir);
      const events = numberedEvents(1, 5);
      if (dest.stall && dest.resume) {
        dest.stall();
        const { status } = p.emit(events);
        // Nothing can be awaited for "not yet": give the sink time to (wrongly) settle.
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(status.value, undefined, 'settled while the destination had not answered');
        dest.resume();
        await until(() => status.value !== undefined, 'the acknowledgement');
        assert.equal(status.value, 'delivered');
        assertHas(status.receivedAtSettle, ids(events), 'at the acknowledgement');
      } else {
        const { status } = p.emit(events);
        await until(() => status.value !== undefined, 'the acknowledgement');
        assert.equal(status.value, 'delivered');
        assertHas(status.receivedAtSettle, ids(events), 'at the acknowledgement');
      }
      assert.equal(await p.metric('fluxo_component_sent_events_total'), events.length);
    });

    check('honours abort', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: false, dataDir });
      assert.ok(dest.stall && dest.resume, `${type}: a destination that can stall (or name the check not applicable)`);
      const p = await pipelineFor(t, harness, dest, dataDir);
      dest.stall();
      const { status } = p.emit(numberedEvents(1, 3));
      await new Promise((r) => setTimeout(r, 100));
      const drained = await p.stop(300);
      dest.resume();
      assert.equal(drained, false, 'stop() reported a drain although the destination never answered');
      assert.equal(status.value, 'failed', 'an aborted write must not be acknowledged');
    });

    check('a retried write sends the same bytes, once delivered', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: false, dataDir });
      assert.ok(dest.failNextAttempt && dest.attempts, `${type}: a destination that can fail an attempt`);
      const p = await pipelineFor(t, harness, dest, dataDir);
      dest.failNextAttempt();
      const events = numberedEvents(1, 10);
      const { status } = p.emit(events);
      await until(() => status.value !== undefined, 'the acknowledgement');
      assert.equal(status.value, 'delivered');
      const attempts = dest.attempts();
      assert.ok(attempts.length >= 2, `expected a failed attempt and its retry, saw ${attempts.length}`);
      assert.ok(
        attempts.at(-1)!.equals(attempts.at(-2)!),
        `the retry sent other bytes:\n${attempts.at(-2)!.toString('hex').slice(0, 200)}\n${attempts.at(-1)!.toString('hex').slice(0, 200)}`,
      );
      assert.ok((await p.metric('fluxo_sink_retries_total')) >= 1, 'no retry was counted');
      assertEachOnce(dest.received(), ids(events), 'after the retry');
    });

    check('an event it cannot encode goes to the dead letter and never loops', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: false, dataDir });
      const p = await pipelineFor(t, harness, dest, dataDir);
      const [first, second, third] = numberedEvents(1, 3) as [Event, Event, Event];
      // A cycle: no JSON, msgpack or text encoder can write it.
      const bad: Event = { ...second };
      bad.self = bad;
      const { status } = p.emit([first, bad, third]);
      await until(() => status.value !== undefined, 'the acknowledgement');
      assert.equal(status.value, 'delivered');
      const dead = p.dead().written;
      assert.equal(dead.length, 1, `dead-lettered: ${dead.length}`);
      assert.equal(dead[0]!._id, bad._id);
      assert.match(String((dead[0]!._dead_letter as { reason: string }).reason), /encode/);
      assertEachOnce(dest.received(), ids([first, third]), 'the encodable events');
      assert.equal(await p.metric('fluxo_sink_retries_total'), 0, 'the unencodable event was retried');
    });

    check('a partial answer retries only the rest', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: false, dataDir });
      assert.ok(dest.partial, `${type}: a destination that can answer part of a write`);
      const p = await pipelineFor(t, harness, dest, dataDir);
      dest.partial.arm();
      const { events, answered } = dest.partial;
      const { status } = p.emit(events);
      await until(() => status.value !== undefined, 'the acknowledgement');
      assert.equal(status.value, 'delivered');
      assert.ok((await p.metric('fluxo_sink_retries_total')) >= 1, 'the partial answer was not retried');
      assert.ok(answered.length > 0 && answered.length < events.length, 'the harness answers part of the write');
      assertEachOnce(dest.received(), answered, 'what the destination had answered for, after the retry');
      assertHas(dest.received(), ids(events), 'after the partial answer');
    });

    check('stop() flushes', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: false, dataDir });
      const p = await pipelineFor(t, harness, dest, dataDir);
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push(p.emit(numberedEvents(1 + i * 20, 20)).status);
      assert.equal(await p.stop(10_000), true, 'stop() did not drain');
      for (const s of statuses) assert.equal(s.value, 'delivered');
      const all = numberedEvents(1, 100);
      assertEachOnce(dest.received(), ids(all), 'after stop()');
      assert.equal(await p.metric('fluxo_component_sent_events_total'), 100);
    });

    check('a destination down at start is retried with backoff, then delivered', async (t, dataDir) => {
      const dest = await harness.destination(t, { down: true, dataDir });
      assert.ok(dest.up, `${type}: a destination that can start down`);
      const p = await pipelineFor(t, harness, dest, dataDir);
      const events = numberedEvents(1, 5);
      const { status } = p.emit(events);
      for (let waited = 0; (await p.metric('fluxo_component_errors_total')) === 0; waited += 10) {
        assert.ok(waited < 10_000, 'no failed attempt while the destination is down');
        await new Promise((r) => setTimeout(r, 10));
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(status.value, undefined, 'settled while the destination was down');
      const errors = await p.metric('fluxo_component_errors_total');
      assert.ok(errors >= 1, 'no failed attempt was counted while down');
      // Backoff, not a busy loop: within 300 ms at 20–200 ms per retry, a few attempts, never hundreds.
      assert.ok(errors < 50, `${errors} failed attempts in ~300 ms: not backing off`);
      await dest.up();
      await until(() => status.value !== undefined, 'the acknowledgement once up');
      assert.equal(status.value, 'delivered');
      assertEachOnce(dest.received(), ids(events), 'once up');
    });
  });
}
