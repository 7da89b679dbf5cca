import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../core/units.ts';
import { SimulationError, simulate } from './simulate/run.ts';
import { PROTOCOLS, type Protocol, TRANSPORTS } from './simulate/senders/index.ts';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function durationMs(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError('expected a duration like 500ms, 30s, 5m');
  return ms;
}

function hostPort(value: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) === 0 || Number(m[2]) > 65535) throw new InvalidArgumentError('expected HOST:PORT');
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port: Number(m[2]) };
}

interface CliOptions {
  target?: { host: string; port: number };
  protocol: Protocol;
  transport: 'tcp' | 'udp';
  tls?: boolean;
  tlsCa?: string;
  tlsInsecure?: boolean;
  gzip?: boolean;
  servers: number;
  rate: number;
  duration: number;
  flushInterval: number;
  drainTimeout: number;
  verify?: string;
  verifyTimeout: number;
  runId?: string;
  expect?: number;
  seed?: number;
  json?: boolean;
  html?: string;
}

/** `fluxo simulate`: plays web servers shipping access logs to a running Fluxo, then checks what arrived. */
export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description('play web servers sending numbered access-log lines to Fluxo; --verify checks the output')
    .addOption(new Option('--target <host:port>', 'where Fluxo listens, e.g. 127.0.0.1:5514').argParser(hostPort))
    .addOption(new Option('--protocol <protocol>', 'how the servers ship').choices(PROTOCOLS).default('tcp'))
    .addOption(
      new Option(
        '--transport <transport>',
        'syslog: tcp (octet-counted) or udp (one message per datagram, best-effort)',
      )
        .choices(TRANSPORTS)
        .default('tcp'),
    )
    .addOption(new Option('--tls', 'connect with TLS (syslog, tcp, forward, http, otlp)'))
    .addOption(new Option('--tls-ca <file>', 'with --tls: PEM CA bundle to trust instead of the system store'))
    .addOption(new Option('--tls-insecure', 'with --tls: do not verify the certificate (test targets only)'))
    .addOption(new Option('--gzip', 'http, otlp: Content-Encoding: gzip bodies; forward: compressed chunks'))
    .addOption(
      new Option('--servers <n>', 'simulated web servers, one connection each').argParser(positiveInt).default(300),
    )
    .addOption(
      new Option('--rate <events/s>', 'lines per second, all servers together')
        .argParser(positiveNumber)
        .default(10_000),
    )
    .addOption(new Option('--duration <duration>', 'how long to send').argParser(durationMs).default(60_000, '60s'))
    .addOption(
      new Option('--flush-interval <duration>', 'http: how often each server POSTs what it buffered')
        .argParser(durationMs)
        .default(1000, '1s'),
    )
    .addOption(
      new Option('--drain-timeout <duration>', 'after the last line, how long to wait for sends and acknowledgements')
        .argParser(durationMs)
        .default(30_000, '30s'),
    )
    .addOption(
      new Option(
        '--verify <dir>',
        "read the file sink's output under DIR back (NDJSON, text, .gz or Parquet): report missing and duplicated lines",
      ),
    )
    .addOption(
      new Option('--verify-timeout <duration>', 'how long --verify waits for files to become visible')
        .argParser(durationMs)
        .default(120_000, '2m'),
    )
    .addOption(new Option('--run-id <id>', 'verify an earlier run (its id is in the report); default: a new random id'))
    .addOption(
      new Option('--expect <n>', 'with --verify and no --target: how many lines the run sent').argParser(positiveInt),
    )
    .addOption(
      new Option('--seed <n>', 'seed of the access-log generator (same seed, same lines)').argParser(positiveInt),
    )
    .addOption(new Option('--json', 'print the report as one JSON object'))
    .addOption(
      new Option(
        '--html <file>',
        'also write the report as an HTML page: send rate and latency over time, latency histogram, verdict',
      ),
    )
    .addHelpText(
      'after',
      `
Every line carries its run and sequence number in the request target (GET /cart?run=3f9a1c2e&seq=42),
so --verify can tell which lines of this run arrived: missing ones make the exit code 1.

Protocols: syslog (RFC 5424, octet-counted over TCP or TLS; --transport udp: one message per datagram),
http (NDJSON POSTs with Idempotency-Key, retried on 429/503), forward (Fluent Bit's forward output with
acknowledged chunks), otlp (OTLP/HTTP JSON exports), tcp (plain lines).
http, forward and otlp report latency from send to the acknowledgement; syslog and tcp have none, so their
report gives send-side figures and --verify is the proof of delivery. UDP is best-effort: datagrams the
target cannot take are lost without a trace, and --verify counts them.

Examples:
  fluxo simulate --target 127.0.0.1:5514 --protocol syslog --duration 30s --verify data/master
  fluxo simulate --target 127.0.0.1:5514 --protocol syslog --transport udp --rate 1000 --verify data/master
  fluxo simulate --target 127.0.0.1:6514 --protocol syslog --tls --tls-ca ca.crt
  fluxo simulate --target 127.0.0.1:8080 --protocol http --gzip --servers 300 --rate 10000 --duration 60s
  fluxo simulate --verify data/master --run-id 3f9a1c2e --expect 600000
  fluxo simulate --target 127.0.0.1:8080 --protocol http --duration 30s --html report.html`,
    )
    .action(async (opts: CliOptions) => {
      if (opts.target === undefined && opts.verify === undefined) {
        process.stderr.write('fluxo simulate: give --target HOST:PORT to send, --verify DIR to check, or both\n');
        process.exitCode = 2;
        return;
      }
      if ((opts.tlsCa !== undefined || opts.tlsInsecure) && !opts.tls) {
        process.stderr.write('fluxo simulate: --tls-ca and --tls-insecure go with --tls\n');
        process.exitCode = 2;
        return;
      }
      if (opts.runId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(opts.runId)) {
        process.stderr.write('fluxo simulate: --run-id takes letters, digits, _ and -\n');
        process.exitCode = 2;
        return;
      }
      try {
        process.exitCode = await simulate(
          {
            target: opts.target,
            protocol: opts.protocol,
            transport: opts.transport,
            tls: opts.tls ? { caFile: opts.tlsCa, insecure: opts.tlsInsecure === true } : undefined,
            gzip: opts.gzip === true,
            servers: opts.servers,
            rate: opts.rate,
            durationMs: opts.duration,
            flushIntervalMs: opts.flushInterval,
            drainTimeoutMs: opts.drainTimeout,
            verifyDir: opts.verify,
            verifyTimeoutMs: opts.verifyTimeout,
            runId: opts.runId,
            expect: opts.expect,
            seed: opts.seed,
            json: opts.json === true,
            htmlFile: opts.html,
          },
          {
            out: (text) => process.stdout.write(text),
            err: (text) => process.stderr.write(text),
            interactive: process.stderr.isTTY === true,
          },
        );
      } catch (error) {
        if (!(error instanceof SimulationError)) throw error;
        process.stderr.write(`fluxo simulate: ${error.message}\n`);
        process.exitCode = 2;
      }
    });
}
