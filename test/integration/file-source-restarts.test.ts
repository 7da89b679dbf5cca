import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { FluxoProcess, readNdjsonDir } from '../helpers/fluxo-process.ts';
import {
  checkNumbers,
  fileToFileConfig,
  readCheckpoints,
  spawnWriter,
  waitForCheckpointsAtEnd,
} from './fixtures/file-source-harness.ts';

type T = { after: (fn: () => unknown) => void };

function setup(t: T, files: number) {
  const dir = tempDir(t);
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const paths = Array.from({ length: files }, (_, i) => join(logs, `app-${i}.log`));
  for (const p of paths) writeFileSync(p, '');
  const config = join(dir, 'fluxo.yaml');
  writeFileSync(config, fileToFileConfig(dir, [`include: ["${join(logs, '*.log')}"]`, 'checkpoint_interval: 500ms']));
  const processes: FluxoProcess[] = [];
  t.after(async () => {
    for (const p of processes) await p.stop('SIGKILL');
  });
  const start = async () => {
    const fluxo = new FluxoProcess(['run', '-c', config]);
    processes.push(fluxo);
    await fluxo.waitFor(/source logs \(file\)/);
    return fluxo;
  };
  return { dir, logs, paths, start };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fluxo run: file source across restarts', () => {
  it('kill -9 every few seconds while tailing 10 files under load, 10 times: no line missing, a line read twice keeps its _id', async (t) => {
    const { dir, paths, logs, start } = setup(t, 10);
    const total = 120_000;
    const writer = spawnWriter({ mode: 'spread', dir: logs, files: 10, total, rate: 4000 });
    t.after(() => writer.child.kill('SIGKILL'));
    let checkpointed = 0;
    for (let kill = 0; kill < 10; kill++) {
      const fluxo = await start();
      // Run long enough to deliver and checkpoint something, at a different moment each time.
      await sleep(1200 + ((kill * 397) % 1300));
      fluxo.signal('SIGKILL');
      await fluxo.exit();
      const now = readCheckpoints(join(dir, 'data')).reduce((s, c) => s + c.offset, 0);
      assert.ok(now >= checkpointed, 'checkpoints never go back');
      checkpointed = now;
    }
    assert.ok(checkpointed > 0, 'some progress was checkpointed between the kills');
    const final = await start();
    const { written } = await writer.done;
    assert.equal(written, total);
    await waitForCheckpointsAtEnd(join(dir, 'data'), paths);
    assert.equal(await final.stop(), 0);

    const events = readNdjsonDir(join(dir, 'out'));
    const { missing, idMismatches, extra } = checkNumbers(events, total, true);
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} lines missing`);
    assert.deepEqual(idMismatches.slice(0, 10), [], `${idMismatches.length} duplicates with another _id`);
    assert.equal(extra, 0, 'torn or foreign lines');
    const duplicates = events.length - total;
    t.diagnostic(`${duplicates} lines read twice (unacknowledged tails), every one with its first _id`);
    assert.ok(duplicates >= 0);
    // Only unacknowledged tails are read again: far fewer than the lines read.
    assert.ok(duplicates < total / 2, `${duplicates} duplicates`);
  });

  it('restart after a clean stop while the writer runs: zero duplicates, nothing missing', async (t) => {
    const { dir, paths, logs, start } = setup(t, 3);
    const total = 30_000;
    const writer = spawnWriter({ mode: 'spread', dir: logs, files: 3, total, rate: 6000 });
    t.after(() => writer.child.kill('SIGKILL'));
    const first = await start();
    await first.waitForMetric('fluxo_component_sent_events_total', { component_id: 'out' }, (v) => v >= 5000);
    assert.equal(await first.stop('SIGTERM'), 0);
    await sleep(500); // the writer goes on while Fluxo is down
    const second = await start();
    await writer.done;
    await waitForCheckpointsAtEnd(join(dir, 'data'), paths);
    assert.equal(await second.stop('SIGTERM'), 0);
    const events = readNdjsonDir(join(dir, 'out'));
    const { missing, duplicated, extra } = checkNumbers(events, total);
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} missing`);
    assert.deepEqual(duplicated.slice(0, 20), [], `${duplicated.length} duplicated`);
    assert.equal(extra, 0);
    assert.equal(events.length, total);
  });
});
