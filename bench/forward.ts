/**
 * The forward source at full speed: `fluxo run` with a `forward` source, fed by 300 connections of Fluent Bit-like
 * agents sending PackedForward messages of access-log records and waiting for each chunk's ack, to a blackhole sink
 * and to a file sink. One JSON line per scenario on stdout, a summary on stderr.
 *
 *   node --import tsx bench/forward.ts                          both scenarios, 3,000,000 events each
 *   node --import tsx bench/forward.ts --scenario forward-blackhole --events 5000000 --repeat 3
 *   node --import tsx bench/forward.ts --entries 200 --window 4 --compression gzip
 *
 * The load generator is this file in another process (`--load`), so its CPU is not Fluxo's. It pre-encodes a few
 * dozen distinct messages and cycles through them, each sent with a fresh chunk id; a connection keeps `--window`
 * messages waiting for their acks. The run ends when every chunk was acknowledged, i.e. delivered by the sink.
 * `events_per_cpu_s` (events per CPU-second of the Fluxo process) is the figure the issue aims at (≥ 300,000).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { AccessLogGenerator } from '../src/codecs/access-log.ts';
import { EventTime, encodePackedForward, forwardUnpackr, MsgpackScanner, packEntries } from '../src/codecs/forward.ts';
import { FluxoServer, ROOT } from './lib/children.ts';
import { countOutputLines } from './lib/count-lines.ts';
import { cpuDelta, cpuTimes, machine, nowMs, vmMiB } from './lib/proc.ts';
import { openSockets } from './lib/sockets.ts';

const { values } = parseArgs({
  options: {
    load: { type: 'boolean', default: false },
    port: { type: 'string' },
    scenario: { type: 'string', multiple: true },
    events: { type: 'string', default: '3000000' },
    connections: { type: 'string', default: '300' },
    entries: { type: 'string', default: '500' },
    window: { type: 'string', default: '2' },
    compression: { type: 'string', default: 'none' },
    repeat: { type: 'string', default: '1' },
    'node-arg': { type: 'string', multiple: true },
    keep: { type: 'boolean', default: false },
    echo: { type: 'boolean', default: false },
  },
});

const SCENARIOS: Record<string, string> = {
  'forward-blackhole': '    type: blackhole',
  'forward-file': '    type: file\n    path: "{DIR}/out/part.ndjson"\n    max_file_size: 1GiB',
};

// --- the load generator (child) ------------------------------------------------------------------------------------

async function load(): Promise<void> {
  const port = Number(values.port);
  const connections = Number(values.connections);
  const perMessage = Number(values.entries);
  const window = Number(values.window);
  const gzip = values.compression === 'gzip';
  const messages = Math.ceil(Number(values.events) / perMessage);
  // Distinct payloads, cycled: realistic records without holding millions of them.
  const generator = new AccessLogGenerator({ format: 'nginx_combined', seed: 42 });
  const baseMs = Date.UTC(2025, 2, 5, 14);
  const payloads: Buffer[] = [];
  for (let p = 0; p < 32; p++) {
    const entries: unknown[] = [];
    for (let i = 0; i < perMessage; i++) {
      const ms = baseMs + p * perMessage + i;
      entries.push([EventTime.fromMs(ms), { log: generator.line(undefined, ms), stream: 'stdout' }]);
    }
    const packed = packEntries(entries);
    payloads.push(gzip ? gzipSync(packed) : Buffer.from(packed));
  }
  const sockets = await openSockets(port, connections);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const stdin = createInterface({ input: process.stdin });
  for await (const line of stdin) if (line.trim() === 'go') break;

  const cpu0 = process.cpuUsage();
  const firstByteMs = nowMs();
  let next = 0;
  let bytes = 0;
  let acked = 0;
  await Promise.all(
    sockets.map(
      (socket, c) =>
        new Promise<void>((resolve, reject) => {
          const scanner = new MsgpackScanner(1024, 'any');
          let inFlight = 0;
          let pending: Buffer = Buffer.alloc(0);
          let seq = 0;
          const send = () => {
            while (inFlight < window && next < messages) {
              const m = next++;
              const chunk = `c${c}-${seq++}`;
              const frame = encodePackedForward('web.access', payloads[m % payloads.length]!, perMessage, chunk, gzip);
              bytes += frame.length;
              inFlight++;
              socket.write(frame);
            }
            if (inFlight === 0) {
              socket.end();
              resolve();
            }
          };
          socket.on('data', (d: Buffer) => {
            pending = pending.length ? Buffer.concat([pending, d]) : d;
            let start = 0;
            for (;;) {
              const end = scanner.scan(pending, start, pending.length);
              if (end < 0) break;
              const reply = forwardUnpackr().unpack(pending.subarray(start, end)) as { ack?: string };
              if (typeof reply.ack === 'string') {
                inFlight--;
                acked += perMessage;
              }
              start = end;
            }
            pending = pending.subarray(start);
            send();
          });
          socket.on('error', reject);
          send();
        }),
    ),
  );
  const doneMs = nowMs();
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `${JSON.stringify({ done: true, first_byte_ms: firstByteMs, done_ms: doneMs, events: acked, bytes, cpu_s: (cpu.user + cpu.system) / 1e6 })}\n`,
  );
  process.exit(0);
}

// --- the parent -------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const names = (values.scenario ?? Object.keys(SCENARIOS)).flatMap((s) => s.split(','));
  const m = machine();
  process.stderr.write(
    `forward bench: ${m.nproc} CPUs (${m.cpu}), Node ${m.node}; ${values.connections} connections, ` +
      `${values.events} events, ${values.entries} entries per message, window ${values.window}, compression ${values.compression}\n`,
  );
  let failed = 0;
  for (const name of names) {
    if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}: ${Object.keys(SCENARIOS).join(', ')}`);
    for (let run = 1; run <= Number(values.repeat); run++) {
      const result = await runOnce(name, run);
      if (!result.ok) failed++;
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.stderr.write(
        result.ok
          ? `${name} #${run}: ${fmt(result.events as number)} events in ${result.wall_s} s = ${fmt(result.events_per_s as number)} ev/s ` +
              `(${result.mib_per_s} MiB/s); Fluxo CPU ${result.cpu_s} s = ${fmt(result.events_per_cpu_s as number)} ev/CPU-s; ` +
              `peak RSS ${result.peak_rss_mib} MiB; load generator CPU ${result.loadgen_cpu_s} s\n`
          : `${name} #${run}: FAILED: ${result.error}\n`,
      );
    }
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

async function runOnce(name: string, run: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), `fluxo-bench-${name}-`));
  const config = join(dir, 'fluxo.yaml');
  writeFileSync(
    config,
    `# generated by bench/forward.ts
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout: 60s
sources:
  fwd: { type: forward, address: 127.0.0.1:0 }
sinks:
  out:
    inputs: [fwd]
${SCENARIOS[name]!.replace('{DIR}', dir)}
`,
  );
  const server = new FluxoServer(config, 'fwd', 'out', {
    nodeArgs: values['node-arg'] ?? [],
    cwd: ROOT,
    echo: values.echo,
  });
  let child: ChildProcess | undefined;
  try {
    await server.started();
    const script = fileURLToPath(import.meta.url);
    child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        script,
        '--load',
        '--port',
        String(server.port),
        '--connections',
        String(values.connections),
        '--events',
        String(values.events),
        '--entries',
        String(values.entries),
        '--window',
        String(values.window),
        '--compression',
        String(values.compression),
      ],
      { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: child.stdout! });
    const messages: Record<string, unknown>[] = [];
    const waiters: (() => void)[] = [];
    lines.on('line', (l) => {
      messages.push(JSON.parse(l) as Record<string, unknown>);
      for (const w of waiters.splice(0)) w();
    });
    const next = async (key: string) => {
      for (;;) {
        const i = messages.findIndex((msg) => msg[key] === true);
        if (i >= 0) return messages.splice(i, 1)[0]!;
        if (child!.exitCode !== null) throw new Error(`load generator exited before "${key}"`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 1000);
        });
      }
    };
    await next('ready');
    const cpu0 = cpuTimes(server.pid);
    child.stdin!.write('go\n');
    const done = await next('done');
    const cpu = cpuDelta(cpu0, cpuTimes(server.pid));
    const peakRss = vmMiB(server.pid, 'VmHWM');
    const events = done.events as number;
    const wallS = ((done.done_ms as number) - (done.first_byte_ms as number)) / 1000;
    const cpuS = cpu.user + cpu.sys;
    const delivered = await server.delivered();
    const exitCode = await server.stop();
    const problems: string[] = [];
    if (delivered < events) problems.push(`sink delivered ${delivered} < acknowledged ${events}`);
    if (exitCode !== 0) problems.push(`fluxo exited with ${exitCode}`);
    let linesInOutput: number | undefined;
    if (name === 'forward-file') {
      linesInOutput = (await countOutputLines(join(dir, 'out'))).lines;
      if (linesInOutput !== events) problems.push(`${linesInOutput} lines written ≠ ${events} acknowledged`);
    }
    return {
      scenario: name,
      run,
      ok: problems.length === 0,
      ...(problems.length ? { error: problems.join('; ') } : {}),
      events,
      connections: Number(values.connections),
      entries_per_message: Number(values.entries),
      window: Number(values.window),
      compression: values.compression,
      bytes_in: done.bytes,
      wall_s: round(wallS, 3),
      events_per_s: Math.round(events / wallS),
      mib_per_s: round((done.bytes as number) / 1024 / 1024 / wallS),
      cpu_s: round(cpuS),
      cpu_user_s: round(cpu.user),
      cpu_sys_s: round(cpu.sys),
      events_per_cpu_s: Math.round(events / cpuS),
      cpu_cores: round(cpuS / wallS),
      peak_rss_mib: round(peakRss, 1),
      loadgen_cpu_s: round(done.cpu_s as number),
      ...(linesInOutput !== undefined ? { lines_in_output: linesInOutput } : {}),
      node: process.version,
      at: new Date().toISOString(),
    };
  } catch (error) {
    return { scenario: name, run, ok: false, error: (error as Error).message, log_tail: server.log.slice(-2000) };
  } finally {
    child?.kill('SIGKILL');
    server.kill();
    if (child && child.exitCode === null) await once(child, 'exit').catch(() => {});
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

if (values.load) await load();
else await main();
