import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { FluxoProcess, readNdjsonDir } from '../helpers/fluxo-process.ts';

const LINES = 200;

/** A file source on `dir/in/*.log` into `dir/<out>/`, with its checkpoints under the shared `dir/data`. */
function config(dir: string, out: string): string {
  return `
api: { address: 127.0.0.1:0 }
data_dir: ${dir}/data
shutdown_timeout: 5s
sources:
  logs: { type: file, include: ["${dir}/in/*.log"] }
sinks:
  out: { type: file, inputs: [logs], path: "${dir}/${out}/part.ndjson", batch: { timeout: 0 } }
`;
}

function start(t: { after: (fn: () => unknown) => void }, dir: string, out: string): FluxoProcess {
  const file = join(dir, `${out}.yaml`);
  writeFileSync(file, config(dir, out));
  const fluxo = new FluxoProcess(['run', '-c', file]);
  t.after(() => fluxo.stop('SIGKILL'));
  return fluxo;
}

/** The exit code, or a failure naming what the process printed if it is still running after `ms`. */
async function exitWithin(fluxo: FluxoProcess, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms:\n${fluxo.stderr}`)), ms);
  });
  try {
    return await Promise.race([fluxo.exit(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function writeLog(dir: string): void {
  mkdirSync(join(dir, 'in'));
  const lines = Array.from({ length: LINES }, (_, i) => `line ${i + 1}`);
  writeFileSync(join(dir, 'in', 'app.log'), `${lines.join('\n')}\n`);
}

describe('one fluxo process per data_dir (issue 13, item 7)', () => {
  it('a second `fluxo run` on a data_dir in use exits 1 naming the pid and the data_dir, and reads nothing', async (t) => {
    const dir = tempDir(t);
    writeLog(dir);
    const first = start(t, dir, 'out_first');
    await first.waitFor(/Send SIGTERM/);
    const lock = readFileSync(join(dir, 'data', 'fluxo.lock'), 'utf8');
    assert.equal(lock, `${first.child.pid}\n${hostname()}\n`);
    await first.waitForMetric('fluxo_component_sent_events_total', { component_id: 'out' }, (v) => v >= LINES);

    const second = start(t, dir, 'out_second');
    assert.equal(await exitWithin(second, 20_000), 1, second.stderr);
    assert.match(
      second.stderr,
      new RegExp(`data_dir ${join(dir, 'data')} is in use by Fluxo process ${first.child.pid} on `),
    );
    assert.match(second.stderr, /FLUXO_DATA_DIR_LOCKED/);
    assert.doesNotMatch(second.stderr, /Send SIGTERM/);
    assert.equal(existsSync(join(dir, 'out_second')), false, 'the second process wrote events');

    assert.equal(await first.stop(), 0, first.stderr);
    assert.equal(readNdjsonDir(join(dir, 'out_first')).length, LINES);
    assert.equal(existsSync(join(dir, 'data', 'fluxo.lock')), false, 'the lock outlives its process');
  });

  it('a lock left by a process that is gone (kill -9) is taken over', async (t) => {
    const dir = tempDir(t);
    writeLog(dir);
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'fluxo.lock'), `${gone}\n${hostname()}\n`);
    const fluxo = start(t, dir, 'out');
    await fluxo.waitFor(/Send SIGTERM/);
    assert.equal(readFileSync(join(dir, 'data', 'fluxo.lock'), 'utf8'), `${fluxo.child.pid}\n${hostname()}\n`);
    await fluxo.waitForMetric('fluxo_component_sent_events_total', { component_id: 'out' }, (v) => v >= LINES);
    assert.equal(await fluxo.stop(), 0, fluxo.stderr);
    assert.equal(readNdjsonDir(join(dir, 'out')).length, LINES);
    assert.equal(existsSync(join(dir, 'data', 'fluxo.lock')), false);
  });
});
