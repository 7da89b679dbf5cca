import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';
import { checkSequence, readNdjsonDir, runFluxo } from '../helpers/fluxo-process.ts';

describe('fluxo run with sources that end', () => {
  it('stdin → filter → console: prints the kept lines as JSON and exits 0 at EOF', async (t) => {
    const dir = tempDir(t);
    const fluxo = runFluxo(
      t,
      dir,
      `
api: { enabled: false }
data_dir: ${dir}/data
sources:
  in: { type: stdin }
transforms:
  errors: { type: filter, inputs: [in], condition: 'message.contains("ERROR")' }
sinks:
  out: { type: console, inputs: [errors], encoding: json }
`,
      { stdin: 'pipe' },
    );
    fluxo.child.stdin!.end('INFO one\nERROR two\nINFO three\nERROR four');
    assert.equal(await fluxo.exit(), 0, fluxo.stderr);
    const lines = fluxo.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => l.message),
      ['ERROR two', 'ERROR four'],
    );
    assert.equal(lines[0]!.source_type, 'stdin');
    assert.match(fluxo.stderr, /all sources finished/);
  });

  it('exits 3 when shutdown_timeout passes with events undelivered (issue 13, item 10)', async (t) => {
    const dir = tempDir(t);
    const fluxo = runFluxo(
      t,
      dir,
      `
api: { enabled: false }
data_dir: ${dir}/data
shutdown_timeout: 300ms
sources:
  gen: { type: generator, rate: 0, count: 10 }
sinks:
  nowhere: { type: http, inputs: [gen], uri: "http://127.0.0.1:1/", healthcheck: false }
`,
    );
    assert.equal(await fluxo.exit(), 3, fluxo.stderr);
    assert.match(fluxo.stderr, /all sources finished/);
    assert.match(fluxo.stderr, /undelivered events stay unacknowledged \(exit code 3\)/);
  });

  it('generator with count → file: every sequence number once, exits 0 by itself', async (t) => {
    const dir = tempDir(t);
    const fluxo = runFluxo(
      t,
      dir,
      `
api: { enabled: false }
data_dir: ${dir}/data
sources:
  gen: { type: generator, format: apache_combined, rate: 0, count: 50000, batch_size: 500 }
sinks:
  out: { type: file, inputs: [gen], path: "${dir}/out/%Y/part.ndjson.gz" }
`,
    );
    assert.equal(await fluxo.exit(), 0, fluxo.stderr);
    const events = readNdjsonDir(join(dir, 'out'));
    const { missing, duplicated } = checkSequence(
      events.map((e) => e.sequence as number),
      50_000,
    );
    assert.deepEqual(missing, []);
    assert.deepEqual(duplicated, []);
    assert.match(String(events[0]!.message), /^\S+ - \S+ \[[^\]]+\] "[A-Z]+ \S+ HTTP\/[0-9.]+" \d{3} /);
  });
});
