import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectBuffers } from '../../src/buffers/disk/inspect.ts';
import { tempDir } from '../helpers/context.ts';
import { FluxoProcess, readNdjsonDir } from '../helpers/fluxo-process.ts';

const KILLS = 20;
const FINAL_COUNT = 2000;

/**
 * Run `run` of the loop: a generator of numbered events tagged with the run → a disk-buffered file sink, with
 * `buffer` added to the buffer's options.
 */
function config(dir: string, buffer: string, run: number, count = 0): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 30s
sources:
  gen: { type: generator, format: lines, lines: ["run-${run}"], rate: 20000, batch_size: 100, count: ${count} }
sinks:
  out:
    type: file
    inputs: [gen]
    path: "${dir}/out/part.ndjson"
    batch: { max_events: 300 }
    buffer: { type: disk, max_size: 1MiB, max_segment_size: 128KiB${buffer} }
`;
}

/** A seeded PRNG, so a failing sequence of kill moments can be told apart from another in the log. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * With write_delay: 0 every record is written before the sink gets it, so the kills land on the log itself.
 * With the default delay the file sink delivers most records from memory before they are due to be written:
 * what a source may count as safe is then what was written or delivered.
 */
const MODES = [
  { name: 'write_delay: 0 (every record written)', buffer: ', write_delay: 0', mustReplay: true },
  { name: 'the default write_delay', buffer: '', mustReplay: false },
];

describe('disk buffer crash loop', { timeout: 360_000 }, () => {
  for (const mode of MODES)
    it(`${mode.name}: kill -9 at random moments ${KILLS} times: every event the buffer acknowledged reaches the output`, async (t) => {
      const dir = tempDir(t);
      const file = join(dir, 'fluxo.yaml');
      const seed = Number(process.env.FLUXO_CRASH_SEED ?? Date.now() % 1_000_000);
      const random = prng(seed);
      t.diagnostic(`seed ${seed} (FLUXO_CRASH_SEED=${seed} repeats the kill moments)`);
      /**
       * Per killed run: how many of its events were safe before the kill: written and fsynced, or delivered by the
       * sink before they were due to be written. Either way the source was acknowledged; together they are the
       * first events of the run.
       */
      const durable: number[] = [0];
      let replayed = 0;
      for (let run = 1; run <= KILLS; run++) {
        writeFileSync(file, config(dir, mode.buffer, run));
        const fluxo = new FluxoProcess(['run', '-c', file]);
        t.after(() => fluxo.stop('SIGKILL'));
        await fluxo.apiUrl();
        replayed += await fluxo.metric('fluxo_disk_buffer_replayed_events_total', { component_id: 'out' });
        await new Promise((r) => setTimeout(r, Math.floor(random() * 600)));
        durable[run] =
          (await fluxo.metric('fluxo_disk_buffer_written_events_total', { component_id: 'out' })) +
          (await fluxo.metric('fluxo_disk_buffer_unwritten_events_total', { component_id: 'out' }));
        assert.equal(await fluxo.stop('SIGKILL'), null, `run ${run} killed`);
      }

      writeFileSync(file, config(dir, mode.buffer, KILLS + 1, FINAL_COUNT));
      const last = new FluxoProcess(['run', '-c', file]);
      t.after(() => last.stop('SIGKILL'));
      await last.apiUrl();
      replayed += await last.metric('fluxo_disk_buffer_replayed_events_total', { component_id: 'out' });
      assert.equal(await last.exit(), 0, last.stderr);
      assert.deepEqual(
        (await inspectBuffers(join(dir, 'data'))).map((r) => [r.sink, r.events]),
        [['out', 0]],
        'the buffer is empty after the last run drained it',
      );

      const seen = new Map<number, number[]>();
      for (const e of readNdjsonDir(join(dir, 'out'))) {
        const run = Number(String(e.message).slice(4));
        let counts = seen.get(run);
        if (!counts) {
          counts = [];
          seen.set(run, counts);
        }
        const n = e.sequence as number;
        counts[n] = (counts[n] ?? 0) + 1;
      }
      let duplicates = 0;
      let delivered = 0;
      for (let run = 1; run <= KILLS + 1; run++) {
        const counts = seen.get(run) ?? [];
        // A run killed before anything was durable may have no event in the output at all: highest 0, not -1.
        const highest = Math.max(0, counts.length - 1);
        const expected = run <= KILLS ? durable[run]! : FINAL_COUNT;
        assert.ok(highest >= expected, `run ${run}: ${expected} events were durable, the output has up to ${highest}`);
        for (let n = 1; n <= highest; n++) {
          // A crash loses only what was not yet written, the end of a run: a gap would be a lost event.
          assert.ok(counts[n], `run ${run}: event ${n} missing, ${highest} present`);
          duplicates += counts[n]! - 1;
          delivered++;
        }
        if (run > KILLS) assert.equal(highest, FINAL_COUNT);
      }
      t.diagnostic(
        `${KILLS} kills: ${delivered} distinct events delivered, ${durable.reduce((a, b) => a + b, 0)} known durable ` +
          `before their kill, ${replayed} replayed at restarts, ${duplicates} duplicates (at-least-once)`,
      );
      if (mode.mustReplay) assert.ok(replayed > 0, 'some restart replayed unacknowledged events');
    });
});
