import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';

/**
 * Opens `connections` TCP connections and sends lines `line <n>` for n in 1..total, spread round-robin
 * over the connections, respecting each socket's backpressure (waits for 'drain'). Resolves when every
 * byte was handed to the kernel and the sockets are closed.
 */
export async function sendNumberedLines(
  port: number,
  options: { connections: number; total: number; from?: number; payload?: (n: number) => string; host?: string },
): Promise<void> {
  const { connections, total } = options;
  const from = options.from ?? 1;
  const payload = options.payload ?? ((n: number) => `line ${n}`);
  const sockets = await Promise.all(
    Array.from({ length: connections }, () => openSocket(port, options.host ?? '127.0.0.1')),
  );
  await Promise.all(
    sockets.map(async (socket, c) => {
      let chunk = '';
      for (let n = from + c; n < from + total; n += connections) {
        chunk += `${payload(n)}\n`;
        if (chunk.length > 16 * 1024) {
          if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
          chunk = '';
        }
      }
      await new Promise<void>((resolve, reject) => {
        socket.end(chunk, () => resolve());
        socket.once('error', reject);
      });
    }),
  );
}

function openSocket(port: number, host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * The backpressure check every stream source shares: with the pipeline blocked (`rec.block()` already called
 * and one batch emitted), writes `nextChunk()` to `socket` until the client's own write queue passes 4 MiB —
 * only possible once the source stopped reading and the kernel buffers on both sides filled up — and checks
 * that nothing more was received meanwhile. `nextChunk` numbers the messages it makes; `made()` says how many.
 */
export async function fillUntilSourceStopsReading(
  rec: { batches: unknown[]; events(): unknown[] },
  socket: Socket,
  nextChunk: () => string,
  made: () => number,
): Promise<void> {
  const receivedWhenBlocked = rec.events().length;
  let writesRefused = 0;
  while (socket.writableLength < 4 * 1024 * 1024) {
    if (!socket.write(nextChunk())) writesRefused++;
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(made() < 5_000_000, 'the source kept reading while blocked');
  }
  assert.ok(writesRefused > 0);
  assert.equal(rec.batches.length, 1, 'one batch emitted while blocked');
  assert.equal(rec.events().length, receivedWhenBlocked, 'received count stopped growing');
}

/**
 * Resolves when `socket` closes, whether the peer ended it or reset it. `once(socket, 'close')` would reject on
 * the ECONNRESET a server's close sends to a client still writing, which is as much "closed" as a FIN.
 */
export function closedOrReset(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) resolve();
    else socket.once('close', () => resolve());
  });
}
