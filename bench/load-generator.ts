/**
 * The load generator of `npm run bench`, run as its own process so its CPU is never counted as Fluxo's.
 *
 * 1. Pre-generates every connection's payload (combined access-log lines from src/codecs/access-log.ts, cut
 *    into chunks that end at a newline) before any clock starts.
 * 2. Opens all connections, then prints `{"ready":…}` on stdout and waits for a `go` line on stdin.
 * 3. On `go`, writes the chunks on every connection at once, honouring each socket's backpressure, ends the
 *    sockets and prints `{"done":…}` with the time of the first byte, the lines and bytes sent and its own CPU.
 *
 * `--duration-s D` sends for D seconds (cycling through the pre-generated chunks) instead of sending them once.
 * `--rate N` sends the `--events` lines at N lines per second over all connections (line n goes out at n / N s on
 * connection (n - 1) % connections), each due line written as it falls due, as web servers trickle their logs;
 * a connection whose socket pushes back keeps its lines queued in user space, so the rate is kept either way.
 * `--syslog` prefixes each line with an RFC 3164 header (`<134>Mar  5 14:00:00 web-007 apache: `).
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ACCESS_LOG_FORMATS, type AccessLogFormat, AccessLogGenerator } from '../src/codecs/access-log.ts';
import { nowMs } from './lib/proc.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    connections: { type: 'string', default: '300' },
    events: { type: 'string', default: '1000000' },
    'duration-s': { type: 'string' },
    'chunk-bytes': { type: 'string', default: String(64 * 1024) },
    format: { type: 'string', default: 'apache_combined' },
    rate: { type: 'string' },
    syslog: { type: 'boolean', default: false },
    seed: { type: 'string', default: '20250305' },
  },
});

const port = Number(values.port);
const connections = Number(values.connections);
const events = Number(values.events);
const durationMs = values['duration-s'] === undefined ? undefined : Number(values['duration-s']) * 1000;
const chunkBytes = Number(values['chunk-bytes']);
const format = values.format as AccessLogFormat;
const rate = values.rate === undefined ? undefined : Number(values.rate);
if (rate !== undefined && !(rate > 0 && durationMs === undefined))
  throw new Error('--rate needs N > 0, without --duration-s');
if (!ACCESS_LOG_FORMATS.includes(format)) throw new Error(`--format must be one of ${ACCESS_LOG_FORMATS.join(', ')}`);
if (!(port > 0 && connections > 0 && events >= connections && chunkBytes > 0)) {
  throw new Error('need --port, --connections > 0, --events >= connections, --chunk-bytes > 0');
}

interface Chunk {
  buf: Buffer;
  lines: number;
}

/** Line n goes to connection (n - 1) % connections, as a load balancer spreading requests would. */
function pregenerate(): { perConnection: Chunk[][]; bytes: number } {
  const generator = new AccessLogGenerator({ format, seed: Number(values.seed) });
  const baseMs = Date.UTC(2025, 2, 5, 14, 0, 0);
  const perConnection: Chunk[][] = Array.from({ length: connections }, () => []);
  const pending: string[][] = Array.from({ length: connections }, () => []);
  const pendingBytes = new Array<number>(connections).fill(0);
  let bytes = 0;
  const cut = (c: number) => {
    const buf = Buffer.from(`${pending[c]!.join('\n')}\n`, 'utf8');
    perConnection[c]!.push({ buf, lines: pending[c]!.length });
    bytes += buf.length;
    pending[c] = [];
    pendingBytes[c] = 0;
  };
  for (let seq = 1; seq <= events; seq++) {
    const c = (seq - 1) % connections;
    // ~2,000 requests per second of log time, so timestamps advance as in a busy server's log.
    const access = generator.line(seq, baseMs + Math.floor(seq / 2));
    const line = values.syslog ? `<134>Mar  5 14:00:00 web-${String(c).padStart(3, '0')} apache: ${access}` : access;
    pending[c]!.push(line);
    pendingBytes[c]! += line.length + 1;
    if (rate !== undefined || pendingBytes[c]! >= chunkBytes) cut(c);
  }
  for (let c = 0; c < connections; c++) if (pending[c]!.length > 0) cut(c);
  return { perConnection, bytes };
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: values.host, port }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

