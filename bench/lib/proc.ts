import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on every Linux we know). */
export const CLK_TCK = (() => {
  try {
    const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(v) && v > 0 ? v : 100;
  } catch {
    return 100;
  }
})();

export interface CpuTimes {
  /** Seconds of user time, all threads (libuv pool, zlib and V8 GC threads included). */
  user: number;
  sys: number;
}

/**
 * CPU time of a live process from /proc/<pid>/stat (fields 14 and 15, utime and stime). The command name
 * (field 2) may hold spaces and parentheses, so fields are counted from the last `)`.
 */
export function cpuTimes(pid: number): CpuTimes {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14 → index 11, stime field 15 → index 12.
  return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
}

/** CPU time of the main thread alone (its tid is the pid): the JavaScript, whatever the pool threads do. */
export function mainThreadCpuTimes(pid: number): CpuTimes {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
}

export function cpuDelta(before: CpuTimes, after: CpuTimes): CpuTimes {
  return { user: after.user - before.user, sys: after.sys - before.sys };
}

/** A `Vm*` line of /proc/<pid>/status in MiB, e.g. `VmHWM` (peak resident set) or `VmRSS`. */
export function vmMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Wall clock in epoch milliseconds with sub-millisecond resolution, comparable between processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** What a reader needs to judge the figures: cores, CPU model, memory, Node. */
export function machine(): { nproc: number; cpu: string; mem_gib: number; node: string; kernel: string } {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  let nproc = 0;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    nproc = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  }
  return {
    nproc,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    mem_gib: Math.round((memKb / 1024 / 1024) * 10) / 10,
    node: process.version,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
  };
}

export interface MachineTimes {
  /** CPU seconds of every core spent on anything but idle and iowait (steal included). */
  busy: number;
  /** Time the hypervisor ran something else while this VM wanted the CPU. */
  steal: number;
  iowait: number;
}

/** Machine-wide CPU time from the first line of /proc/stat, to see what else ran during a measurement. */
export function machineTimes(): MachineTimes {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, , iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  return {
    busy: (user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK,
    steal: steal! / CLK_TCK,
    iowait: iowait! / CLK_TCK,
  };
}

export function loadAverage1m(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
