import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { DiskBuffer } from '../../src/buffers/disk.ts';
import { Acknowledgement, type Batch } from '../../src/core/ack.ts';
import type { Event } from '../../src/core/event.ts';
import { openBuffer } from '../integration/fixtures/disk-buffer-harness.ts';

type Op =
  | { op: 'push'; events: number }
  | { op: 'take'; max: number }
  | { op: 'ack'; pick: number }
  | { op: 'turn' }
  | { op: 'restart'; crash: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('push' as const), events: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('take' as const), max: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('ack' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.constant({ op: 'turn' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('restart' as const), crash: fc.boolean() }) },
);

/**
 * A copy of the directory as a crash would leave it: the files as they are this instant (the page cache
 * survives a process crash), while the old instance's writes may be half done in libuv's threads.
 */
function crashImage(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    try {
      copyFileSync(join(from, name), join(to, name));
    } catch (error) {
      // A segment deleted while copying was fully acknowledged in the ledger already: a crash image without it is valid.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

interface Run {
  buffer: DiskBuffer;
  /** Runs are numbered; callbacks of a crashed run are ignored, as its process would be dead. */
  generation: number;
  handedOut: Set<number>;
  lastHandedOut: number;
  /** Events durable and not yet handed out in this run: take() is only awaited when it cannot wait forever. */
  available: number;
  outstanding: Batch[];
}

describe('DiskBuffer property', { timeout: 120_000 }, () => {
  it('random writes, acknowledgements, restarts, crashes and segment rolls never lose a durable event nor hand one out twice in a run', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fluxo-disk-prop-'));
    let caseNo = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.record({
            maxSegmentSize: fc.integer({ min: 200, max: 2000 }),
            memoryBytes: fc.integer({ min: 0, max: 3000 }),
            concurrencyOfAcks: fc.boolean(),
            // With a delay, records reach the sink before they are written, and those it acknowledges in time never are.
            writeDelayMs: fc.constantFrom(0, 0, 1, 20),
          }),
          fc.array(opArb, { minLength: 5, maxLength: 100 }),
          async (config, ops) => {
            let dir = join(root, `case-${caseNo++}`);
            let nextEvent = 1;
            let generation = 0;
            /** Events whose push share settled `delivered` in a run that did not crash before it. */
            const durable = new Set<number>();
            /** Events the sink acknowledged (delivered) in a run that had not crashed by then. */
            const delivered = new Set<number>();
            const pending: Promise<void>[] = [];

            const start = async (): Promise<Run> => {
              const { buffer } = openBuffer(dir, {
                maxSegmentSize: config.maxSegmentSize,
                memoryBytes: config.memoryBytes,
                writeDelayMs: config.writeDelayMs,
              });
              await buffer.open();
              return {
                buffer,
                generation: ++generation,
                handedOut: new Set(),
                lastHandedOut: 0,
                available: buffer.events,
                outstanding: [],
              };
            };
            let run = await start();

            const take = async (r: Run, max: number) => {
              // With a write delay events are handed out before they are durable: take what is there, without waiting.
              const batches = config.writeDelayMs > 0 ? r.buffer.poll(max) : await r.buffer.take(max);
              assert.ok(batches, 'take() ended while events were available');
              for (const b of batches) {
                for (const e of b.events) {
                  const n = e.n as number;
                  assert.ok(!r.handedOut.has(n), `event ${n} handed out twice in one run`);
                  assert.ok(n > r.lastHandedOut, `event ${n} after ${r.lastHandedOut}: out of order`);
                  r.handedOut.add(n);
                  r.lastHandedOut = n;
                }
                r.available -= b.events.length;
                r.outstanding.push(b);
              }
            };

            for (const step of ops) {
              if (step.op === 'push') {
                const events: Event[] = [];
                for (let i = 0; i < step.events; i++) events.push({ n: nextEvent++ });
                const r = run;
                const ack = new Acknowledgement((status) => {
                  if (r.generation !== generation || status !== 'delivered') return;
                  for (const e of events) durable.add(e.n as number);
                  r.available += events.length;
                });
                const p = r.buffer.push({ events, ack, bytes: 0 });
                if (p) pending.push(p);
              } else if (step.op === 'take') {
                if (run.available > 0 || config.writeDelayMs > 0) await take(run, step.max);
              } else if (step.op === 'ack') {
                if (run.outstanding.length === 0) continue;
                const i = config.concurrencyOfAcks ? step.pick % run.outstanding.length : 0;
                const [b] = run.outstanding.splice(i, 1);
                for (const e of b!.events) delivered.add(e.n as number);
                b!.ack.release('delivered');
              } else if (step.op === 'turn') {
                await new Promise((resolve) => setImmediate(resolve));
                if (config.writeDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, 3));
              } else {
                const old = run;
                if (step.crash) {
                  const image = join(root, `case-${caseNo}-g${generation}`);
                  crashImage(dir, image);
                  generation++; // from here on the old run's callbacks are those of a dead process
                  dir = image;
                }
                old.buffer.abort();
                for (const b of old.outstanding.splice(0)) b.ack.release('failed');
                await old.buffer.closed;
                await Promise.allSettled(pending.splice(0));
                run = await start();
              }
            }
            // The end: a graceful stop that drains everything to the sink.
            await Promise.allSettled(pending.splice(0));
            for (const b of run.outstanding.splice(0)) {
              for (const e of b.events) delivered.add(e.n as number);
              b.ack.release('delivered');
            }
            run.buffer.close();
            for (let guard = 0; guard < 100_000; guard++) {
              const batches = await run.buffer.take(50);
              if (batches === null) break;
              for (const b of batches) {
                for (const e of b.events) {
                  const n = e.n as number;
                  assert.ok(!run.handedOut.has(n), `event ${n} handed out twice in the last run`);
                  run.handedOut.add(n);
                  delivered.add(n);
                }
                b.ack.release('delivered');
              }
            }
            await run.buffer.closed;
            const lost = [...durable].filter((n) => !delivered.has(n));
            assert.deepEqual(lost, [], 'durable events never delivered');
            assert.equal(run.buffer.events, 0);
          },
        ),
        { numRuns: 150 },
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
