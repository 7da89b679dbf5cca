import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';
import { createClient, type RedisClientType } from 'redis';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';

/** A free TCP port on 127.0.0.1 (redis-server cannot be told to pick one and say which). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
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
export async function startRedis(
  t: TestContext,
  options: { appendonly?: boolean } = {},
): Promise<RedisServer | undefined> {
  const program = requireProgram(t, 'redis-server', 'redis-server');
  if (!program) return undefined;
  const dir = tempDir(t, 'fluxo-redis-');
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no'];
  args.push('--appendonly', options.appendonly ? 'yes' : 'no');
  if (options.appendonly) args.push('--appendfsync', 'always');
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
  const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: 50 } }) as RedisClientType;
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
    client,
    kill9,
    restart: async () => {
      await kill9();
      await launch();
    },
  };
}
