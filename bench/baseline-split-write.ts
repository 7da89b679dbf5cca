/**
 * The yardstick of `npm run bench`: the least a Node process can do for socket → file. It accepts TCP
 * connections, splits each chunk into lines (decoding them to strings, as Fluxo must to build events),
 * joins them back and appends them to one file through a WriteStream (optionally through gzip), pausing
 * every socket while the stream is over its high-water mark. No events, no JSON, no acknowledgements.
 *
 *   node --import tsx bench/baseline-split-write.ts --out /tmp/out.log [--gzip] [--address 127.0.0.1:0]
 *
 * Prints `listening on tcp HOST:PORT` on stderr. Each `stats` line on stdin is answered on stdout with
 * `{"lines_written":…,"connections":…}` (lines whose write callback ran: handed to the kernel, or to zlib
 * with --gzip). SIGTERM or the end of stdin: stop listening, flush, close the file, exit 0.
 */
import { createWriteStream } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    gzip: { type: 'boolean', default: false },
    address: { type: 'string', default: '127.0.0.1:0' },
  },
});
if (!values.out) throw new Error('--out FILE is required');

const file = createWriteStream(values.out, { flags: 'a' });
const gzip = values.gzip ? createGzip() : undefined;
if (gzip) gzip.pipe(file);
const sink = gzip ?? file;

let linesWritten = 0;
let connections = 0;
let blocked = false;
const sockets = new Set<Socket>();

function write(text: string, lines: number): void {
  const ok = sink.write(text, () => {
    linesWritten += lines;
  });
  if (!ok && !blocked) {
    blocked = true;
    for (const s of sockets) s.pause();
    sink.once('drain', () => {
      blocked = false;
      for (const s of sockets) s.resume();
    });
  }
}

const server = createServer((socket) => {
  connections++;
  sockets.add(socket);
  if (blocked) socket.pause();
  let partial = '';
  socket.on('data', (chunk: Buffer) => {
    const last = chunk.lastIndexOf(0x0a);
    if (last < 0) {
      partial += chunk.toString('utf8');
      return;
    }
    const lines = (partial + chunk.toString('utf8', 0, last)).split('\n');
    partial = chunk.toString('utf8', last + 1);
    write(`${lines.join('\n')}\n`, lines.length);
  });
  socket.on('end', () => {
    if (partial.length > 0) write(`${partial}\n`, 1);
    partial = '';
  });
  socket.on('close', () => {
    connections--;
    sockets.delete(socket);
  });
  socket.on('error', () => {});
});

const [host, port] = [
  values.address.slice(0, values.address.lastIndexOf(':')),
  Number(values.address.split(':').pop()),
];
server.listen({ host, port }, () => {
  const a = server.address();
  if (a && typeof a === 'object')
    process.stderr.write(`baseline-split-write: listening on tcp ${a.address}:${a.port}\n`);
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  server.close();
  for (const s of sockets) s.destroy();
  sink.end();
  file.on('close', () => process.exit(0));
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() === 'stats')
      process.stdout.write(`${JSON.stringify({ lines_written: linesWritten, connections })}\n`);
  })
  .on('close', stop);
process.on('SIGTERM', stop);
