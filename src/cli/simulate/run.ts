import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { AccessLogGenerator } from '../../codecs/access-log.ts';
import { FluxoError } from '../../core/errors.ts';
import { renderHtmlReport } from './html-report.ts';
import { type LineBatch, type Sender, type SenderTls, type SimulatedServer, TICK_MS } from './sender.ts';
import { type Protocol, SENDERS, unsupportedCombination } from './senders/index.ts';
import { type LatencyHistogram, SimulationCounters } from './stats.ts';
import { SequenceChecker, type VerifyReport } from './verify.ts';

export interface SimulateOptions {
  /** Absent: only --verify (an earlier run's output). */
  target?: { host: string; port: number };
  protocol: Protocol;
  /** syslog: `udp` for one message per datagram (best-effort). Default `tcp`. */
  transport?: 'tcp' | 'udp';
  /** Absent: plain text. */
  tls?: { caFile?: string; insecure: boolean };
  /** http, otlp, forward: compressed bodies or chunks. */
  gzip?: boolean;
  servers: number;
  /** Events per second, all servers together. */
  rate: number;
  durationMs: number;
  flushIntervalMs: number;
  /** How long, after the last line, acknowledgements and queued lines are waited for. */
  drainTimeoutMs: number;
  verifyDir?: string;
  verifyTimeoutMs: number;
  /** With --verify and no target: the run to check and how many numbers it sent. */
  runId?: string;
  expect?: number;
  seed?: number;
  json: boolean;
  /** Also write the report as an HTML page with charts to this file. */
  htmlFile?: string;
}

export interface Output {
  /** The report. */
  out: (text: string) => void;
  /** Progress and notes. */
  err: (text: string) => void;
  /** Whether `err` is a terminal (the progress line then rewrites itself). */
  interactive: boolean;
}

const PROGRESS_MS = 1000;
const PERCENTILES = [50, 90, 99, 99.9] as const;

/** Options the simulator cannot run with: printed as `fluxo simulate: <message>`, exit status 2. */
export class SimulationError extends FluxoError {
  constructor(message: string) {
    super('FLUXO_SIMULATE_INVALID_OPTIONS', message);
  }
}

/** Runs a simulation (and/or a verification); resolves with the exit code. */
export async function simulate(options: SimulateOptions, output: Output): Promise<number> {
  const runId = options.runId ?? randomBytes(4).toString('hex');
  let report: Record<string, unknown> = { run_id: runId };
  let exitCode = 0;
  let expected = options.expect;
  let counters: SimulationCounters | undefined;
  if (options.target !== undefined) {
    const sent = await play(options, runId, output);
    report = sent.report;
    counters = sent.counters;
    expected = sent.counters.generated;
    // Lines never handed to the target, or never acknowledged by it, are lines a real shipper would still hold.
    if (sent.unacknowledged > 0 || sent.counters.sentLines < sent.counters.generated) exitCode = 1;
  }
  if (options.verifyDir !== undefined) {
    const verify = await verifyOutput(options, runId, expected, output);
    report.verify = verify;
    if (verify.missing > 0) exitCode = 1;
  }
  const text = formatReport(report, options);
  output.out(options.json ? `${JSON.stringify(report)}\n` : text);
  if (options.htmlFile !== undefined) {
    try {
      writeFileSync(options.htmlFile, renderHtmlReport({ report, text, counters }));
      output.err(`simulate: HTML report written to ${options.htmlFile}\n`);
    } catch (error) {
      output.err(`simulate: cannot write the HTML report ${options.htmlFile}: ${(error as Error).message}\n`);
      exitCode = exitCode || 2;
    }
  }
  return exitCode;
}

