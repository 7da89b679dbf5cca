import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';

/** A free TCP port on 127.0.0.1 (clickhouse-server cannot be told to pick one and say which). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ClickHouseServer {
  /** The HTTP interface's port. */
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Runs one statement over HTTP and returns the body (TabSeparated unless the statement says FORMAT). */
  query(sql: string): Promise<string>;
  /** The rows of a SELECT as objects (`FORMAT JSONEachRow` is appended). */
  rows<R = Record<string, unknown>>(sql: string): Promise<R[]>;
  /** SIGKILL: no shutdown. */
  kill9(): Promise<void>;
  /** Starts again on the same ports and directory. */
  restart(): Promise<void>;
  /** Starts it (after `down: true` or kill9()). */
  start(): Promise<void>;
}

function configXml(dir: string, httpPort: number, tcpPort: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${dir}/log/server.log</log>
    <errorlog>${dir}/log/server.err.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
</yandex>
`;
}

const USERS_XML = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`;

/**
 * Starts Debian's clickhouse-server (18.16) on 127.0.0.1 with free HTTP and native ports, its config, data and
 * logs in a temporary directory (no interserver port, no system service); killed when the test ends. `down:
 * true` leaves it stopped until start(). Resolves undefined (the test skipped) where it is not installed,
 * except in CI.
 */
export async function startClickHouse(
  t: TestContext,
  options: { down?: boolean } = {},
): Promise<ClickHouseServer | undefined> {
  const program = requireProgram(t, 'clickhouse-server', 'clickhouse-server');
  if (!program) return undefined;
  const dir = tempDir(t, 'fluxo-clickhouse-');
  for (const sub of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) mkdirSync(join(dir, sub));
  const port = await freePort();
  const tcpPort = await freePort();
  writeFileSync(join(dir, 'config.xml'), configXml(dir, port, tcpPort));
  writeFileSync(join(dir, 'users.xml'), USERS_XML);
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = spawn(program, [`--config-file=${join(dir, 'config.xml')}`], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    proc.stdout!.on('data', collect);
    proc.stderr!.on('data', collect);
    for (let i = 0; ; i++) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(
          `clickhouse-server exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${output}`,
        );
      }
      try {
        const res = await request(`${url}/ping`);
        const body = await res.body.text();
        if (res.statusCode === 200 && body.startsWith('Ok')) return;
      } catch {
        // not listening yet
      }
      if (i > 3000) throw new Error(`clickhouse-server did not answer /ping within 30 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const kill9 = async () => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };
  t.after(() => kill9());
  if (!options.down) await start();
  const query = async (sql: string): Promise<string> => {
    const res = await request(`${url}/`, { method: 'POST', body: sql });
    const body = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`clickhouse ${res.statusCode}: ${body.trim()}\n${sql}`);
    return body;
  };
  return {
    port,
    url,
    query,
    async rows<R>(sql: string): Promise<R[]> {
      const body = await query(`${sql} FORMAT JSONEachRow`);
      return body
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as R);
    },
    kill9,
    start,
    restart: async () => {
      await kill9();
      await start();
    },
  };
}
