import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/context.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/fluxo.js');

function fluxo(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Example configs that carry unit tests: a top-level `tests:` key or a sibling `.tests.yaml` file. */
function examplesWithTests(): string[] {
  const dir = join(ROOT, 'examples');
  const names = readdirSync(dir);
  return names
    .filter((n) => /\.ya?ml$/.test(n) && !/\.tests\.ya?ml$/.test(n))
    .filter(
      (n) =>
        /^tests:/m.test(readFileSync(join(dir, n), 'utf8')) || names.includes(n.replace(/\.ya?ml$/, '.tests.yaml')),
    )
    .map((n) => join('examples', n));
}

const PIPELINE = `
api: { enabled: false }
sources:
  in: { type: stdin }
transforms:
  access: { type: parse, inputs: [in], format: apache_combined, drop_field: true }
  by: { type: route, inputs: [access], routes: { errors: 'status >= 500' } }
  strict: { type: parse, inputs: [in], format: json, on_error: dead_letter }
sinks:
  out: { type: blackhole, inputs: [by.errors, by._unmatched, strict] }
`;
const LINE = '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8"';

describe('fluxo test', () => {
  const examples = examplesWithTests();

  it('finds the example configs that carry tests', () => {
    assert.ok(examples.includes('examples/parse-access-logs.yaml'), examples.join(', '));
    assert.ok(examples.includes('examples/redact.yaml'), examples.join(', '));
  });

  for (const example of examples) {
    it(`${example}: every test passes (and fluxo validate accepts the tests: key)`, () => {
      const r = fluxo(['test', '-c', example]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /\d+ tests?: (\d+) passed, 0 failed/);
      assert.doesNotMatch(r.stdout, /✗/);
      assert.equal(fluxo(['validate', '-c', example]).code, 0);
    });
  }

  it('a failing test exits 1 with a readable diff of expected and actual values', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'c.yaml');
    writeFileSync(
      file,
      `${PIPELINE}
tests:
  - name: passes
    inputs: [{ insert_at: access, value: '${LINE}' }]
    outputs: [{ extract_from: by._unmatched, conditions: [{ equals: { status: 200 } }] }]
  - name: expects the wrong status and a missing field
    inputs: [{ insert_at: access, value: '${LINE}' }]
    outputs:
      - extract_from: by._unmatched
        conditions:
          - equals: { status: 201, method: GET }
          - exists: [referrer]
          - condition: 'status > 300'
  - name: expects output where there is none
    inputs: [{ insert_at: access, value: '${LINE}' }]
    outputs: [{ extract_from: by.errors, conditions: [{ exists: [status] }] }]
`,
    );
    const r = fluxo(['test', '-c', file]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const expected = [
      '  ✓ passes',
      '  ✗ expects the wrong status and a missing field',
      '      by._unmatched: condition 1 (equals) holds for none of 1 event(s)',
      '        status:',
      '          - expected: 201',
      '          + actual:   200',
      '      by._unmatched: condition 2 (exists) holds for none of 1 event(s)',
      '        referrer: missing',
      '      by._unmatched: condition 3 (condition) holds for none of 1 event(s)',
      '        status > 300: false',
      '        events:',
      '  ✗ expects output where there is none',
      '      by.errors: no events came out (events went to: access: 1, by._unmatched: 1)',
      '3 tests: 1 passed, 2 failed',
    ];
    const lines = r.stdout.split('\n');
    let at = 0;
    for (const line of expected) {
      const found = lines.indexOf(line, at);
      assert.ok(found >= 0, `missing, in order: ${JSON.stringify(line)}\n${r.stdout}`);
      at = found + 1;
    }
    assert.match(r.stdout, /^ {10}\{"client":"203\.0\.113\.9",/m, 'the events are shown');
  });

  it('reads tests from a sibling FILE.tests.yaml; no_output, count, no_outputs_from and dead_letter work', (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'pipeline.yaml'), PIPELINE);
    writeFileSync(
      join(dir, 'pipeline.tests.yaml'),
      `tests:
  - name: a 503 is an error, nothing unmatched
    inputs:
      - insert_at: access
        event: { message: '${LINE.replace(' 200 ', ' 503 ')}', host: web1 }
    outputs:
      - extract_from: by.errors
        count: 1
        conditions: [{ equals: { host: web1, status: 503 } }, { not_exists: [message] }]
      - extract_from: by._unmatched
        no_output: true
  - name: bad JSON goes to the dead letter output with its reason
    inputs:
      - insert_at: strict
        values: ['{"ok": true}', 'not json']
    outputs:
      - extract_from: strict
        count: 1
      - extract_from: dead_letter
        conditions:
          - equals: { message: not json, _dead_letter.component_id: strict }
          - condition: '_dead_letter.reason.startsWith("invalid JSON")'
    no_outputs_from: [by.errors]
`,
    );
    const r = fluxo(['test', '-c', join(dir, 'pipeline.yaml')]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /pipeline\.tests\.yaml: 2 tests/);
    assert.match(r.stdout, /2 tests: 2 passed, 0 failed/);
  });

  it('invalid tests and unknown ids are reported with where they are', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'c.yaml');
    writeFileSync(
      file,
      `${PIPELINE}\ntests:\n  - name: x\n    inputs: [{ insert_at: access }]\n    outputs: [{ extract_from: access, conditons: [] }]\n`,
    );
    const bad = fluxo(['test', '-c', file]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /tests\[0\]\.inputs\[0\]: an input needs exactly one of value, values, event, log_fields, events/,
    );
    assert.match(bad.stderr, /tests\[0\]\.outputs\[0\]: Unrecognized key: "conditons"/);

    writeFileSync(
      file,
      `${PIPELINE}\ntests:\n  - name: ids\n    inputs: [{ insert_at: acess, value: x }]\n    outputs: [{ extract_from: by.eror, count: 0 }]\n`,
    );
    const ids = fluxo(['test', '-c', file]);
    assert.equal(ids.code, 1);
    assert.match(ids.stdout, /insert_at acess: no transform has this id/);
    assert.match(
      ids.stdout,
      /extract_from by\.eror: no such transform output; its outputs: by, by\.errors, by\._unmatched/,
    );
  });

  it('a config without tests says so and exits 0; an invalid config exits 1', (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'none.yaml'), PIPELINE);
    const none = fluxo(['test', '-c', join(dir, 'none.yaml')]);
    assert.equal(none.code, 0);
    assert.match(none.stdout, /no tests in/);
    writeFileSync(join(dir, 'broken.yaml'), 'transforms:\n  p: { type: parse, inputs: [nowhere], format: jsn }\n');
    const broken = fluxo(['test', '-c', join(dir, 'broken.yaml')]);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /format: expected one of .*found "jsn"; did you mean "json"/);
  });
});
