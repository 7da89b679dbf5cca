import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FLUXO_BIN = fileURLToPath(new URL('../../bin/fluxo.js', import.meta.url));

/** Whether bin/fluxo.js will run dist/ (built after the newest source file) or the sources through tsx. */
export function fluxoRunsCompiled(root = ROOT): boolean {
  if (process.env.FLUXO_FROM_SOURCE === '1') return false;
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  try {
    return statSync(join(root, 'dist/.built')).mtimeMs >= newest(join(root, 'src'));
  } catch {
    return false;
  }
}

/** A server under test (Fluxo or the baseline): a child process whose CPU and memory the bench measures. */
export interface ServerUnderTest {
  readonly pid: number;
  /** The TCP port the 300 connections go to. */
  readonly port: number;
  /** Events delivered by the sink so far. */
  delivered(): Promise<number>;
  /** Open TCP connections as the server counts them. */
  openConnections(): Promise<number>;
  /** SIGTERM, then the exit code (null when killed by a signal). */
  stop(): Promise<number | null>;
  kill(): void;
  /** Standard error so far, for error reports. */
  readonly log: string;
  /** /metrics requests made (0 for a server without one). */
  readonly scrapes: number;
}

/** Collects a child's stderr and resolves when it matches a pattern; fails early when the child exits. */
class StderrWatcher {
  text = '';
  constructor(
    private readonly child: ChildProcess,
    echo: boolean,
  ) {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.text += d;
      if (echo) process.stderr.write(d);
    });
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.text.match(pattern);
      if (m) return m;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `process exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}:\n${this.text}`,
        );
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}:\n${this.text}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return once(child, 'exit').then(([code]) => code as number | null);
}

/**
 * `node [nodeArgs] bin/fluxo.js run -c <config>`, exactly as a user starts it. The source port and the API
 * address come from the start-up banner (both listen on port 0).
 */
export class FluxoServer implements ServerUnderTest {
  readonly pid: number;
  port = 0;
  private apiUrl = '';
  private readonly child: ChildProcess;
  private readonly stderr: StderrWatcher;
  private readonly exited: Promise<number | null>;
  /** /metrics requests made, reported so a reader can judge their (small) share of Fluxo's CPU. */
  scrapes = 0;
  private readonly connectionsMetric: string;

