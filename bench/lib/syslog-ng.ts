/**
 * Debian's syslog-ng as the bench's yardstick, run beside rsyslog (which the tests need, and which
 * syslog-ng-core conflicts with as a package) without installing it:
 *
 * 1. setupSyslogNg(): `apt-get download syslog-ng-core` and `dpkg -x` into a cache directory
 *    ($FLUXO_BENCH_DEPS or /tmp/fluxo-bench-syslog-ng); the shared libraries it links against come from apt
 *    (`apt-get install` of the `lib*` packages it depends on that are missing, then `ldd` must find them all).
 * 2. SyslogNgServer: that binary with LD_LIBRARY_PATH and --module-path into the unpacked tree, and its own
 *    config, persist, pid and control files in the run's temporary directory. /etc and the system logger
 *    are never touched.
 *
 * It implements the ServerUnderTest of bench/lib/children.ts, so the same load generator and measurement code
 * (CPU from /proc after start-up, VmHWM) drive it. It has no /metrics: "delivered" is the count of lines in
 * its output file, read incrementally by the bench process (whose CPU is not counted).
 */

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../test/helpers/net.ts';
import type { ServerUnderTest } from './children.ts';

export const SYSLOG_NG_PACKAGE = 'syslog-ng-core';

export interface SyslogNgInstall {
  /** Where the package was unpacked (`dpkg -x`). */
  root: string;
  binary: string;
  ctl: string;
  libDir: string;
  moduleDir: string;
  /** e.g. `3.38.1-5+deb12u1`, from the package. */
  version: string;
  /** Library packages this setup installed from apt (empty when they were all present). */
  installedLibraries: string[];
  /** The unpacked package has the disk-buffer module (`disk-buffer(reliable(yes))`). */
  hasDiskBuffer: boolean;
}

function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function isInstalled(pkg: string): boolean {
  try {
    return run('dpkg-query', ['-W', '-f=${Status}', pkg]).includes('install ok installed');
  } catch {
    return false;
  }
}

/** Shared objects of the unpacked tree (the binary and every module) that the dynamic linker cannot find. */
function missingLibraries(install: Omit<SyslogNgInstall, 'installedLibraries' | 'hasDiskBuffer' | 'version'>) {
  const files = [install.binary, ...readdirSync(install.moduleDir).filter((f) => f.endsWith('.so'))];
  const missing = new Set<string>();
  for (const f of files) {
    const path = f === install.binary ? f : join(install.moduleDir, f);
    const out = execFileSync('ldd', [path], {
      encoding: 'utf8',
      env: { ...process.env, LD_LIBRARY_PATH: install.libDir },
    });
    for (const m of out.matchAll(/^\s*(\S+) => not found/gm)) missing.add(m[1]!);
  }
  return [...missing].sort();
}

/**
 * Unpacks syslog-ng-core into `cacheDir` once (later calls reuse it) and makes sure its libraries are
 * installed. Throws with the command to run when a step needs what this process lacks (network, root).
 */
