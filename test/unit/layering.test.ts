import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, it } from 'node:test';

/**
 * Imports point one way (DESIGN.md, docs/architecture.md): cli → config → core ← components; codecs and core never
 * import a component; components never import each other. This reads the import graph from the sources and
 * fails on an arrow against it, naming the file, what it imports and the rule.
 */

const ROOT = new URL('../../', import.meta.url);

/** File (path from the repository root, `src/...`) → what it imports: resolved `src/...` paths or package names. */
type ImportGraph = ReadonlyMap<string, readonly string[]>;

// `import … from '…'`, `export … from '…'` (also over several lines), `import '…'` and `import('…')`. A statement
// starts a line, so an example in a doc comment (` * import …`) is not taken for one.
const IMPORT =
  /^[ \t]*(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]|^[ \t]*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function importSpecifiers(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

/** `specifier` as imported by `file`: a path from the root for a relative import, else the package name as written. */
function resolveImport(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
}

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(new URL(`${dir}/`, ROOT), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) files.push(path);
  }
  return files.sort();
}

function readImportGraph(dir = 'src'): ImportGraph {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(dir)) {
    const text = readFileSync(new URL(file, ROOT), 'utf8');
    graph.set(
      file,
      importSpecifiers(text).map((s) => resolveImport(file, s)),
    );
  }
  return graph;
}

/** The part of the tree a path belongs to: `core`, `codecs`, `sources`, …, `registry`, or undefined outside src/. */
function layerOf(path: string): string | undefined {
  if (path === 'src/registry.ts') return 'registry';
  const m = /^src\/([^/]+)\//.exec(path);
  return m?.[1];
}

const COMPONENT_KINDS = ['sources', 'transforms', 'sinks'];

