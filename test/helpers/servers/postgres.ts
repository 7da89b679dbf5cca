import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';
import { freePort } from '../net.ts';

const BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  readonly port: number;
  /** The postmaster's pid (the leader of its process group, backends included), while it runs. */
  readonly pid: number | undefined;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (the password, when there is one, is not in it). */
  readonly url: string;
  /** A pool of the test's own, to read what the server holds (re-opens connections after a restart). */
  readonly pool: pg.Pool;
  /** One query through the test's pool. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, values?: unknown[]): Promise<R[]>;
  /** SIGKILL of the postmaster and every backend (its process group): no shutdown checkpoint. */
  kill9(): Promise<void>;
  /** A fast shutdown (SIGINT): clients are disconnected with 57P01 and the server stays down until start(). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** kill9(), then start(). */
  restart(): Promise<void>;
}

/** uid/gid of the `postgres` user when the tests run as root: initdb and postgres refuse to run as root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as (postgresql-15 makes it)');
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** One initdb per process (it takes a second or two); every server copies that cluster. */
let template: string | undefined;

function makeTemplate(user: { uid: number; gid: number } | undefined): string {
  if (template !== undefined) return template;
  const dir = mkdtempSync(join(tmpdir(), 'fluxo-pg-template-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const out = spawnSync(
    join(BIN, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { encoding: 'utf8', ...(user ?? {}) },
  );
  if (out.status !== 0) throw new Error(`initdb failed (${out.status}):\n${out.stdout}\n${out.stderr}`);
  template = dir;
  return dir;
}

/**
 * Starts PostgreSQL 15 (Debian's postgresql-15) on 127.0.0.1 on a free port, its cluster in a temporary
 * directory (copied from one initdb per process) with the unix socket there too; no system service. As root the
 * server runs as the `postgres` user. `password` switches TCP logins to scram-sha-256 with that password for
 * `postgres`. `tls` (PEM files) turns on TLS and refuses TCP logins without it. `down: true` leaves it stopped
 * until start(). Killed when the test ends. Resolves undefined (the
 * test skipped) where PostgreSQL 15 is not installed, except in CI.
 */
export async function startPostgres(
  t: TestContext,
  options: { password?: string; down?: boolean; tls?: { crtFile: string; keyFile: string } } = {},
): Promise<PostgresServer | undefined> {
  if (!requireProgram(t, join(BIN, 'postgres'), 'postgresql-15')) return undefined;
  const user = serverUser();
  const dir = tempDir(t, 'fluxo-pg-');
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const copy = spawnSync('cp', ['-a', join(makeTemplate(user), 'data'), data], { encoding: 'utf8' });
  if (copy.status !== 0) throw new Error(`copying the template cluster failed: ${copy.stderr}`);
  const socketDir = join(dir, 'socket');
  mkdirSync(socketDir);
  if (user) chownSync(socketDir, user.uid, user.gid);
  if (options.password !== undefined) {
    writeFileSync(
      join(data, 'pg_hba.conf'),
      'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n',
    );
  }
  const port = await freePort();
  const args = ['-D', data, '-p', String(port), '-k', socketDir, '-c', 'listen_addresses=127.0.0.1'];
  if (options.tls) {
    // TCP only with TLS: a client that does not ask for it is refused, so a test sees TLS was used.
    const auth = options.password !== undefined ? 'scram-sha-256' : 'trust';
    writeFileSync(
      join(data, 'pg_hba.conf'),
      `local all all trust\nhostssl all all 127.0.0.1/32 ${auth}\nhostnossl all all 127.0.0.1/32 reject\n`,
    );
    // postgres requires its key to be its own and private.
    for (const [from, to] of [
      [options.tls.crtFile, 'server.crt'],
      [options.tls.keyFile, 'server.key'],
    ] as const) {
      copyFileSync(from, join(data, to));
      chmodSync(join(data, to), 0o600);
      if (user) chownSync(join(data, to), user.uid, user.gid);
    }
    args.push('-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key');
  }
  // Writes reach the OS page cache, which a killed server does not lose; fsync only guards a machine crash.
  args.push('-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200');
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    // Its own process group, so kill9() takes the backends with the postmaster (they would otherwise hold the
    // shared memory a moment and the new postmaster would refuse to start).
    const proc = spawn(join(BIN, 'postgres'), args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
      ...(user ?? {}),
    });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        if (log.length > 200_000) log = log.slice(-100_000);
        if (/database system is ready to accept connections/.test(log)) {
          log = '';
          proc.stderr!.off('data', onData);
          proc.stderr!.resume();
          resolve();
        }
      };
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`postgres exited (${code}) before it was ready:\n${log}`)));
    });
  };
  const signalGroup = async (signal: NodeJS.Signals) => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    try {
      process.kill(-proc.pid!, signal);
    } catch {
      proc.kill(signal);
    }
    await exited;
    if (signal === 'SIGKILL') {
      // The backends are in the same group and got the signal too; wait until none holds the data directory.
      for (let i = 0; i < 500; i++) {
        const left = spawnSync('pgrep', ['-g', String(proc.pid)], { encoding: 'utf8' });
        if (left.stdout.trim() === '') break;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const kill9 = () => signalGroup('SIGKILL');
  if (options.password !== undefined) {
    await start();
    // Local (unix socket) logins stay trusted: the password is set through the socket.
    const admin = new pg.Client({ host: socketDir, port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`ALTER USER postgres PASSWORD '${options.password.replace(/'/g, "''")}'`);
    await admin.end();
    if (options.down) await signalGroup('SIGINT');
  } else if (!options.down) {
    await start();
  }
  const pool = new pg.Pool({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    password: options.password,
    ssl: options.tls ? { rejectUnauthorized: false } : undefined,
    max: 2,
  });
  pool.on('error', () => {});
  t.after(async () => {
    await pool.end().catch(() => {});
    await kill9();
  });
  return {
    port,
    get pid() {
      return child?.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    pool,
    async query<R extends pg.QueryResultRow>(sql: string, values?: unknown[]) {
      return (await pool.query<R>(sql, values)).rows;
    },
    kill9,
    stop: () => signalGroup('SIGINT'),
    start,
    restart: async () => {
      await kill9();
      await start();
    },
  };
}