async function sendAll(
  socket: Socket,
  chunks: Chunk[],
  deadline: number | undefined,
): Promise<{ lines: number; bytes: number }> {
  let lines = 0;
  let bytes = 0;
  for (let i = 0; ; i++) {
    if (i === chunks.length) {
      if (deadline === undefined) break;
      i = 0;
    }
    if (deadline !== undefined && nowMs() >= deadline) break;
    const chunk = chunks[i]!;
    lines += chunk.lines;
    bytes += chunk.buf.length;
    if (!socket.write(chunk.buf)) await once(socket, 'drain');
  }
  socket.end();
  await once(socket, 'finish');
  return { lines, bytes };
}

/**
 * Writes each connection's lines as they fall due (one chunk per line in rate mode), checking every 2 ms; the
 * due count comes from the elapsed time, so a late tick catches up rather than lowering the rate.
 */
function sendAtRate(
  socks: Socket[],
  chunks: Chunk[][],
  linesPerS: number,
  startMs: number,
): Promise<{ lines: number; bytes: number }>[] {
  const n = socks.length;
  const sent = new Array<number>(n).fill(0);
  const bytes = new Array<number>(n).fill(0);
  const resolvers: ((r: { lines: number; bytes: number }) => void)[] = [];
  const promises = socks.map(() => new Promise<{ lines: number; bytes: number }>((r) => resolvers.push(r)));
  let finished = 0;
  const tick = () => {
    const due = Math.floor(((nowMs() - startMs) * linesPerS) / 1000);
    for (let c = 0; c < n; c++) {
      const list = chunks[c]!;
      if (sent[c] === list.length) continue;
      // Lines 1..due overall; connection c has those with (seq - 1) % n === c.
      const dueHere = Math.min(list.length, due > c ? Math.floor((due - c - 1) / n) + 1 : 0);
      if (dueHere <= sent[c]!) continue;
      const bufs = list.slice(sent[c], dueHere).map((ch) => ch.buf);
      const buf = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
      socks[c]!.write(buf);
      bytes[c]! += buf.length;
      sent[c] = dueHere;
      if (dueHere === list.length) {
        const s = socks[c]!;
        const lines = dueHere;
        const b = bytes[c]!;
        s.end(() => resolvers[c]!({ lines, bytes: b }));
        finished++;
      }
    }
    if (finished < n) setTimeout(tick, 2);
  };
  tick();
  return promises;
}

const t0 = nowMs();
const { perConnection, bytes: pregeneratedBytes } = pregenerate();
const pregenMs = nowMs() - t0;
const sockets = await Promise.all(Array.from({ length: connections }, open));
for (const s of sockets)
  s.on('error', (error) => process.stderr.write(`load generator socket error: ${error.message}\n`));
process.stdout.write(
  `${JSON.stringify({ ready: true, connections, pregenerated_lines: events, pregenerated_bytes: pregeneratedBytes, pregen_ms: Math.round(pregenMs) })}\n`,
);

const stdin = createInterface({ input: process.stdin });
for await (const line of stdin) if (line.trim() === 'go') break;

const cpu0 = process.cpuUsage();
const firstByteMs = nowMs();
const deadline = durationMs === undefined ? undefined : firstByteMs + durationMs;
const results = await Promise.all(
  rate === undefined
    ? sockets.map((s, c) => sendAll(s, perConnection[c]!, deadline))
    : sendAtRate(sockets, perConnection, rate, firstByteMs),
);
const doneMs = nowMs();
const cpu = process.cpuUsage(cpu0);
let lines = 0;
let bytes = 0;
for (const r of results) {
  lines += r.lines;
  bytes += r.bytes;
}
process.stdout.write(
  `${JSON.stringify({ done: true, first_byte_ms: firstByteMs, done_ms: doneMs, lines, bytes, cpu_user_s: cpu.user / 1e6, cpu_sys_s: cpu.system / 1e6 })}\n`,
);
process.exit(0);
