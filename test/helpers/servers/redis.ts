import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createClient, type RedisClientType } from 'redis';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';
import { freePort } from '../net.ts';

export interface RedisServerOptions {
  /** appendonly yes with appendfsync always: writes survive a kill -9. */
  appendonly?: boolean;
  /** `requirepass`: the `default` user's password. */
  password?: string;
  /** ACL users, each a `user` directive's rules, e.g. `alice on >secret ~* +@all`. */
  users?: string[];
  /** Also listen with TLS on `tlsPort` (`tls-auth-clients no`: clients need no certificate). */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** With `tls`: the TLS port and its `rediss://` URL (the plain port stays open for the helper's client). */
  readonly tlsPort?: number;
  readonly tlsUrl?: string;
  /** A client of its own for the test to read what the server holds (closed with the server). */
  readonly client: RedisClientType;
  /** SIGKILL: no shutdown, no save. */
  kill9(): Promise<void>;
  /** Starts again on the same port and directory (an appendonly server gets its data back). */
  restart(): Promise<void>;
}

/**
 * Starts Debian's redis-server on 127.0.0.1 on a free port, without RDB snapshots, in a temporary directory;
 * stopped when the test ends. `appendonly: true` keeps writes across a kill -9 (appendfsync always).
 * Resolves undefined (the test skipped) where redis-server is not installed, except in CI.
 */
export async function startRedis(t: TestContext, options: RedisServerOptions = {}): Promise<RedisServer | undefined> {
  const program = requireProgram(t, 'redis-server', 'redis-server');
  if (!program) return undefined;
  const dir = tempDir(t, 'fluxo-redis-');
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  // A config file: ACL rules hold `>` and `~`, awkward on a command line.
  const conf = [`port ${port}`, 'bind 127.0.0.1', 'save ""', `dir ${dir}`, 'daemonize no'];
  conf.push(`appendonly ${options.appendonly ? 'yes' : 'no'}`);
  if (options.appendonly) conf.push('appendfsync always');
  if (options.password !== undefined) conf.push(`requirepass "${options.password}"`);
  for (const user of options.users ?? []) conf.push(`user ${user}`);
  if (options.tls) {
    conf.push(`tls-port ${tlsPort}`, `tls-cert-file ${options.tls.certFile}`, `tls-key-file ${options.tls.keyFile}`);
    conf.push(`tls-ca-cert-file ${options.tls.caFile}`, 'tls-auth-clients no');
  }
  const confFile = join(dir, 'redis.conf');
  writeFileSync(confFile, `${conf.join('\n')}\n`);
  const args = [confFile];
  let child: ChildProcess | undefined;
  const launch = async () => {
    const proc = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          proc.stdout!.off('data', onData);
          proc.stdout!.resume();
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.resume();
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`)));
    });
  };
  await launch();
  const client = createClient({
    socket: { host: '127.0.0.1', port, reconnectStrategy: 50 },
    ...(options.password === undefined ? {} : { password: options.password }),
  }) as RedisClientType;
  client.on('error', () => {});
  await client.connect();
  const kill9 = async () => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };
  t.after(async () => {
    client.destroy();
    await kill9();
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    ...(tlsPort === undefined ? {} : { tlsPort, tlsUrl: `rediss://127.0.0.1:${tlsPort}` }),
    client,
    kill9,
    restart: async () => {
      await kill9();
      await launch();
    },
  };
}
