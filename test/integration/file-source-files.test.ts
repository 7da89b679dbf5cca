import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { type FluxoProcess, readNdjsonDir, runFluxo } from '../helpers/fluxo-process.ts';
import { openFilesIn } from '../helpers/proc.ts';
import { checkNumbers, fileToFileConfig } from './fixtures/file-source-harness.ts';

type T = { after: (fn: () => unknown) => void };

async function startFluxo(t: T, dir: string, source: string[], sinkExtra = ''): Promise<FluxoProcess> {
  const fluxo = runFluxo(t, dir, fileToFileConfig(dir, source, sinkExtra));
  await fluxo.waitFor(/source logs \(file\)/);
  return fluxo;
}

function lines(from: number, to: number): string {
  let s = '';
  for (let n = from; n <= to; n++) s += `line ${n} of the log with some padding to look like a real line\n`;
  return s;
}

function peakRssMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

describe('fluxo run: file source with files that come and go', () => {
  it('a file deleted while being read is finished through its handle, then released; a new file is picked up', async (t) => {
    const dir = tempDir(t);
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    const doomed = join(logs, 'doomed.log');
    writeFileSync(doomed, lines(1, 100_000));
    // A small buffer and small synced writes: the sink is the bottleneck, so most of the file is still unread
    // when it is deleted.
    const fluxo = await startFluxo(
      t,
      dir,
      [`include: ["${join(logs, '*.log')}"]`, 'rotate_wait: 200ms', 'max_read_bytes: 16KiB'],
      '    batch: { max_events: 200 }\n    buffer: { type: memory, max_events: 1000 }\n',
    );
    await fluxo.waitForMetric('fluxo_component_sent_events_total', { component_id: 'out' }, (v) => v >= 2000);
    unlinkSync(doomed);
    const deliveredAtDelete = await fluxo.metric('fluxo_component_sent_events_total', { component_id: 'out' });
    writeFileSync(join(logs, 'new.log'), lines(100_001, 100_500));
    await fluxo.waitForMetric('fluxo_component_sent_events_total', { component_id: 'out' }, (v) => v >= 100_500);
    await fluxo.waitForMetric('fluxo_file_source_files_released_total', {}, (v) => v >= 1);
    assert.equal(await fluxo.metric('fluxo_file_source_deletions_total'), 1);
    const pid = fluxo.child.pid!;
    assert.deepEqual(
      openFilesIn(logs, pid).filter((p) => p.includes('doomed')),
      [],
      'the deleted file is no longer held open',
    );
    assert.equal(await fluxo.stop(), 0);
    t.diagnostic(`${deliveredAtDelete} of 100,000 lines delivered when the file was deleted`);
    assert.ok(deliveredAtDelete < 50_000, `only ${deliveredAtDelete} of 100,000 lines were delivered at the deletion`);
    const { missing, duplicated, extra } = checkNumbers(readNdjsonDir(join(dir, 'out')), 100_500);
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} missing`);
    assert.deepEqual(duplicated.slice(0, 20), [], `${duplicated.length} duplicated`);
    assert.equal(extra, 0);
  });

  it('1,000 small files: every line once, at most max_open_files open, memory bounded', async (t) => {
    const dir = tempDir(t);
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    const files = 1000;
    const perFile = 20;
    const fluxo = await startFluxo(t, dir, [`include: ["${join(logs, '*.log')}"]`, 'max_open_files: 100']);
    // The files appear while Fluxo runs, then each gets more lines.
    for (let f = 0; f < files; f++) {
      writeFileSync(
        join(logs, `f${String(f).padStart(4, '0')}.log`),
        lines(f * perFile + 1, f * perFile + perFile / 2),
      );
    }
    const pid = fluxo.child.pid!;
    let maxOpen = 0;
    const sampler = setInterval(() => {
      maxOpen = Math.max(maxOpen, openFilesIn(logs, pid).length);
    }, 20);
    t.after(() => clearInterval(sampler));
    await fluxo.waitForMetric('fluxo_file_source_tracked_files', {}, (v) => v === files);
    for (let f = 0; f < files; f++) {
      const path = join(logs, `f${String(f).padStart(4, '0')}.log`);
      writeFileSync(path, lines(f * perFile + perFile / 2 + 1, f * perFile + perFile), { flag: 'a' });
    }
    await fluxo.waitForMetric(
      'fluxo_component_sent_events_total',
      { component_id: 'out' },
      (v) => v >= files * perFile,
    );
    clearInterval(sampler);
    const gaugeOpen = await fluxo.metric('fluxo_file_source_open_files');
    const rss = peakRssMiB(pid);
    assert.equal(await fluxo.stop(), 0);
    const { missing, duplicated, extra } = checkNumbers(readNdjsonDir(join(dir, 'out')), files * perFile);
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} missing`);
    assert.deepEqual(duplicated.slice(0, 20), [], `${duplicated.length} duplicated`);
    assert.equal(extra, 0);
    t.diagnostic(`at most ${maxOpen} files open at once, peak RSS ${rss.toFixed(0)} MiB`);
    assert.ok(maxOpen <= 100, `${maxOpen} files open at once`);
    assert.ok(gaugeOpen <= 100);
    assert.ok(rss < 400, `peak RSS ${rss} MiB`);
  });
});