async function play(options: SimulateOptions, runId: string, output: Output) {
  const target = options.target!;
  const factory = SENDERS[options.protocol];
  if (factory === undefined) {
    throw new SimulationError(`protocol ${options.protocol} has no simulator yet; use syslog, http or tcp`);
  }
  const transport = options.transport ?? 'tcp';
  const gzip = options.gzip === true;
  const unsupported = unsupportedCombination(options.protocol, transport, options.tls !== undefined, gzip);
  if (unsupported !== undefined) throw new SimulationError(unsupported);
  const counters = new SimulationCounters();
  const sender: Sender = factory(
    {
      host: target.host,
      port: target.port,
      servers: options.servers,
      flushIntervalMs: options.flushIntervalMs,
      runId,
      transport,
      tls: senderTls(options.tls),
      gzip,
    },
    counters,
  );
  const names = Array.from({ length: options.servers }, (_, i) => `web-${String(i + 1).padStart(3, '0')}`);
  const servers: SimulatedServer[] = await Promise.all(names.map((name, i) => sender.connect(i, name)));

  const generator = new AccessLogGenerator({ seed: options.seed });
  const runTag = `run=${runId}&seq=`;
  const perServer = options.rate / options.servers;
  const generatedPer = new Float64Array(options.servers);
  let seq = 0;
  const start = Date.now();
  const progress = new ProgressLine(output, options, counters, start, () => backlog(servers), !!sender.acknowledgement);

  /** Hands every server the lines it wrote up to `elapsed` ms into the run. */
  const tick = (elapsed: number) => {
    const now = start + elapsed;
    for (let i = 0; i < servers.length; i++) {
      // Each server's phase is offset so that they do not all write on the same millisecond.
      const due = Math.floor((perServer * elapsed) / 1000 + i / servers.length) - generatedPer[i]!;
      if (due <= 0) continue;
      generatedPer[i]! += due;
      const lines: string[] = new Array(due);
      for (let k = 0; k < due; k++) lines[k] = generator.line(++seq, now).replace('seq=', runTag);
      const batch: LineBatch = { lines, at: now };
      servers[i]!.send(batch);
    }
    counters.generated = seq;
  };

  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = Date.now() - start;
      if (elapsed >= options.durationMs) {
        tick(options.durationMs);
        clearInterval(timer);
        resolve();
      } else {
        tick(elapsed);
      }
    }, TICK_MS);
  });
  const sendingEnded = Date.now();
  output.err(
    `${progress.clear()}simulate: ${counters.generated} lines written by ${options.servers} servers; ` +
      `waiting up to ${options.drainTimeoutMs / 1000}s for ${sender.acknowledgement ? 'acknowledgements' : 'the last writes'}\n`,
  );
  const deadline = Date.now() + options.drainTimeoutMs;
  await Promise.all(servers.map((s) => s.close(deadline)));
  progress.stop();
  const finished = Date.now();

  const acknowledged = sender.acknowledgement !== undefined;
  const unacknowledged = acknowledged ? counters.generated - counters.acknowledgedLines : 0;
  const latency = acknowledged ? counters.ackLatency : counters.sendLatency;
  const report: Record<string, unknown> = {
    run_id: runId,
    protocol: options.protocol,
    transport,
    tls: options.tls !== undefined,
    gzip,
    target: `${target.host}:${target.port}`,
    servers: options.servers,
    rate_target: options.rate,
    duration_ms: options.durationMs,
    generated: counters.generated,
    sent: counters.sentLines,
    acknowledged: acknowledged ? counters.acknowledgedLines : null,
    acknowledgement: sender.acknowledgement ?? null,
    no_acknowledgement_note: acknowledged ? null : (sender.noAcknowledgementNote ?? null),
    unacknowledged: acknowledged ? unacknowledged : null,
    not_sent: counters.generated - counters.sentLines,
    errors: counters.errors,
    error_reasons: Object.fromEntries(counters.errorReasons),
    rate_achieved: Math.round(counters.sentLines / (Math.max(options.durationMs, sendingEnded - start) / 1000)),
    drain_ms: finished - sendingEnded,
    latency_kind: acknowledged ? 'send_to_acknowledgement' : 'send_side',
    latency_ms: percentiles(latency),
  };
  return { report, counters, unacknowledged };
}

function senderTls(tls: SimulateOptions['tls']): SenderTls | undefined {
  if (tls === undefined) return undefined;
  if (tls.caFile === undefined) return { insecure: tls.insecure };
  try {
    return { ca: readFileSync(tls.caFile), insecure: tls.insecure };
  } catch (error) {
    throw new SimulationError(`cannot read --tls-ca ${tls.caFile}: ${(error as Error).message}`);
  }
}

/** `syslog`, `syslog/udp`, `http+tls+gzip`: how the run is named in its progress line and report. */
function flavour(options: SimulateOptions): string {
  let name: string = options.protocol;
  if (options.transport === 'udp') name += '/udp';
  if (options.tls) name += '+tls';
  if (options.gzip) name += '+gzip';
  return name;
}

