import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { renderComponentsDoc } from '../../src/config/docs.ts';
import { fullRegistry } from '../../src/registry.ts';
import { tempDir } from '../helpers/context.ts';
import { duckQuery, sqlString } from '../helpers/duckdb.ts';
import { readNdjsonDir, runDefaultConfig } from '../helpers/fluxo-process.ts';
import { sendNumberedLines } from '../helpers/tcp-senders.ts';

const registry = await fullRegistry();

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/fluxo.js');

function fluxo(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('fluxo CLI', () => {
  it('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = fluxo(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('the compiled bundle fills Node’s compile cache where Node has one (≥ 22.1), in its own directory, so the next start skips compiling', (t) => {
    const built = statSync(join(ROOT, 'dist/.built'), { throwIfNoEntry: false });
    if (
      !built ||
      readdirSync(join(ROOT, 'src'), { recursive: true }).some(
        (f) => statSync(join(ROOT, 'src', String(f))).mtimeMs > built.mtimeMs,
      )
    ) {
      const message = 'dist/ is older than src/ (run npm run build): bin/fluxo.js runs the sources';
      if (process.env.CI === 'true') throw new Error(message);
      t.skip(message);
      return;
    }
    // NODE_COMPILE_CACHE would turn the cache on by itself, so it is not set: only bin/fluxo.js can have made
    // the directory. TMPDIR is moved too, to see that nothing goes to the shared default.
    const tmp = tempDir(t);
    const cache = join(tmp, 'fluxo-cache');
    const { NODE_COMPILE_CACHE: _, ...env } = process.env;
    const run = () =>
      spawnSync(process.execPath, [BIN, '--version'], {
        encoding: 'utf8',
        env: { ...env, TMPDIR: tmp, FLUXO_COMPILE_CACHE: cache },
      });
    assert.equal(run().status, 0);
    const hasCache = typeof (module as { enableCompileCache?: unknown }).enableCompileCache === 'function';
    const files = existsSync(cache) ? readdirSync(cache, { recursive: true }) : [];
    if (hasCache)
      assert.ok(
        files.length > 0,
        `Node ${process.version} has a compile cache: ${cache} should hold the bundle's code`,
      );
    else assert.deepEqual(files, [], `Node ${process.version} has no compile cache`);
    assert.equal(existsSync(join(tmp, 'node-compile-cache')), false, 'nothing in the shared temporary directory');
    assert.equal(run().status, 0, 'a start from the cache works');
  });

  it('--help lists the commands and examples', () => {
    const r = fluxo(['--help']);
    assert.equal(r.code, 0);
    for (const word of ['run', 'validate', 'schema', 'Examples:']) assert.ok(r.stdout.includes(word), word);
  });

  it('validate: the default fluxo.yaml is valid', () => {
    const r = fluxo(['validate', '-c', 'fluxo.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fluxo\.yaml: valid \(5 sources, 1 transforms, 2 sinks\)/);
  });

  it('validate: exit 1 with every problem, each with file:line:column', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'sources:\n  in: { type: sockt, address: 127.0.0.1:1 }\nsinks:\n  out: { type: console, inputs: [nowhere], encodng: json }\n',
    );
    const r = fluxo(['validate', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`${file}:2:\\d+: sources\\.in\\.type: unknown source type "sockt"; did you mean "socket"\\?`),
    );
    assert.match(
      r.stderr,
      new RegExp(`${file}:4:\\d+: sinks\\.out\\.encodng: unknown key "encodng"; did you mean "encoding"\\?`),
    );
    assert.match(r.stderr, /3 problems/);
  });

  it('run --help documents the exit codes, 3 for undelivered events at shutdown', () => {
    const r = fluxo(['run', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Exit codes:/);
    assert.match(r.stdout, /\n {2}3 +stopped, but shutdown_timeout passed with events undelivered/);
  });

  it('validate: a port outside 0-65535 and two listeners on one port, at file:line (issue 13, item 11)', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'ports.yaml');
    writeFileSync(
      file,
      [
        'api: { address: 127.0.0.1:0 }',
        'sources:',
        '  big:',
        '    type: socket',
        '    address: 127.0.0.1:99999',
        '  a: { type: http, address: 127.0.0.1:18080 }',
        '  b: { type: http, address: 127.0.0.1:18080 }',
        'sinks:',
        '  out: { type: blackhole, inputs: [big, a, b] }',
        '',
      ].join('\n'),
    );
    const r = fluxo(['validate', '-c', file]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`${file}:5:\\d+: sources\\.big\\.address: .*port 99999 is outside 0-65535`));
    assert.match(
      r.stderr,
      new RegExp(
        `${file}:7:\\d+: sources\\.b\\.address: source "b" listens on tcp 127\\.0\\.0\\.1:18080, the port of source "a" \\(${file}:6\\)`,
      ),
    );
    assert.match(r.stderr, /2 problems/);
  });

  it('validate and run: a config without sources or sinks is rejected (issue 13, item 11)', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'empty.yaml');
    writeFileSync(file, `data_dir: ${dir}/data\napi: { enabled: false }\n`);
    for (const command of ['validate', 'run']) {
      const r = fluxo([command, '-c', file]);
      assert.equal(r.code, 1, `${command}: ${r.stderr}`);
      assert.match(r.stderr, /the pipeline has no sources and no sinks/, command);
    }
  });

  it('schema prints a JSON Schema naming every component type', () => {
    const r = fluxo(['schema']);
    assert.equal(r.code, 0);
    const schema = JSON.parse(r.stdout) as { title: string };
    assert.equal(schema.title, 'Fluxo configuration');
    for (const type of [...registry.sources.keys(), ...registry.sinks.keys(), ...registry.transforms.keys()]) {
      assert.ok(r.stdout.includes(`"${type}"`), type);
    }
  });

  it('docs/components.md is up to date with the schemas (run `npm run docs`)', () => {
    assert.equal(readFileSync(join(ROOT, 'docs/components.md'), 'utf8'), renderComponentsDoc(registry));
  });

  it('run: a bad config exits 1 without starting', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'sinks:\n  out: { type: blackhole, inputs: [ghost] }\n');
    const r = fluxo(['run', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown input "ghost"/);
  });

  it('run with the default config: banner, an access line parsed into the master dataset, /health, /metrics, SIGINT exits 0', async (t) => {
    const dir = tempDir(t);
    const p = runDefaultConfig(t, dir);
    const syslogPort = await p.port('syslog_tcp');
    for (const id of ['syslog_udp', 'web_http', 'agents', 'otel']) await p.port(id);
    assert.match(p.stderr, /sink master \(file\): writing to .*\/master\/dt=%Y-%m-%d\/hour=%H\/part\.parquet/);
    await sendNumberedLines(syslogPort, {
      connections: 1,
      total: 1,
      payload: () => '203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET /cart HTTP/1.1" 200 512 "-" "curl/8"',
    });
    const api = await p.apiUrl();
    const health = await fetch(`${api}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'running' });
    const metrics = await (await fetch(`${api}/metrics`)).text();
    for (const name of [
      'fluxo_component_received_events_total',
      'fluxo_component_sent_events_total',
      'fluxo_buffer_events',
      'fluxo_pending_acknowledgements',
      'fluxo_end_to_end_latency_seconds',
      'fluxo_process_cpu_seconds_total',
      'fluxo_process_resident_memory_bytes',
    ]) {
      assert.ok(metrics.includes(name), name);
    }
    assert.equal((await fetch(`${api}/nope`)).status, 404);
    await p.waitForMetric('fluxo_component_sent_events_total', { component_id: 'master' }, (v) => v >= 1);
    // A line over syslog's max_message_bytes (64 KiB) is a dead letter: the default config keeps it on disk.
    const socket = connect(syslogPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.end(`${'x'.repeat(100 * 1024)}\n`);
    await once(socket, 'close');
    await p.waitForMetric('fluxo_component_sent_events_total', { component_id: 'dead_letters' }, (v) => v >= 1);
    assert.equal(await p.stop('SIGINT'), 0);
    const [dead, ...moreDead] = readNdjsonDir(join(dir, 'data', 'dead_letter'));
    assert.deepEqual(moreDead, []);
    assert.equal((dead!._dead_letter as { component_id: string }).component_id, 'syslog_tcp');
    // The master dataset is Parquet, sealed at the stop: read back as a user would, with DuckDB.
    const rows = await duckQuery(
      `SELECT client, status, path, source_type, dt FROM read_parquet(${sqlString(`${join(dir, 'data', 'master')}/**/*.parquet`)}, hive_partitioning = true)`,
    );
    assert.equal(rows.length, 1, JSON.stringify(rows));
    const [event] = rows;
    assert.equal(event!.client, '203.0.113.9');
    assert.equal(Number(event!.status), 200);
    assert.equal(event!.path, '/cart');
    assert.equal(event!.source_type, 'syslog');
    assert.match(p.stderr, /stopped/);
  });
});
