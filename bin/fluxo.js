#!/usr/bin/env node
// Runs the compiled tree in dist/ (built by `npm install` / `npm run build`) when it is newer than every
// source file; otherwise the TypeScript sources through tsx's loader, so an edited tree never runs stale
// output. The compiled tree starts faster and takes ~30 MiB less memory: tsx compiles in a loader thread.
// FLUXO_FROM_SOURCE=1 forces the sources.
import { readdirSync, statSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

// Start-up allocates ~15 MiB (modules, option schemas) that outlive it; on that survival V8 doubles the young
// generation up to its 16 MiB semi-spaces, whose pages then stay resident while the process idles: ~13 MiB of
// an idle agent's RSS (docs/benchmarks.md, "Footprint, second pass"). So the young generation does not grow
// during start-up; the growth factor is V8's default again after it, for bursts (whose throughput a small
// young generation would slow). FLUXO_KEEP_YOUNG_GENERATION=1 keeps V8's behaviour throughout.
if (process.env.FLUXO_KEEP_YOUNG_GENERATION !== '1') {
  setFlagsFromString('--semi-space-growth-factor=1');
  setTimeout(() => setFlagsFromString('--semi-space-growth-factor=2'), 3000).unref();
}

const root = new URL('../', import.meta.url);

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    const mtime = entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs;
    if (mtime > newest) newest = mtime;
  }
  return newest;
}

function compiledIsFresh() {
  if (process.env.FLUXO_FROM_SOURCE === '1') return false;
  try {
    return statSync(new URL('dist/.built', root)).mtimeMs >= newestSource(new URL('src/', root));
  } catch {
    return false;
  }
}

if (compiledIsFresh()) {
  // Node >= 22.1 keeps V8's compiled code of the bundle on disk, keyed by the file's content and the Node
  // version, so every start after the first skips compiling it (docs/benchmarks.md, "Node's compile cache").
  // The cache lives beside the bundle, in dist/ (emptied by every build), not in a shared temporary directory:
  // whoever can write there can already change the bundle, while a cache another user planted in /tmp would
  // run as Fluxo. FLUXO_COMPILE_CACHE=<dir> puts it elsewhere (an install the service user cannot write);
  // NODE_DISABLE_COMPILE_CACHE=1 turns it off. A directory that cannot be written only leaves the cache off
  // (the call reports it, never throws). Node 20 has no such cache.
  module.enableCompileCache?.(process.env.FLUXO_COMPILE_CACHE || fileURLToPath(new URL('dist/.compile-cache/', root)));
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
