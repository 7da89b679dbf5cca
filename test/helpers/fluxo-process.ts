import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

const BIN = new URL('../../bin/fluxo.js', import.meta.url).pathname;

export interface FluxoProcessOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdin?: 'pipe' | 'ignore';
}

/** Writes `yaml` to `<dir>/fluxo.yaml` and runs `fluxo run -c` on it; the process is killed when the test ends. */
export function runFluxo(
  t: { after: (fn: () => unknown) => void },
  dir: string,
  yaml: string,
  options: FluxoProcessOptions = {},
): FluxoProcess {
  const file = join(dir, 'fluxo.yaml');
  writeFileSync(file, yaml);
  const fluxo = new FluxoProcess(['run', '-c', file], options);
  t.after(() => fluxo.stop('SIGKILL'));
  return fluxo;
}

/** The repository's own fluxo.yaml, the config `npm start` runs. */
export const DEFAULT_CONFIG = new URL('../../fluxo.yaml', import.meta.url).pathname;

/**
 * `fluxo run` on the repository's own fluxo.yaml, its data under `<dir>/data` and every listener (the API
 * too) on a free port, through the variables the file reads; `env` adds or overrides. Killed when the test ends.
 */
export function runDefaultConfig(
  t: { after: (fn: () => unknown) => void },
  dir: string,
  env: Record<string, string> = {},
): FluxoProcess {
  const free = '127.0.0.1:0';
  const fluxo = new FluxoProcess(['run', '-c', DEFAULT_CONFIG], {
    cwd: dir,
    env: {
      FLUXO_DATA_DIR: join(dir, 'data'),
      FLUXO_API_ADDRESS: free,
      FLUXO_SYSLOG_ADDRESS: free,
      FLUXO_HTTP_ADDRESS: free,
      FLUXO_FORWARD_ADDRESS: free,
      FLUXO_OTLP_ADDRESS: free,
      ...env,
    },
  });
  t.after(() => fluxo.stop('SIGKILL'));
  return fluxo;
}

/** A `fluxo` CLI child process, as a user runs it. Collects stderr and parses the start-up banner. */
export class FluxoProcess {
  readonly child: ChildProcess;
  stderr = '';
  stdout = '';
  private readonly exited: Promise<number | null>;

  constructor(args: string[], options: FluxoProcessOptions = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      if (process.env.FLUXO_TEST_LOG) process.stderr.write(d);
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
    });
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
  }

  /** Waits until stderr matches `pattern`; fails with the output so far if the process exits first. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stderr.match(pattern);
      if (m) return m;
      if (this.child.exitCode !== null)
        throw new Error(`fluxo exited (${this.child.exitCode}) before ${pattern}:\n${this.stderr}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The banner line of a source: `source <id> (...): listening on tcp 127.0.0.1:PORT` → the port. */
  async port(sourceId: string): Promise<number> {
    const m = await this.waitFor(new RegExp(`source ${sourceId} \\([^)]*\\): listening on \\w+ [^\\s]+:(\\d+)`));
    return Number(m[1]);
  }

  async apiUrl(): Promise<string> {
    return (await this.waitFor(/api (http:\/\/\S+)/))[1]!;
  }

  /** A counter from /metrics, summed over series matching all `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await (await fetch(`${await this.apiUrl()}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
    }
    return sum;
  }

  /** Polls a metric until `predicate` holds. */
  async waitForMetric(
    name: string,
    labels: Record<string, string>,
    predicate: (v: number) => boolean,
    timeoutMs = 60_000,
  ): Promise<number> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.metric(name, labels);
      if (predicate(v)) return v;
      if (Date.now() > end)
        throw new Error(`timed out waiting for ${name}${JSON.stringify(labels)} (last ${v})\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.child.kill(signal)) throw new Error(`could not send ${signal} to fluxo (pid ${this.child.pid})`);
    this.stderr += `[test] sent ${signal}\n`;
  }

  /** Sends SIGTERM (unless told otherwise) and resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill(signal);
    return this.exited;
  }

  exit(): Promise<number | null> {
    return this.exited;
  }
}

/** Every file under `dir` (recursively) whose name does not start with `.` (readers skip in-progress files). */
export function visibleFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (!name.startsWith('.')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** All lines of the NDJSON files under `dir` (gzip by extension), each parsed: a torn line fails JSON.parse. */
export function readNdjsonDir(dir: string): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (const file of visibleFiles(dir)) {
    const raw = readFileSync(file);
    const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        throw new Error(`torn or invalid line in ${file}: ${line.slice(0, 200)}`);
      }
    }
  }
  return events;
}

/** Counts how often each number occurs; returns the missing and duplicated ones in [1, n]. */
export function checkSequence(numbers: number[], n: number): { missing: number[]; duplicated: number[] } {
  const seen = new Uint8Array(n + 1);
  const duplicated: number[] = [];
  for (const x of numbers) {
    if (x < 1 || x > n) continue;
    if (seen[x]) duplicated.push(x);
    seen[x] = 1;
  }
  const missing: number[] = [];
  for (let i = 1; i <= n; i++) if (!seen[i]) missing.push(i);
  return { missing, duplicated };
}