  constructor(
    configPath: string,
    private readonly sourceId: string,
    private readonly sinkId: string,
    options: {
      nodeArgs?: string[];
      cwd?: string;
      echo?: boolean;
      bin?: string;
      /** The node binary that runs Fluxo (default: the bench's own). */
      node?: string;
      /** The source's open-connections gauge (default: the socket source's). */
      connectionsMetric?: string;
    } = {},
  ) {
    const bin = options.bin ?? FLUXO_BIN;
    this.connectionsMetric = options.connectionsMetric ?? 'fluxo_socket_open_connections';
    this.child = spawn(options.node ?? process.execPath, [...(options.nodeArgs ?? []), bin, 'run', '-c', configPath], {
      cwd: options.cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.pid = this.child.pid!;
    this.stderr = new StderrWatcher(this.child, options.echo ?? false);
    this.exited = exitOf(this.child);
  }

  get log(): string {
    return this.stderr.text;
  }

  async started(): Promise<void> {
    const source = await this.stderr.waitFor(
      new RegExp(`source ${this.sourceId} \\([^)]*\\): listening on tcp [^\\s]+:(\\d+)`),
    );
    this.port = Number(source[1]);
    this.apiUrl = (await this.stderr.waitFor(/ {2}api (http:\/\/\S+)/))[1]!;
  }

  /** One /metrics scrape, as Prometheus text. */
  async metricsText(): Promise<string> {
    // A scrape that fails once on a loaded machine (seen: "fetch failed") is tried again before the run fails.
    for (let attempt = 1; ; attempt++) {
      this.scrapes++;
      try {
        return await (await fetch(`${this.apiUrl}/metrics`)).text();
      } catch (error) {
        if (attempt >= 3 || this.child.exitCode !== null || this.child.signalCode !== null) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** The sum of a metric's series whose labels include all of `labels`. */
  async metric(name: string, labels: Record<string, string> = {}, scraped?: string): Promise<number> {
    const text = scraped ?? (await this.metricsText());
    let sum = 0;
    let found = false;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
        found = true;
      }
    }
    return found ? sum : 0;
  }

  delivered(): Promise<number> {
    return this.metric('fluxo_component_sent_events_total', { component_id: this.sinkId });
  }

  openConnections(): Promise<number> {
    return this.metric(this.connectionsMetric, { component_id: this.sourceId });
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** bench/baseline-split-write.ts as a child: asked for its counters over stdin/stdout. */
export class BaselineServer implements ServerUnderTest {
  readonly pid: number;
  port = 0;
  readonly scrapes = 0;
  private readonly child: ChildProcess;
  private readonly stderr: StderrWatcher;
  private readonly exited: Promise<number | null>;
  private readonly replies: ((line: string) => void)[] = [];

  constructor(outFile: string, gzip: boolean, options: { nodeArgs?: string[]; echo?: boolean; node?: string } = {}) {
    const script = fileURLToPath(new URL('../baseline-split-write.ts', import.meta.url));
    const args = [...(options.nodeArgs ?? []), '--import', 'tsx', script, '--out', outFile];
    if (gzip) args.push('--gzip');
    this.child = spawn(options.node ?? process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.pid = this.child.pid!;
    this.stderr = new StderrWatcher(this.child, options.echo ?? false);
    this.exited = exitOf(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.replies.shift()?.(line));
  }

  get log(): string {
    return this.stderr.text;
  }

  async started(): Promise<void> {
    this.port = Number((await this.stderr.waitFor(/listening on tcp [^\s]+:(\d+)/))[1]);
  }

  private async stats(): Promise<{ lines_written: number; connections: number }> {
    const reply = new Promise<string>((resolve) => this.replies.push(resolve));
    this.child.stdin!.write('stats\n');
    return JSON.parse(await reply) as { lines_written: number; connections: number };
  }

  async delivered(): Promise<number> {
    return (await this.stats()).lines_written;
  }

  async openConnections(): Promise<number> {
    return (await this.stats()).connections;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export interface LoadReady {
  connections: number;
  pregenerated_lines: number;
  pregenerated_bytes: number;
  pregen_ms: number;
}

export interface LoadDone {
  first_byte_ms: number;
  done_ms: number;
  lines: number;
  bytes: number;
  cpu_user_s: number;
  cpu_sys_s: number;
}

/** bench/load-generator.ts as a child: ready (payload built, connections open) → go → done. */
export class LoadGenerator {
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly stderr: StderrWatcher;
  private readonly messages: Record<string, unknown>[] = [];
  private waiter: (() => void) | undefined;
  private readonly exited: Promise<number | null>;

  constructor(args: string[], options: { echo?: boolean } = {}) {
    const script = fileURLToPath(new URL('../load-generator.ts', import.meta.url));
    this.child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid!;
    this.stderr = new StderrWatcher(this.child, options.echo ?? true);
    this.exited = exitOf(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.messages.push(JSON.parse(line) as Record<string, unknown>);
      this.waiter?.();
    });
    this.exited.then(() => this.waiter?.());
  }

  private async next(key: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => m[key] === true);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `load generator exited (${this.child.exitCode ?? this.child.signalCode}) before "${key}":\n${this.stderr.text}`,
        );
      }
      const left = end - Date.now();
      if (left <= 0) throw new Error(`load generator: timed out waiting for "${key}"`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  ready(timeoutMs = 120_000): Promise<LoadReady> {
    return this.next('ready', timeoutMs) as unknown as Promise<LoadReady>;
  }

  go(): void {
    this.child.stdin!.write('go\n');
  }

  /** Resolves with the final report; check `finished` first to poll without waiting. */
  done(timeoutMs: number): Promise<LoadDone> {
    return this.next('done', timeoutMs) as unknown as Promise<LoadDone>;
  }

  get finished(): boolean {
    return this.messages.some((m) => m.done === true);
  }

  async exit(): Promise<number | null> {
    this.child.stdin!.end();
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
