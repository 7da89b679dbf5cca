#!/usr/bin/env node
// The long fuzz run: the fuzz test files (test/unit/fuzz-*.test.ts) with FLUXO_FUZZ_RUNS runs per property
// instead of the bounded count `npm test` uses. One JSON line per file, then the exit code of the worst.
// Usage: node scripts/fuzz.js [--runs N] [--seed S] [file ...]   (default: 200000 runs, every fuzz file)
// A failure prints fast-check's seed and counterexample; `--seed S` with the same file replays it.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
let runs = process.env.FLUXO_FUZZ_RUNS ?? '200000';
let seed = process.env.FLUXO_FUZZ_SEED;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--runs') runs = args[++i];
  else if (args[i] === '--seed') seed = args[++i];
  else files.push(args[i]);
}
if (!(Number(runs) > 0)) {
  console.error(`--runs must be a positive number, not ${runs}`);
  process.exit(2);
}
if (files.length === 0) {
  const dir = 'test/unit';
  for (const name of readdirSync(dir).sort()) if (/^fuzz-.*\.test\.ts$/.test(name)) files.push(join(dir, name));
  // RELP's fuzzer lives beside its codec tests.
  files.push(join(dir, 'relp-codec.test.ts'));
}

/** Runs one file in its own process (one at a time: the machine's cores go to that file's properties). */
function run(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const env = { ...process.env, FLUXO_FUZZ_RUNS: String(runs) };
    if (seed !== undefined) env.FLUXO_FUZZ_SEED = String(seed);
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.on('exit', (code, signal) => {
      const ok = code === 0 && signal === null;
      if (!ok) process.stderr.write(output);
      resolve({ fuzz: file, runs: Number(runs), ok, ms: Date.now() - started });
    });
  });
}

let failed = false;
for (const file of files) {
  const result = await run(file);
  console.log(JSON.stringify(result));
  failed ||= !result.ok;
}
process.exit(failed ? 1 : 0);
