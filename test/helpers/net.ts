import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/**
 * A free TCP port on 127.0.0.1, for servers that cannot be told to pick one and say which (postgres,
 * clickhouse-server, redis-server, nats-server, rsyslogd, syslog-ng, a Fluxo under test). Another process could
 * take it before the server binds; the helpers' starts fail loudly then.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const RESERVATIONS = join(tmpdir(), 'fluxo-test-ports');
const STALE_MS = 24 * 3600_000;

/**
 * A port below the kernel's ephemeral range (32768+ by default), free now and reserved for the test: for a
 * server that is killed and started again on the same port. While it is down, no outgoing connection can take
 * the port as its local one (not ephemeral), and no other test process picks it, because each reservation is a
 * file made with O_EXCL in a directory all test processes share, removed when the test ends (files older than a
 * day, left by a run that was killed, are swept).
 */
export async function reservedPort(t: TestContext): Promise<number> {
  mkdirSync(RESERVATIONS, { recursive: true });
  sweepStale();
  for (;;) {
    const port = randomInt(20_000, 32_000);
    const mark = join(RESERVATIONS, String(port));
    try {
      writeFileSync(mark, String(process.pid), { flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    }
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!bound) {
      rmSync(mark, { force: true });
      continue;
    }
    t.after(() => rmSync(mark, { force: true }));
    return port;
  }
}

let swept = false;
function sweepStale(): void {
  if (swept) return;
  swept = true;
  const now = Date.now();
  for (const name of readdirSync(RESERVATIONS)) {
    const mark = join(RESERVATIONS, name);
    try {
      if (now - statSync(mark).mtimeMs > STALE_MS) rmSync(mark, { force: true });
    } catch {
      // Removed by another process meanwhile.
    }
  }
}
