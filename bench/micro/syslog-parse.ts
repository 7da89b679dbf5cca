/**
 * Micro-benchmark of the syslog source's parser on RFC 3164 lines as 300 web servers send them at the Q1 rate:
 * `<134>Dec  3 18:20:44 web-007 apache: <access line>`, the timestamp a new second every 10,000 lines, parsed
 * with the collector's clock in the same second (the year of a BSD timestamp depends on it).
 *
 *   node --import tsx bench/micro/syslog-parse.ts [--lines 200000] [--rounds 5]
 *
 * A/B: run it from a copy of another tree (`git archive REV | tar -x -C DIR`, node_modules linked). Prints one
 * JSON line per round: ns of CPU per line.
 */
import { parseArgs } from 'node:util';
import { AccessLogGenerator } from '../../src/codecs/access-log.ts';
import { SyslogParser } from '../../src/codecs/syslog.ts';

const { values } = parseArgs({
  options: { lines: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } },
});
const count = Number(values.lines);
const PER_SECOND = 10_000;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const start = Math.floor(Date.now() / 1000) * 1000;
const generator = new AccessLogGenerator();
const lines: string[] = [];
const clock: number[] = [];
for (let i = 0; i < count; i++) {
  const ms = start + Math.floor(i / PER_SECOND) * 1000;
  const d = new Date(ms);
  const time = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  const header = `<134>${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${time}`;
  lines.push(`${header} web-${String(i % 300).padStart(3, '0')} apache: ${generator.line(i, ms)}`);
  clock.push(ms + (i % PER_SECOND) / 10);
}

const parser = new SyslogParser();
for (let round = 1; round <= Number(values.rounds); round++) {
  const before = process.cpuUsage();
  let parsed = 0;
  for (let i = 0; i < lines.length; i++) if (parser.parse(lines[i]!, clock[i]) !== undefined) parsed++;
  const cpu = process.cpuUsage(before);
  if (parsed !== lines.length) throw new Error(`${lines.length - parsed} lines not parsed: ${parser.error}`);
  const ns = ((cpu.user + cpu.system) * 1000) / parsed;
  process.stdout.write(
    `${JSON.stringify({ bench: 'syslog-parse', round, lines: parsed, ns_per_line: Math.round(ns) })}\n`,
  );
}