export function setupSyslogNg(
  cacheDir = process.env.FLUXO_BENCH_DEPS ?? join(tmpdir(), 'fluxo-bench-syslog-ng'),
): SyslogNgInstall {
  const debs = join(cacheDir, 'debs');
  const root = join(cacheDir, 'root');
  mkdirSync(debs, { recursive: true });
  const findDeb = () => readdirSync(debs).find((f) => f.startsWith(`${SYSLOG_NG_PACKAGE}_`) && f.endsWith('.deb'));
  if (findDeb() === undefined) {
    try {
      run('apt-get', ['download', SYSLOG_NG_PACKAGE], debs);
    } catch (error) {
      throw new Error(
        `syslog-ng setup: \`apt-get download ${SYSLOG_NG_PACKAGE}\` failed in ${debs} (try \`apt-get update\` first): ` +
          `${(error as { stderr?: string }).stderr ?? (error as Error).message}`,
      );
    }
  }
  const deb = join(debs, findDeb()!);
  const binary = join(root, 'usr/sbin/syslog-ng');
  if (!existsSync(binary)) run('dpkg', ['-x', deb, root]);
  const version = run('dpkg-deb', ['-f', deb, 'Version']).trim();
  const libDir = join(root, 'usr/lib/syslog-ng');
  const moduleDir = readdirSync(libDir)
    .map((d) => join(libDir, d))
    .find((d) => /\/\d+\.\d+$/.test(d));
  if (moduleDir === undefined) throw new Error(`syslog-ng setup: no module directory under ${libDir}`);
  const paths = { root, binary, ctl: join(root, 'usr/sbin/syslog-ng-ctl'), libDir, moduleDir };

  // The package's own libraries are in the tree (LD_LIBRARY_PATH); the others come from apt, libraries only.
  const installedLibraries: string[] = [];
  if (missingLibraries(paths).length > 0) {
    const depends = run('dpkg-deb', ['-f', deb, 'Depends'])
      .split(',')
      .map((d) => d.split('|')[0]!.trim().split(/\s/)[0]!)
      .filter((p) => p.startsWith('lib') && !isInstalled(p));
    if (depends.length > 0) {
      if (process.getuid?.() !== 0) {
        throw new Error(`syslog-ng setup: missing libraries; run \`apt-get install ${depends.join(' ')}\` as root`);
      }
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...depends], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      installedLibraries.push(...depends);
    }
    const still = missingLibraries(paths);
    if (still.length > 0) throw new Error(`syslog-ng setup: ldd still cannot find ${still.join(', ')}`);
  }
  return {
    ...paths,
    version,
    installedLibraries,
    hasDiskBuffer: existsSync(join(moduleDir, 'libdisk-buffer.so')),
  };
}

export interface SyslogNgOptions {
  /**
   * `raw`: `flags(no-parse)`, each line is $MSG and is written as it came (`template("$MSG\n")`), the
   * counterpart of Fluxo's socket source. `syslog`: RFC 3164/5424 parsed, written with syslog-ng's default
   * file template (date, host, program, message), the counterpart of Fluxo's syslog source.
   */
  input: 'raw' | 'syslog';
  /** `fsync(yes)` on the file destination: an fsync after each write, as Fluxo's file sink's `sync: true`. */
  fsync: boolean;
  /** `disk-buffer(reliable(yes))` on the destination (needs the disk-buffer module). */
  diskBuffer: boolean;
  maxConnections?: number;
  echo?: boolean;
}

export const SYSLOG_NG_SOURCE = 's_bench';
const FETCH_LIMIT = 100;

export function syslogNgConfig(o: SyslogNgOptions & { port: number; outFile: string; bufferDir: string }): string {
  const maxConnections = o.maxConnections ?? 400;
  const flags = o.input === 'raw' ? ' flags(no-parse)' : '';
  const template = o.input === 'raw' ? ' template("$MSG\\n")' : '';
  // reliable(yes): a message is written to the buffer file before it leaves the source's window, so what was
  // let in survives a crash of syslog-ng; the buffer file is never fsynced (strace: one pwrite64 per message,
  // no fsync), so it does not survive a power loss the way a fsynced Fluxo disk buffer does.
  const diskBuffer = o.diskBuffer ? ` disk-buffer(reliable(yes) disk-buf-size(1073741824) dir("${o.bufferDir}"))` : '';
  return `@version: 3.38
# generated by bench/lib/syslog-ng.ts
options { stats-freq(0); use-dns(no); use-fqdn(no); dns-cache(no); keep-hostname(yes); chain-hostnames(no); };
source ${SYSLOG_NG_SOURCE} {
  network(ip("127.0.0.1") port(${o.port}) transport("tcp")${flags}
    max-connections(${maxConnections})
    # flow control: each connection gets log-iw-size / max-connections messages of window, ≥ log-fetch-limit
    log-iw-size(${maxConnections * FETCH_LIMIT}) log-fetch-limit(${FETCH_LIMIT}));
};
destination d_bench { file("${o.outFile}"${template} fsync(${o.fsync ? 'yes' : 'no'}) log-fifo-size(${maxConnections * FETCH_LIMIT * 2})${diskBuffer}); };
log { source(${SYSLOG_NG_SOURCE}); destination(d_bench); flags(flow-control); };
`;
}

