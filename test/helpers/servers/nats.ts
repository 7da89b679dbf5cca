import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir } from '../context.ts';
import { requireProgram } from '../external.ts';
import { freePort } from '../net.ts';

export interface NatsServerOptions {
  /** Leave it down: `restart()` starts it (a destination that is down at start). */
  down?: boolean;
  /** `authorization { … }` of the server config, e.g. `token: s3cret` or `user: a, password: b`. */
  authorization?: string;
  /** More server config text, e.g. `tls { cert_file: …, key_file: … }`. */
  config?: string;
  /** Require TLS with this certificate (the same as `config: 'tls { … }'`); clients dial `tlsUrl`. */
  tls?: { certFile: string; keyFile: string };
}

export interface NatsServer {
  readonly port: number;
  readonly url: string;
  /** `tls://127.0.0.1:<port>`: the URL a client uses to demand TLS. */
  readonly tlsUrl: string;
  /** The JetStream store directory, kept across restarts. */
  readonly storeDir: string;
  /** SIGKILL: no flush, no goodbye. */
  kill9(): Promise<void>;
  /** Starts the server again on the same port with the same store; waits until it accepts connections. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Resolves once a TCP connection to the port succeeds and the server greets with INFO. */
async function waitAccepting(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1');
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('INFO'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nats-server did not accept connections on ${port}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A real nats-server with JetStream on 127.0.0.1 and a free port, its store in a temp dir; killed when the test
 * ends. Returns undefined (the test skipped) when nats-server is not installed.
 */
export async function startNatsServer(
  t: TestContext,
  options: NatsServerOptions = {},
): Promise<NatsServer | undefined> {
  const program = requireProgram(t, 'nats-server', 'nats-server');
  if (!program) return undefined;
  const dir = tempDir(t, 'fluxo-nats-');
  const storeDir = join(dir, 'store');
  const port = await freePort();
  const config = join(dir, 'nats.conf');
  const tls = options.tls ? `tls { cert_file: "${options.tls.certFile}", key_file: "${options.tls.keyFile}" }` : '';
  const text = [options.authorization ? `authorization { ${options.authorization} }` : '', options.config ?? '', tls]
    .filter((l) => l !== '')
    .join('\n');
  if (text !== '') writeFileSync(config, `${text}\n`);
  const configArgs = text !== '' ? ['-c', config] : [];
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    const c = spawn(program, [...configArgs, '-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    c.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000);
    });
    child = c;
    await waitAccepting(port, c, () => log);
  };
  const kill = async (signal: NodeJS.Signals) => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill(signal);
    await exited;
  };
  t.after(() => kill('SIGKILL'));
  if (!options.down) await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    tlsUrl: `tls://127.0.0.1:${port}`,
    storeDir,
    kill9: () => kill('SIGKILL'),
    restart: async () => {
      await kill('SIGTERM');
      await start();
    },
    stop: () => kill('SIGTERM'),
  };
}