/** `sources/file` for src/sources/file.ts and everything under src/sources/file/: one component. */
function componentOf(path: string): string | undefined {
  const m = /^src\/(sources|transforms|sinks)\/([^/]+?)(?:\.ts)?(?:\/|$)/.exec(path);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

interface Rule {
  readonly from: readonly string[];
  readonly forbidden: readonly string[];
  readonly why: string;
}

const RULES: readonly Rule[] = [
  {
    from: ['core'],
    forbidden: ['buffers', ...COMPONENT_KINDS, 'cli', 'config', 'api', 'registry'],
    why: 'core is what every other part builds on; it imports none of them',
  },
  {
    from: ['codecs'],
    forbidden: [...COMPONENT_KINDS, 'buffers', 'cli', 'config'],
    why: 'codecs are formats shared by components; they import no component, buffer, CLI or config code',
  },
  {
    from: COMPONENT_KINDS,
    forbidden: ['buffers', 'cli'],
    why: 'a component reaches buffers and the CLI only through the core types the topology hands it',
  },
  {
    from: ['config'],
    forbidden: [...COMPONENT_KINDS, 'buffers', 'cli', 'registry'],
    why: 'config never imports a component: the CLI passes the registry in',
  },
  {
    from: ['buffers'],
    forbidden: [...COMPONENT_KINDS, 'cli'],
    why: 'buffers sit under sinks and use only core types',
  },
];

/** Every arrow of `graph` against the rules, as `file → import: why`. */
function layeringViolations(graph: ImportGraph): string[] {
  const found: string[] = [];
  for (const [file, imports] of graph) {
    const from = layerOf(file);
    for (const target of imports) {
      const to = layerOf(target);
      if (from === undefined || to === undefined) continue;
      for (const rule of RULES) {
        if (rule.from.includes(from) && rule.forbidden.includes(to)) found.push(`${file} → ${target}: ${rule.why}`);
      }
      const a = componentOf(file);
      const b = componentOf(target);
      if (a !== undefined && b !== undefined && a !== b) {
        found.push(`${file} → ${target}: components never import each other (shared code goes to codecs/ or core/)`);
      }
    }
  }
  return found;
}

/**
 * Client libraries of one destination or origin: a component loads them with lazyImport() (src/core/lazy-import.ts)
 * from its start() or connect(), so the registry, which imports every component's file, does not load them all.
 */
const CLIENT_LIBRARIES = [
  'undici',
  'redis',
  /^@nats-io\//,
  '@platformatic/kafka',
  /^@aws-sdk\//,
  'pg',
  'pg-copy-streams',
  '@clickhouse/client',
  'hyparquet-writer',
  '@bokuweb/zstd-wasm',
  '@duckdb/node-api',
];

// A static value import: `import x from`, `import { a, type B } from`; not `import type { … } from`.
const STATIC_IMPORT = /^[ \t]*import\s+(?!type\b)([^;'"`]*?)\bfrom\s*['"]([^'"]+)['"]/gm;

/**
 * Modules that cost every start when imported for their values, wherever the importing file is: node:http's ES
 * facade loads Node's bundled undici, node:tls (and node:https over it) loads for configs without TLS,
 * prom-client's index loads its Pushgateway (node:https), @node-rs/crc32 is a native addon that only a disk
 * buffer needs, and msgpackr loads one (msgpackr-extract) that only the forward protocol needs.
 * src/core/net/builtins.ts, src/core/prom.ts, src/buffers/disk/crc32c.ts and src/codecs/forward.ts load them.
 */
const COSTLY_AT_START = ['node:http', 'node:https', 'node:tls', 'prom-client', '@node-rs/crc32', 'msgpackr'];

/** The modules of `libraries` that `text` imports statically for their values (an all-`type` brace list does not count). */
function eagerImports(text: string, libraries: readonly (string | RegExp)[] = CLIENT_LIBRARIES): string[] {
  const found: string[] = [];
  for (const [, what, specifier] of text.matchAll(STATIC_IMPORT)) {
    const names = /^\{([^}]*)\}\s*$/.exec(what!.trim())?.[1];
    const onlyTypes =
      names !== undefined &&
      names
        .split(',')
        .map((n) => n.trim())
        .filter((n) => n !== '')
        .every((n) => n.startsWith('type '));
    if (onlyTypes) continue;
    if (libraries.some((lib) => (typeof lib === 'string' ? lib === specifier : lib.test(specifier!)))) {
      found.push(specifier!);
    }
  }
  return found;
}

describe('client libraries load lazily', () => {
  it('tells a value import from a type import and a dynamic import', () => {
    const text = [
      "import { Agent, request } from 'undici';",
      "import type { RedisClientType } from 'redis';",
      "import { type JetStreamClient, type MsgHdrs } from '@nats-io/jetstream';",
      "import { type S3Client, PutObjectCommand } from '@aws-sdk/client-s3';",
      "import pg from 'pg';",
      "import { z } from 'zod';",
      "const kafka = lazyImport(() => import('@platformatic/kafka'));",
    ].join('\n');
    assert.deepEqual(eagerImports(text), ['undici', '@aws-sdk/client-s3', 'pg']);
  });

  it('no component imports a client library at the top of its file', () => {
    const found: string[] = [];
    for (const dir of COMPONENT_KINDS.map((k) => `src/${k}`)) {
      for (const file of sourceFiles(dir)) {
        for (const lib of eagerImports(readFileSync(new URL(file, ROOT), 'utf8'))) found.push(`${file} → ${lib}`);
      }
    }
    assert.deepEqual(found, [], 'load these with lazyImport() from start() or connect()');
  });

  it('no file imports node:http, node:https, node:tls, prom-client, @node-rs/crc32 or msgpackr for values', () => {
    assert.deepEqual(
      eagerImports(
        "import { createServer } from 'node:http';\nimport type { Registry } from 'prom-client';",
        COSTLY_AT_START,
      ),
      ['node:http'],
    );
    const found: string[] = [];
    // A declaration file (.d.ts) loads nothing at run time.
    for (const file of sourceFiles('src').filter((f) => !f.endsWith('.d.ts'))) {
      for (const lib of eagerImports(readFileSync(new URL(file, ROOT), 'utf8'), COSTLY_AT_START)) {
        found.push(`${file} → ${lib}`);
      }
    }
    assert.deepEqual(found, [], 'load them as core/net/builtins.ts, core/prom.ts and buffers/disk/crc32c.ts do');
  });

  it('protobufjs loads with the first OTLP protobuf request: only otlp-protobuf.ts imports it, and only with import()', () => {
    const importers: string[] = [];
    for (const file of sourceFiles('src')) {
      const text = readFileSync(new URL(file, ROOT), 'utf8');
      const statics = [...text.matchAll(STATIC_IMPORT)].map((m) => m[2]!);
      for (const m of text.matchAll(/^[ \t]*import\s*['"]([^'"]+)['"]/gm)) statics.push(m[1]!);
      for (const specifier of statics) {
        if (specifier === 'protobufjs' || resolveImport(file, specifier) === 'src/codecs/otlp-protobuf.ts') {
          importers.push(`${file} → ${specifier}`);
        }
      }
    }
    assert.deepEqual(importers, ['src/codecs/otlp-protobuf.ts → protobufjs']);
  });
});

describe('layering', () => {
  it('reads import and export statements, over several lines too, and resolves relative paths', () => {
    const text = [
      "import assert from 'node:assert/strict';",
      'import {',
      '  type Batch,',
      '  Acknowledgement,',
      "} from '../ack.ts';",
      "import type { Event } from './event.ts';",
      "export { Topology } from './topology/topology.ts';",
      "export * from '../../sinks/file.js';",
      "import './side-effect.ts';",
      "const lazy = () => import('../../registry.ts');",
      ' * import { example } from "../cli/in-a-comment.ts";',
      "const text = 'import x from nowhere';",
    ].join('\n');
    const file = 'src/core/net/x.ts';
    assert.deepEqual(
      importSpecifiers(text).map((s) => resolveImport(file, s)),
      [
        'node:assert/strict',
        'src/core/ack.ts',
        'src/core/net/event.ts',
        'src/core/net/topology/topology.ts',
        'src/sinks/file.ts',
        'src/core/net/side-effect.ts',
        'src/registry.ts',
      ],
    );
  });

  it('reports an arrow against the layering in a small graph, and only those', () => {
    const graph: ImportGraph = new Map([
      ['src/core/topology/build.ts', ['src/core/sink/runner.ts', 'src/sinks/file.ts', 'pino']],
      ['src/codecs/ndjson.ts', ['src/core/event.ts', 'src/config/load.ts']],
      ['src/sinks/http.ts', ['src/core/component.ts', 'src/codecs/tls.ts', 'src/sources/http/body.ts']],
      ['src/sources/syslog/tcp.ts', ['src/sources/syslog.ts', 'src/sources/socket.ts', 'src/buffers/memory.ts']],
      ['src/buffers/disk.ts', ['src/core/sink/buffer.ts', 'src/cli/run.ts']],
      ['src/config/load.ts', ['src/core/pipeline-config.ts', 'src/registry.ts']],
      ['src/cli/run.ts', ['src/config/load.ts', 'src/core/topology.ts', 'src/buffers/disk.ts', 'src/registry.ts']],
      ['src/registry.ts', ['src/sinks/file.ts', 'src/sources/file.ts', 'src/buffers/index.ts']],
    ]);
    const reported = layeringViolations(graph).map((v) => v.slice(0, v.indexOf(':')));
    assert.deepEqual(reported, [
      'src/core/topology/build.ts → src/sinks/file.ts',
      'src/codecs/ndjson.ts → src/config/load.ts',
      'src/sinks/http.ts → src/sources/http/body.ts',
      'src/sources/syslog/tcp.ts → src/sources/socket.ts',
      'src/sources/syslog/tcp.ts → src/buffers/memory.ts',
      'src/buffers/disk.ts → src/cli/run.ts',
      'src/config/load.ts → src/registry.ts',
    ]);
  });

  it('the sources follow it', () => {
    const graph = readImportGraph();
    assert.ok(graph.size > 50, `read only ${graph.size} files under src/`);
    for (const [file, imports] of graph) {
      for (const target of imports) {
        if (target.startsWith('src/'))
          assert.ok(existsSync(new URL(target, ROOT)), `${file} imports ${target}: no such file`);
      }
    }
    assert.deepEqual(layeringViolations(graph), []);
  });
});
