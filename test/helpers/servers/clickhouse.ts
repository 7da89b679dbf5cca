import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';
import { freePort } from '../net.ts';

export interface ClickHouseServer {
  /** The HTTP interface's port. */
  readonly port: number;
  /** The server's pid, while it runs. */
  readonly pid: number | undefined;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `https://127.0.0.1:<https port>` when started with `tls`. */
  readonly httpsUrl: string | undefined;
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

function configXml(dir: string, httpPort: number, tcpPort: number, httpsPort: number | undefined): string {
  // 18.16 reads its TLS server settings from Poco's openSSL section; no client section is needed.
  const https =
    httpsPort === undefined
      ? ''
      : `  <https_port>${httpsPort}</https_port>
  <openSSL>
    <server>
      <certificateFile>${dir}/server.crt</certificateFile>
      <privateKeyFile>${dir}/server.key</privateKeyFile>
      <verificationMode>none</verificationMode>
      <loadDefaultCAFile>false</loadDefaultCAFile>
      <cacheSessions>true</cacheSessions>
      <disableProtocols>sslv2,sslv3</disableProtocols>
      <preferServerCiphers>true</preferServerCiphers>
    </server>
  </openSSL>
`;
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
${https}  <path>${dir}/data/</path>
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

/** The users file: `default` from 127.0.0.1, with `password` when one is given (plain text, as 18.16 reads it). */
const usersXml = (password: string) => `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password>${password.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</password>
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
 * true` leaves it stopped until start(). `password` gives the `default` user one (the helper's own queries
 * send it). `tls` (PEM files) adds an HTTPS port beside the HTTP one. Resolves undefined (the test skipped)
 * where it is not installed, except in CI.
 */
export async function startClickHouse(
  t: TestContext,
  options: { down?: boolean; password?: string; tls?: { crtFile: string; keyFile: string } } = {},
): Promise<ClickHouseServer | undefined> {
  const program = requireProgram(t, 'clickhouse-server', 'clickhouse-server');
  if (!program) return undefined;
  const dir = tempDir(t, 'fluxo-clickhouse-');
  for (const sub of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) mkdirSync(join(dir, sub));
  const port = await freePort();
  const tcpPort = await freePort();
  const httpsPort = options.tls ? await freePort() : undefined;
  if (options.tls) {
    copyFileSync(options.tls.crtFile, join(dir, 'server.crt'));
    copyFileSync(options.tls.keyFile, join(dir, 'server.key'));
  }
  writeFileSync(join(dir, 'config.xml'), configXml(dir, port, tcpPort, httpsPort));
  writeFileSync(join(dir, 'users.xml'), usersXml(options.password ?? ''));
  const url = `http://127.0.0.1:${port}`;
  const auth =
    options.password === undefined
      ? {}
      : { authorization: `Basic ${Buffer.from(`default:${options.password}`).toString('base64')}` };
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
    const res = await request(`${url}/`, { method: 'POST', body: sql, headers: auth });
    const body = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`clickhouse ${res.statusCode}: ${body.trim()}\n${sql}`);
    return body;
  };
  return {
    port,
    get pid() {
      return child?.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    url,
    httpsUrl: httpsPort === undefined ? undefined : `https://127.0.0.1:${httpsPort}`,
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
