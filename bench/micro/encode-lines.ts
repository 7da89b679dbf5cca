/**
 * Micro-benchmark of the file sink's encoding step, the largest self time in the socket-file profile: 1,000
 * socket events (the shape src/sources/socket.ts emits, real access-log messages) to one Buffer, as
 * `appendGroup` in src/sinks/file.ts does with `Buffer.from(encodeLines(...))`, against alternatives.
 *
 *   node --import tsx bench/micro/encode-lines.ts [--batches 3000]
 *
 * Prints one JSON line per variant (ns per event, output identical to the current encoding or not).
 */
import { parseArgs } from 'node:util';
import { AccessLogGenerator } from '../../src/codecs/access-log.ts';
import { type Event, EventIdGenerator } from '../../src/core/event.ts';

const { values } = parseArgs({ options: { batches: { type: 'string', default: '3000' } } });
const BATCH = 1000;
const batches = Number(values.batches);

function makeBatch(gen: AccessLogGenerator, ids: EventIdGenerator, seq: number): Event[] {
  const now = Date.now();
  const timestamp = new Date(now).toISOString();
  // As the socket source does: the lines of one chunk are slices of one decoded string.
  const chunk = Array.from({ length: BATCH }, (_, i) => gen.line(seq + i, now)).join('\n');
  return chunk.split('\n').map((message) => ({
    message,
    timestamp,
    host: '127.0.0.1',
    port: 40_000 + (seq % 300),
    source_type: 'socket',
    _id: ids.next(now),
  }));
}

/** The first encoding: a rope of JSON.stringify results, flattened and UTF-8 encoded by Buffer.from. */
function current(events: Event[]): Buffer {
  let out = '';
  for (const e of events) out += `${JSON.stringify(e)}\n`;
  return Buffer.from(out);
}

/** The same JSON, each line written straight into one growing Buffer: no rope, no flattening copy. */
let scratch = Buffer.allocUnsafe(1 << 20);
function directWrite(events: Event[]): Buffer {
  let off = 0;
  for (const event of events) {
    const line = JSON.stringify(event);
    // A UTF-16 code unit never takes more than 3 UTF-8 bytes.
    if (off + line.length * 3 + 1 > scratch.length) {
      const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, off + line.length * 3 + 1));
      scratch.copy(bigger, 0, 0, off);
      scratch = bigger;
    }
    off += scratch.write(line, off);
    scratch[off++] = 0x0a;
  }
  return Buffer.from(scratch.subarray(0, off));
}

/** Lines collected in an array and joined once: one flat string instead of a rope of 2,000 pieces. */
function joined(events: Event[]): Buffer {
  const lines = new Array<string>(events.length + 1);
  for (let i = 0; i < events.length; i++) lines[i] = JSON.stringify(events[i]);
  lines[events.length] = '';
  return Buffer.from(lines.join('\n'));
}

/**
 * A serializer specialised to one key order, as a cache keyed by the event's keys could pick: every key prefix
 * is a constant and only values go through JSON.stringify (strings that need no escaping are copied).
 */
const SAFE = /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/;
function str(v: unknown): string {
  return typeof v === 'string' && SAFE.test(v) ? `"${v}"` : JSON.stringify(v);
}
function shaped(events: Event[]): Buffer {
  let out = '';
  for (const e of events) {
    out += `{"message":${JSON.stringify(e.message)},"timestamp":${str(e.timestamp)},"host":${str(e.host)},"port":${e.port},"source_type":${str(e.source_type)},"_id":${str(e._id)}}\n`;
  }
  return Buffer.from(out);
}

const variants: [string, (events: Event[]) => Buffer][] = [
  ['current: Buffer.from(encodeLines())', current],
  ['JSON.stringify per event, buf.write into one Buffer', directWrite],
  ['JSON.stringify per event, join once, Buffer.from', joined],
  ['fixed key order, JSON.stringify(message) only, Buffer.from', shaped],
];

const gen = new AccessLogGenerator({ seed: 7 });
const ids = new EventIdGenerator();
const pool = Array.from({ length: 50 }, (_, i) => makeBatch(gen, ids, i * BATCH));
const reference = current(pool[0]!);

for (let round = 0; round < 2; round++) {
  for (const [name, fn] of variants) {
    const same = fn(pool[0]!).equals(reference);
    for (let i = 0; i < 200; i++) fn(pool[i % pool.length]!); // warm-up
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batches; i++) fn(pool[i % pool.length]!);
    const ns = Number(process.hrtime.bigint() - t0);
    const cpu = process.cpuUsage(cpu0);
    if (round === 1) {
      process.stdout.write(
        `${JSON.stringify({ variant: name, ns_per_event: Math.round(ns / (batches * BATCH)), cpu_ns_per_event: Math.round(((cpu.user + cpu.system) * 1000) / (batches * BATCH)), same_bytes: same })}\n`,
      );
    }
  }
}