/** Counts the newlines of a growing file from where the last call stopped. */
class LineCounter {
  private fd: number | undefined;
  private offset = 0;
  lines = 0;
  private readonly buf = Buffer.allocUnsafe(1024 * 1024);

  constructor(private readonly path: string) {}

  count(): number {
    if (this.fd === undefined) {
      if (!existsSync(this.path)) return 0;
      this.fd = openSync(this.path, 'r');
    }
    const size = fstatSync(this.fd).size;
    while (this.offset < size) {
      const n = readSync(this.fd, this.buf, 0, Math.min(this.buf.length, size - this.offset), this.offset);
      if (n === 0) break;
      this.offset += n;
      for (let i = this.buf.indexOf(0x0a); i >= 0 && i < n; i = this.buf.indexOf(0x0a, i + 1)) this.lines++;
    }
    return this.lines;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** `syslog-ng -F` from the unpacked tree, its files in `dir`, writing to `outFile`. */
export class SyslogNgServer implements ServerUnderTest {
  port = 0;
  readonly scrapes = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  private stderr = '';
  private readonly lines: LineCounter;
  private readonly files: { conf: string; persist: string; pid: string; ctl: string; bufferDir: string };

  constructor(
    private readonly install: SyslogNgInstall,
    dir: string,
    private readonly outFile: string,
    private readonly options: SyslogNgOptions,
  ) {
    if (options.diskBuffer && !install.hasDiskBuffer) {
      throw new Error(`syslog-ng ${install.version}: no disk-buffer module in ${install.moduleDir}`);
    }
    const own = join(dir, 'syslog-ng');
    this.files = {
      conf: join(own, 'syslog-ng.conf'),
      persist: join(own, 'syslog-ng.persist'),
      pid: join(own, 'syslog-ng.pid'),
      ctl: join(own, 'syslog-ng.ctl'),
      bufferDir: join(own, 'disk-buffer'),
    };
    mkdirSync(this.files.bufferDir, { recursive: true });
    this.lines = new LineCounter(outFile);
  }

  get pid(): number {
    if (this.child?.pid === undefined) throw new Error('syslog-ng not started');
    return this.child.pid;
  }

  get log(): string {
    return this.stderr;
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, LD_LIBRARY_PATH: this.install.libDir };
  }

  async started(): Promise<void> {
    this.port = await freePort();
    writeFileSync(
      this.files.conf,
      syslogNgConfig({ ...this.options, port: this.port, outFile: this.outFile, bufferDir: this.files.bufferDir }),
    );
    const child = spawn(
      this.install.binary,
      [
        '-F', // foreground: this pid is the process measured
        '-e', // internal messages to stderr
        '--no-caps',
        `--module-path=${this.install.moduleDir}`,
        '-f',
        this.files.conf,
        '-R',
        this.files.persist,
        '-p',
        this.files.pid,
        '-c',
        this.files.ctl,
      ],
      { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      if (this.options.echo) process.stderr.write(d);
    });
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
    // Listening once a connection is accepted (an empty connection carries no line).
    for (const end = Date.now() + 30_000; ; ) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`syslog-ng exited (${child.exitCode ?? child.signalCode}) at start:\n${this.stderr}`);
      }
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: this.port }, () => {
          s.end();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > end) throw new Error(`syslog-ng did not listen on ${this.port} within 30 s:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async delivered(): Promise<number> {
    return this.lines.count();
  }

  /** `syslog-ng-ctl stats`: the network source's `connections` counter. */
  openConnections(): Promise<number> {
    return new Promise((resolve, reject) => {
      execFile(this.install.ctl, ['stats', '-c', this.files.ctl], { env: this.env }, (error, stdout) => {
        if (error) return reject(new Error(`syslog-ng-ctl stats: ${error.message}`));
        let open = 0;
        for (const line of stdout.split('\n')) {
          const f = line.split(';');
          if (f[0] === 'src.network' && f[1] === SYSLOG_NG_SOURCE && f[4] === 'connections') open += Number(f[5]);
        }
        resolve(open);
      });
    });
  }

  async stop(): Promise<number | null> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    const code = await this.exited;
    this.lines.close();
    return code;
  }

  kill(): void {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    this.lines.close();
  }
}