async function verifyOutput(
  options: SimulateOptions,
  runId: string,
  expected: number | undefined,
  output: Output,
): Promise<VerifyReport> {
  // Without a target and without --run-id every run's lines count: numbers repeat across runs.
  const checker = new SequenceChecker(
    options.verifyDir!,
    options.target || options.runId ? runId : undefined,
    expected,
  );
  const deadline = Date.now() + options.verifyTimeoutMs;
  let notified = false;
  for (;;) {
    await checker.scan();
    const report = checker.report();
    if (report.missing === 0 || Date.now() >= deadline) return report;
    if (!notified) {
      notified = true;
      output.err(
        `verify: ${report.missing} of ${report.expected} numbers not in ${options.verifyDir} yet; the file sink makes ` +
          `files visible when it closes them (idle_timeout, max_file_age, or shutdown). Waiting up to ` +
          `${Math.round(options.verifyTimeoutMs / 1000)}s…\n`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
  }
}

function backlog(servers: SimulatedServer[]): number {
  let n = 0;
  for (const s of servers) n += s.backlog;
  return n;
}

function percentiles(h: LatencyHistogram): Record<string, number> | null {
  if (h.count === 0) return null;
  const out: Record<string, number> = {};
  for (const p of PERCENTILES) out[`p${p}`] = round(h.percentile(p)!);
  out.max = round(h.percentile(100)!);
  return out;
}

function round(ms: number): number {
  return ms >= 100 ? Math.round(ms) : Math.round(ms * 100) / 100;
}

class ProgressLine {
  private readonly timer: NodeJS.Timeout;
  private lastSent = 0;
  private lastAt: number;
  private shown = false;

  constructor(
    private readonly output: Output,
    private readonly options: SimulateOptions,
    private readonly counters: SimulationCounters,
    private readonly start: number,
    private readonly backlog: () => number,
    private readonly acknowledged: boolean,
  ) {
    this.lastAt = start;
    // Non-interactive output (CI logs) gets a line every 5 s rather than one per second.
    this.timer = setInterval(() => this.show(), output.interactive ? PROGRESS_MS : 5 * PROGRESS_MS);
  }

  private show(): void {
    const now = Date.now();
    const c = this.counters;
    const rate = ((c.sentLines - this.lastSent) * 1000) / Math.max(1, now - this.lastAt);
    this.lastSent = c.sentLines;
    this.lastAt = now;
    const elapsed = Math.min(now - this.start, this.options.durationMs) / 1000;
    const text =
      `[${elapsed.toFixed(0)}s/${this.options.durationMs / 1000}s] ${flavour(this.options)} ` +
      `rate ${fmt(Math.round(rate))}/s  sent ${fmt(c.sentLines)}  ` +
      `acked ${this.acknowledged ? fmt(c.acknowledgedLines) : 'n/a'}  errors ${fmt(c.errors)}  backlog ${fmt(this.backlog())}`;
    if (this.output.interactive) {
      this.output.err(`\r\x1b[2K${text}`);
      this.shown = true;
    } else {
      this.output.err(`${text}\n`);
    }
  }

  /** Returns what ends the progress line, so the next message starts on a fresh line. */
  clear(): string {
    if (!this.shown) return '';
    this.shown = false;
    return '\r\x1b[2K';
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.shown) this.output.err('\r\x1b[2K');
  }
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function formatReport(report: Record<string, unknown>, options: SimulateOptions): string {
  const lines: string[] = [];
  if (report.protocol !== undefined) {
    const r = report as Record<string, never>;
    lines.push(
      `fluxo simulate: ${flavour(options)} → ${r.target}, ${r.servers} servers, ${fmt(r.rate_target)} events/s for ` +
        `${options.durationMs / 1000}s (run ${r.run_id})`,
      `  generated       ${fmt(r.generated)}`,
      `  sent            ${fmt(r.sent)}${r.not_sent ? `  (${fmt(r.not_sent)} never sent)` : ''}`,
    );
    if (r.acknowledged === null) {
      const note = r.no_acknowledgement_note ?? `${r.protocol} has no acknowledgement (use --verify to check delivery)`;
      lines.push(`  acknowledged    n/a: ${note}`);
    } else {
      lines.push(
        `  acknowledged    ${fmt(r.acknowledged)} (${r.acknowledgement})${r.unacknowledged ? `  ${fmt(r.unacknowledged)} NOT acknowledged` : ''}`,
      );
    }
    lines.push(`  rate achieved   ${fmt(r.rate_achieved)} events/s`);
    const reasons = Object.entries(report.error_reasons as Record<string, number>)
      .map(([k, v]) => `${k}: ${fmt(v)}`)
      .join(', ');
    lines.push(`  errors          ${fmt(r.errors)}${reasons ? ` (${reasons})` : ''}`);
    const l = report.latency_ms as Record<string, number> | null;
    const what =
      report.latency_kind === 'send_side'
        ? 'latency (send side: written by the server → handed to the kernel)'
        : 'latency (send → acknowledgement)';
    lines.push(
      l === null
        ? `  ${what}: no samples`
        : `  ${what}: ${Object.entries(l)
            .map(([k, v]) => `${k} ${v} ms`)
            .join('  ')}`,
    );
  }
  const v = report.verify as VerifyReport | undefined;
  if (v !== undefined) {
    lines.push(
      `verify ${v.dir}${v.run_id ? ` (run ${v.run_id})` : ''}: ${fmt(v.found)} lines in ${v.files} files, ` +
        `${fmt(v.expected)} expected`,
      `  missing         ${fmt(v.missing)}${v.missing ? `  e.g. ${v.missing_sample.join(', ')}` : ''}`,
      `  duplicated      ${fmt(v.duplicated)}${v.duplicated ? `  e.g. ${v.duplicated_sample.join(', ')} (at-least-once: same _id, dropped downstream)` : ''}`,
    );
    for (const u of v.unreadable_files) lines.push(`  unreadable      ${u}`);
    lines.push(v.missing === 0 ? '  OK: every event arrived' : '  FAILED: events are missing');
  }
  return `${lines.join('\n')}\n`;
}
