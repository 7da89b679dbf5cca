#!/usr/bin/env node
// Runs the suite with Node's test runner. Node 20 has no glob support in --test, so the files are listed here.
// Usage: node scripts/run-tests.js [dir|file ...]   (default: test/unit test/integration test/e2e)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) collect(join(path, name), out);
  } else if (path.endsWith('.test.ts')) {
    out.push(path);
  }
  return out;
}

const roots = process.argv.slice(2);
const files = [];
for (const root of roots.length > 0 ? roots : ['test/unit', 'test/integration', 'test/e2e']) collect(root, files);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.FLUXO_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
