/**
 * Peak RSS of Fluxo under each hostile input of issue 13 (decompression and fan-out bombs, deep nesting,
 * slowloris), with the default limits. Each attack runs against a fresh `fluxo run` (http, otlp, forward and
 * syslog sources → blackhole), so VmHWM, the process's high-water mark, is that attack's own peak. One JSON
 * line per attack: the peak and idle RSS in MiB, and what the attacker was answered.
 *
 *   node --import tsx bench/hostile-input.ts            every attack
 *   node --import tsx bench/hostile-input.ts --attack forward-packed-20M
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack } from 'msgpackr';
import { request } from 'undici';
import { freePort } from '../test/helpers/net.ts';
import { FLUXO_BIN, ROOT } from './lib/children.ts';
import { machine, vmMiB } from './lib/proc.ts';

interface Ports {
  http: number;
  otlp: number;
  forward: number;
  syslog: number;
}

async function startFluxo(): Promise<{ child: ChildProcess; ports: Ports; dir: string }> {
  const ports = { http: await freePort(), otlp: await freePort(), forward: await freePort(), syslog: await freePort() };
  const dir = mkdtempSync(join(tmpdir(), 'fluxo-hostile-'));
  const config = `data_dir: ${dir}/data
api: { enabled: false }
sources:
  http: { type: http, address: 127.0.0.1:${ports.http} }
  otlp: { type: otlp, address: 127.0.0.1:${ports.otlp} }
  forward: { type: forward, address: 127.0.0.1:${ports.forward}, heartbeat_udp: false }
  syslog: { type: syslog, mode: tcp, address: 127.0.0.1:${ports.syslog} }
sinks:
  out: { type: blackhole, inputs: [http, otlp, forward, syslog] }
`;
  writeFileSync(join(dir, 'fluxo.yaml'), config);
  const child = spawn(process.execPath, [FLUXO_BIN, 'run', '-c', join(dir, 'fluxo.yaml')], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    log += d;
  });
  const deadline = Date.now() + 30_000;
  while (!/running|started|listening/i.test(log)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`fluxo did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500));
  return { child, ports, dir };
}

const post = async (url: string, body: Buffer | string, headers: Record<string, string>) => {
  try {
    const res = await request(url, { method: 'POST', body, headers, headersTimeout: 120_000, bodyTimeout: 120_000 });
    await res.body.text();
    return String(res.statusCode);
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
};

/** Sends `frame` on a new forward connection; resolves with what the server did (ack, close). */
async function sendForward(port: number, frame: Buffer): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(frame);
  let got = '';
  socket.on('data', (d) => {
    got += d.toString('latin1');
  });
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 60_000))]);
  socket.destroy();
  return got.includes('ack') ? 'acked' : 'closed without an ack';
}

/** Protobuf length-delimited field `no` holding `body`. */
function lengthField(no: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  len.push(n);
  return Buffer.concat([Buffer.from([(no << 3) | 2, ...len]), body]);
}

const attacks: Record<string, (ports: Ports) => Promise<string>> = {
  // 5M short lines in ~10 KB of gzip, four at once.
  'http-gzip-5M-lines-x4': async (p) => {
    const bomb = gzipSync(Buffer.from('a\n'.repeat(5_000_000)), { level: 9 });
    const headers = { 'content-type': 'text/plain', 'content-encoding': 'gzip' };
    const answers = await Promise.all([1, 2, 3, 4].map(() => post(`http://127.0.0.1:${p.http}/`, bomb, headers)));
    return answers.join(',');
  },
  // 200 MiB of one byte in ~200 KB of gzip, four at once.
  'http-gzip-200MiB-x4': async (p) => {
    const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024, 0x61), { level: 9 });
    const headers = { 'content-type': 'text/plain', 'content-encoding': 'gzip' };
    const answers = await Promise.all([1, 2, 3, 4].map(() => post(`http://127.0.0.1:${p.http}/`, bomb, headers)));
    return answers.join(',');
  },
  'http-json-100k-deep': async (p) => {
    const depth = 100_000;
    const body = `${'{"a":'.repeat(depth - 1)}{"a":1}${'}'.repeat(depth - 1)}`;
    return post(`http://127.0.0.1:${p.http}/`, body, { 'content-type': 'application/json' });
  },
  // 8M empty log records: ExportLogsServiceRequest{resource_logs{scope_logs{log_records × 8M}}}, gzipped.
  'otlp-gzip-8M-records': async (p) => {
    const records = Buffer.alloc(8_000_000 * 2);
    for (let i = 0; i < records.length; i += 2) records[i] = 0x12;
    const body = gzipSync(lengthField(1, lengthField(2, records)), { level: 9 });
    const headers = { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' };
    return post(`http://127.0.0.1:${p.otlp}/v1/logs`, body, headers);
  },
  // CompressedPackedForward whose gzip holds 20M empty entries [0, {}] (60 MB decoded).
  'forward-packed-20M': async (p) => {
    const entry = Buffer.from([0x92, 0x00, 0x80]);
    const entries = Buffer.alloc(entry.length * 20_000_000);
    for (let i = 0; i < entries.length; i += 3) entry.copy(entries, i);
    const frame = pack(['tag', gzipSync(entries, { level: 9 }), { compressed: 'gzip', chunk: 'c1' }]);
    return sendForward(p.forward, frame);
  },
  // 1,100 connections sending a header byte every 5 s; then one legitimate request.
  'http-slowloris-1100': async (p) => {
    const sockets: Socket[] = [];
    for (let i = 0; i < 1100; i++) {
      const s = connect({ host: '127.0.0.1', port: p.http });
      s.on('error', () => {});
      s.write('POST / HTTP/1.1\r\nHost: x\r\n');
      sockets.push(s);
    }
    const trickle = setInterval(() => {
      for (const s of sockets) if (s.writable) s.write('X');
    }, 5_000);
    await new Promise((r) => setTimeout(r, 12_000));
    const legit = await post(`http://127.0.0.1:${p.http}/`, '{"message":"legit"}', {
      'content-type': 'application/json',
    });
    clearInterval(trickle);
    for (const s of sockets) s.destroy();
    return `legitimate request: ${legit}`;
  },
};

const { values } = parseArgs({ options: { attack: { type: 'string', multiple: true } } });
const chosen = values.attack ?? Object.keys(attacks);
console.error(JSON.stringify({ machine: machine() }));
for (const name of chosen) {
  const attack = attacks[name];
  if (!attack) throw new Error(`unknown attack ${name}: ${Object.keys(attacks).join(', ')}`);
  const { child, ports, dir } = await startFluxo();
  const idle = vmMiB(child.pid!, 'VmRSS');
  const answered = await attack(ports);
  await new Promise((r) => setTimeout(r, 1_000));
  const alive = child.exitCode === null;
  const peak = alive ? vmMiB(child.pid!, 'VmHWM') : Number.NaN;
  child.kill('SIGKILL');
  await once(child, 'exit').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ attack: name, answered, alive, idle_rss_mib: idle, peak_rss_mib: peak }));
}
