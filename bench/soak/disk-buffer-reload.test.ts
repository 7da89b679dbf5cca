import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Event } from '../../src/core/event.ts';
import { tempDir } from '../../test/helpers/context.ts';
import { testPipeline, until } from '../../test/helpers/pipeline.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Events with a deterministic `_id`, as a file or forward source gives them. */
function events(from: number, count: number): Event[] {
  return Array.from({ length: count }, (_, i) => ({ _id: `e-${from + i}`, message: `line ${from + i}`, n: from + i }));
}

/** Counts what the sink delivered more than once, by `_id`, and what it never delivered. */
function tally(written: Event[], total: number): { duplicates: number; missing: number } {
  const seen = new Map<string, number>();
  for (const e of written) seen.set(e._id as string, (seen.get(e._id as string) ?? 0) + 1);
  let duplicates = 0;
  for (const n of seen.values()) duplicates += n - 1;
  let missing = 0;
  for (let i = 1; i <= total; i++) if (!seen.has(`e-${i}`)) missing++;
  return { duplicates, missing };
}

describe('disk buffer reload', { timeout: 60_000 }, () => {
  for (const writeDelay of ['0ms', '100ms', '1s']) {
    it(`a reload of a busy disk-buffered sink neither loses nor duplicates (write_delay ${writeDelay})`, async (t) => {
      const dir = tempDir(t);
      const yaml = (batch: number) => `
shutdown_timeout: 5s
sources: { in: { type: manual } }
sinks:
  out:
    type: controlled
    inputs: [in]
    retry: { initial_backoff: 1ms, max_backoff: 5ms }
    buffer: { type: disk, write_delay: ${writeDelay}, commit_interval: 2ms }
    batch: { max_events: ${batch}, timeout: 1ms }
    concurrency: 2
`;
      const p = testPipeline(yaml(50), dir);
      t.after(() => p.topology.stop(100));
      await p.topology.start();
      const sink = p.sink('out');
      // A destination with some latency, so that writes are in flight when the reload comes.
      const write = sink.write.bind(sink);
      sink.write = async (batch, signal) => {
        if (Math.random() < 0.5) await sleep(Math.floor(Math.random() * 3));
        else await new Promise((r) => setImmediate(r));
        return write(batch, signal);
      };
      const total = 12_000;
      const size = 20;
      const emitting = (async () => {
        for (let i = 0; i < total / size; i++) {
          // A push waiting on the old buffer when it closes is refused, unacknowledged: the source sends it again.
          for (;;) {
            try {
              await p.source('in').emit(events(i * size + 1, size));
              break;
            } catch (error) {
              if ((error as { code?: string }).code !== 'FLUXO_BUFFER_CLOSED') throw error;
              await sleep(1);
            }
          }
          if (i % 5 === 0) await sleep(1);
        }
      })();
      for (let r = 0; r < 12; r++) {
        await sleep(20 + Math.floor(Math.random() * 20));
        await p.topology.reload(p.load(yaml(r % 2 === 0 ? 40 : 50)));
      }
      await emitting;
      await until(() => tally(sink.written, total).missing === 0, 'everything delivered', 20_000);
      await sleep(300);
      assert.deepEqual(tally(sink.written, total), { duplicates: 0, missing: 0 });
      assert.equal(await p.topology.stop(5000), true);
    });
  }
});
