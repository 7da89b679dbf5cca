// Builds src/ into dist/ (run by `npm install` through `prepare`, and by `npm test`). bin/fluxo.js runs dist/
// only while dist/.built is newer than every source file; the stamp carries the time the build started, so a
// file edited during the build still counts as newer.
//
// dist/ is a bundle (esbuild, ES modules, split at every dynamic import), not one compiled file per source:
// what costs an agent's start-up is not compiling but loading modules, about a thousand files of the packages
// the default config needs (zod, yaml, prom-client, commander, protobufjs, msgpackr…) and of Fluxo itself.
// In one bundle the start to listening takes ~30 % less CPU (docs/benchmarks.md, "Start-up, bundled"). The
// type check stays with tsc (`npm run typecheck`, run by `npm test`); esbuild only strips the types.
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url);
const started = new Date();
// From scratch: no output of a deleted source file, nothing left over from a hand-edited dist/.
rmSync(new URL('dist/', root), { recursive: true, force: true });

await build({
  absWorkingDir: new URL('.', root).pathname,
  // Flat in dist/cli/, chunks too: the code keeps the depth its `new URL('../../package.json', import.meta.url)`
  // and the seal thread's `./seal-worker.js` expect.
  entryPoints: { main: 'src/cli/main.ts', 'seal-worker': 'src/sinks/file/seal-worker.ts' },
  outdir: 'dist/cli',
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // A third less source for V8 to parse and to keep (each module's text stays in the heap): ~4 MiB of idle
  // RSS and ~20 ms of start-up CPU. Names are kept, so a stack trace still reads.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'linked',
  logLevel: 'warning',
  // Left in node_modules: native addons and WebAssembly (loaded from their own directories), tsx (the
  // source mode), and the client libraries of one destination, which a component loads on first use only
  // (src/core/lazy-import.ts). pino is bundled: Fluxo logs to fd 2 itself and uses none of its transports,
  // the one part of pino that finds files by path.
  external: [
    '@node-rs/crc32',
    'msgpackr-extract',
    '@bokuweb/zstd-wasm',
    'tsx',
    'undici',
    'redis',
    '@nats-io/*',
    '@platformatic/kafka',
    '@aws-sdk/*',
    'pg',
    'pg-copy-streams',
    'hyparquet',
    'hyparquet-writer',
  ],
  // CommonJS packages inside an ES module bundle call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __fluxoRequire } from 'node:module'; const require = __fluxoRequire(import.meta.url);",
  },
});

mkdirSync(new URL('dist/', root), { recursive: true });
const stamp = new URL('dist/.built', root);
writeFileSync(stamp, `built from src/ at ${started.toISOString()}\n`);
utimesSync(stamp, started, started);
