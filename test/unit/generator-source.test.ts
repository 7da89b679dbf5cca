import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { COMBINED_LOG_LINE, sequenceOf } from '../../src/codecs/access-log.ts';
import type { SourceContext } from '../../src/core/component.ts';
import { FluxoError } from '../../src/core/errors.ts';
import { type GeneratorClock, GeneratorSource, generatorSource, MIN_TICK_MS } from '../../src/sources/generator.ts';
import { recordingSourceContext } from '../helpers/context.ts';

/** Time that moves only when the generator sleeps (or a test moves it). */
class FakeClock implements GeneratorClock {
  t = 0;
  readonly sleeps: number[] = [];
  now(): number {
    return this.t;
  }
  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
    await immediate();
    signal.throwIfAborted();
  }
}

function setup(raw: Record<string, unknown>, clock?: GeneratorClock, onEmit?: (ctx: SourceContext) => void) {
  const rec = recordingSourceContext('gen', '/nonexistent', 'generator');
  const ctx: SourceContext = {
    ...rec.ctx,
    emit: (events, options) => {
      onEmit?.(rec.ctx);
      return rec.ctx.emit(events, options);
    },
  };
  const source = new GeneratorSource(generatorSource.options.parse(raw), ctx, clock);
  return { rec, source };
}

describe('generator source', () => {
  it('has documented defaults', () => {
    const o = generatorSource.options.parse({});
    assert.equal(o.format, 'apache_combined');
    assert.equal(o.rate, 10);
    assert.equal(o.count, 0);
    assert.equal(o.batch_size, 100);
    assert.equal(o.sequence, true);
    for (const [key, field] of Object.entries(generatorSource.options.shape)) {
      assert.ok(field.description, `option ${key} has a description`);
    }
  });

  it('emits count events numbered 1..count exactly once, then finishes', async () => {
    const { rec, source } = setup({ rate: 0, count: 1050, batch_size: 100, seed: 3 });
    await source.start();
    await source.finished;
    const events = rec.events();
    assert.deepEqual(
      events.map((e) => e.sequence),
      Array.from({ length: 1050 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      rec.batches.map((b) => b.events.length),
      [...Array(10).fill(100), 50],
    );
    for (const e of events) {
      assert.equal(sequenceOf(e.message as string), e.sequence);
      assert.match(e.message as string, COMBINED_LOG_LINE);
      assert.equal(e.source_type, 'generator');
      assert.equal(typeof e._id, 'string');
    }
    assert.equal(new Set(events.map((e) => e._id)).size, 1050);
    // all events of a batch share one timestamp
    for (const b of rec.batches) assert.equal(new Set(b.events.map((e) => e.timestamp)).size, 1);
    await source.stop();
  });

  it('cycles through the given lines, without sequence when disabled', async () => {
    const { rec, source } = setup({ format: 'lines', lines: ['a', 'b', 'c'], rate: 0, count: 7, sequence: false });
    await source.start();
    await source.finished;
    assert.deepEqual(
      rec.events().map((e) => e.message),
      ['a', 'b', 'c', 'a', 'b', 'c', 'a'],
    );
    assert.ok(rec.events().every((e) => !('sequence' in e)));
  });

  it('rejects format lines without lines', () => {
    assert.throws(
      () => setup({ format: 'lines' }),
      (e: unknown) => e instanceof FluxoError && e.code === 'FLUXO_SOURCE_INVALID_OPTIONS',
    );
  });

  it('has no finished promise when it runs forever', () => {
    assert.equal(setup({ count: 0 }).source.finished, undefined);
  });

  it('holds a high rate with one timer per tick, not per event', async () => {
    const clock = new FakeClock();
    const { rec, source } = setup({ rate: 1000, count: 5000, batch_size: 100 }, clock);
    await source.start();
    await source.finished;
    assert.equal(rec.events().length, 5000);
    assert.ok(Math.abs(clock.t - 5000) <= MIN_TICK_MS, `5000 events at 1000/s took ${clock.t} ms`);
    const timers = clock.sleeps.filter((ms) => ms > 0);
    assert.ok(timers.every((ms) => ms >= MIN_TICK_MS));
    assert.ok(timers.length <= 5000 / MIN_TICK_MS + 1, `${timers.length} timers`);
    assert.ok(rec.batches.every((b) => b.events.length <= 100));
  });

  it('spreads a low rate evenly', async () => {
    const clock = new FakeClock();
    const emitTimes: number[] = [];
    const { rec, source } = setup({ rate: 10, count: 20, batch_size: 100 }, clock, () => emitTimes.push(clock.t));
    await source.start();
    await source.finished;
    assert.ok(rec.batches.every((b) => b.events.length === 1));
    assert.deepEqual(
      emitTimes.map((t) => Math.round(t)),
      Array.from({ length: 20 }, (_, i) => (i + 1) * 100),
    );
  });

  it('catches up at most one second of events after a stall', async () => {
    const clock = new FakeClock();
    const stallAt = 5;
    const emitTimes: number[] = [];
    const { rec, source } = setup({ rate: 1000, batch_size: 100 }, clock, () => {
      emitTimes.push(clock.t);
      if (emitTimes.length === stallAt) clock.t += 60_000; // the pipeline blocked this emit for a minute
    });
    await source.start();
    await rec.waitForEvents(stallAt * 100 + 3000);
    await source.stop();
    const stalledUntil = emitTimes[stallAt - 1]! + 60_000;
    // Batches emitted right after the stall, before the clock moved again: the catch-up burst.
    const burst = rec.batches
      .filter((_, i) => i >= stallAt && emitTimes[i] === stalledUntil)
      .reduce((s, b) => s + b.events.length, 0);
    assert.ok(burst >= 900 && burst <= 1000, `catch-up burst of ${burst} events`);
    const later = rec.batches.filter((_, i) => emitTimes[i]! > stalledUntil);
    assert.ok(later.length > 0 && later.every((b) => b.events.length <= 100));
  });

  it('stop() ends the loop and resolves only after the last emit settled', async () => {
    const { rec, source } = setup({ rate: 0, batch_size: 50 });
    rec.block();
    await source.start();
    await rec.waitForEvents(50);
    let stopped = false;
    const stopping = source.stop().then(() => {
      stopped = true;
    });
    for (let i = 0; i < 5; i++) await immediate();
    assert.equal(stopped, false, 'stop() waits for the pending emit');
    rec.unblock();
    await stopping;
    assert.equal(rec.batches.length, 1, 'no batch after stop()');
  });
});
