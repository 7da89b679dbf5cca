import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { FluxoProcess, runFluxo } from '../helpers/fluxo-process.ts';

const BIN = new URL('../../bin/fluxo.js', import.meta.url).pathname;

/** How long `fluxo run` may take to print its banner: from src/ through tsx on a busy 2-core machine, long. */
const STARTUP_MS = 120_000;

function config(dir: string): string {
  return `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  web: { type: generator, rate: 300, batch_size: 10 }
transforms:
  gets: { type: filter, inputs: [web], condition: 'message.contains("GET")' }
sinks:
  sink_all: { type: blackhole, inputs: [web] }
  sink_gets: { type: blackhole, inputs: [gets] }
`;
}

async function eventually(probe: () => string, ok: (screen: string) => boolean, what: string, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const screen = probe();
    if (ok(screen)) return screen;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; screen:\n${screen}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('fluxo top', () => {
  it('under tmux: shows the components and their rates, sorts by key, and q quits with 0', async (t) => {
    const tmux = requireProgram(t, 'tmux', 'tmux');
    if (!tmux) return;
    const dir = tempDir(t);
    const fluxo = runFluxo(t, dir, config(dir));
    const api = (await fluxo.waitFor(/api (http:\/\/\S+)/, STARTUP_MS))[1]!;
    const socket = join(dir, 'tmux.sock');
    const exitFile = join(dir, 'top.exit');
    const run = (...args: string[]) => execFileSync(tmux, ['-S', socket, ...args], { encoding: 'utf8' });
    t.after(() => spawnSync(tmux, ['-S', socket, 'kill-server']));
    const command = `'${process.execPath}' '${BIN}' top --api ${api}; echo $? > '${exitFile}'`;
    run('new-session', '-d', '-s', 'top', '-x', '180', '-y', '40', command);
    const screen = () => run('capture-pane', '-p', '-t', 'top');

    const shown = await eventually(
      screen,
      (s) => /^web\s+source\s+generator\s+\d/m.test(s) && /^sink_gets\s+sink\s+blackhole\s+[1-9]/m.test(s),
      'components with rates',
      90_000,
    );
    for (const id of ['web', 'gets', 'sink_all', 'sink_gets', 'dead_letter'])
      assert.match(shown, new RegExp(`^${id}\\s`, 'm'));
    assert.match(shown, /COMPONENT\s+KIND\s+TYPE\s+IN\/S\s+OUT\/S/);
    assert.match(shown, /^\s+web\s+accepted\s+\S+\s+acknowledged/m, 'the loss ledger');

    run('send-keys', '-t', 'top', 'n');
    const byName = await eventually(screen, (s) => s.includes('sort: name'), 'sorted by name');
    const order = ['dead_letter', 'gets', 'sink_all', 'sink_gets', 'web'].map((id) =>
      byName.search(new RegExp(`^${id}\\s`, 'm')),
    );
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      'rows in name order',
    );

    run('send-keys', '-t', 'top', 'q');
    await eventually(
      () => (existsSync(exitFile) ? readFileSync(exitFile, 'utf8') : ''),
      (s) => s !== '',
      'top to exit',
    );
    assert.equal(readFileSync(exitFile, 'utf8').trim(), '0');
  });

  it('--once prints one plain snapshot; a wrong token is refused with exit 1', async (t) => {
    const dir = tempDir(t);
    const yaml = config(dir).replace(
      '{ address: 127.0.0.1:0 }',
      '{ address: 127.0.0.1:0, auth: { strategy: bearer, token: t0p } }',
    );
    const fluxo = runFluxo(t, dir, yaml);
    const api = (await fluxo.waitFor(/api (http:\/\/\S+)/, STARTUP_MS))[1]!;
    const once = new FluxoProcess(['top', '--api', api, '--once', '--token', 't0p']);
    assert.equal(await once.exit(), 0, once.stderr);
    assert.match(once.stdout, /^sink_all\s+sink\s+blackhole/m);
    assert.ok(!once.stdout.includes('\u001b['), 'no escape codes without a terminal');
    const refused = new FluxoProcess(['top', '--api', api, '--once', '--token', 'wrong']);
    assert.equal(await refused.exit(), 1);
    assert.match(refused.stderr, /401 .*--token/);
  });
});
