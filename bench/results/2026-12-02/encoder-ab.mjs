// The line encoder alone, before (bf9669d, dist/codecs/ndjson.js encodeLinesToBuffer) against after (8bd5e05,
// dist/core/sink/encoding.js encodeEvents), on the same 600 batches of 1,000 socket-shaped events, alternating.
// Run with both trees built as worktrees in /tmp/fluxo-before and /tmp/fluxo-after: node encoder-ab.mjs
import { AccessLogGenerator } from '/tmp/fluxo-after/dist/codecs/access-log.js';
import { EventIdGenerator } from '/tmp/fluxo-after/dist/core/event.js';
import { encodeEvents, encodingOf } from '/tmp/fluxo-after/dist/core/sink/encoding.js';
import { encodeLinesToBuffer } from '/tmp/fluxo-before/dist/codecs/ndjson.js';

const gen = new AccessLogGenerator();
const ids = new EventIdGenerator();
const B = 1000,
  N = 600;
const batches = [];
for (let b = 0; b < N; b++) {
  const now = Date.now();
  const ts = new Date(now).toISOString();
  const chunk = Array.from({ length: B }, (_, i) => gen.line(b * B + i, now)).join('\n');
  batches.push(
    chunk.split('\n').map((message) => ({
      message,
      timestamp: ts,
      host: '127.0.0.1',
      port: 40000 + (b % 300),
      source_type: 'socket',
      _id: ids.next(now),
    })),
  );
}
const enc = encodingOf({ encoding: 'ndjson' });
const variants = {
  before: (e) => encodeLinesToBuffer(e, 'json', []).length,
  after: (e) => encodeEvents(e, enc, []).bytes.length,
};
const res = { before: [], after: [] };
for (let round = 0; round < 12; round++)
  for (const k of round % 2 ? ['after', 'before'] : ['before', 'after']) {
    const t0 = process.cpuUsage();
    let _n = 0;
    for (const e of batches) _n += variants[k](e);
    const d = process.cpuUsage(t0);
    res[k].push(((d.user + d.system) * 1000) / (N * B));
  }
const med = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return (s[5] + s[6]) / 2;
};
console.log(
  process.version,
  'ns per event, median of 12 (first 2 rounds included):',
  'before',
  med(res.before).toFixed(0),
  'after',
  med(res.after).toFixed(0),
  JSON.stringify(res, (_k, v) => (typeof v === 'number' ? Math.round(v) : v)),
);
