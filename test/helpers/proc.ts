import { readdirSync, readlinkSync } from 'node:fs';

/** The open file descriptors of process `pid` (this one by default) and the paths they point at. */
export function openDescriptors(pid: number | 'self' = 'self'): { fd: number; target: string }[] {
  const out: { fd: number; target: string }[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push({ fd: Number(fd), target: readlinkSync(`/proc/${pid}/fd/${fd}`) });
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/**
 * The paths of the files inside `dir` that process `pid` holds open. The directory itself is not counted: a
 * scan holds it open while it lists it, and max_open_files bounds the files read.
 */
export function openFilesIn(dir: string, pid: number | 'self' = 'self'): string[] {
  return openDescriptors(pid)
    .map((d) => d.target)
    .filter((target) => target.startsWith(`${dir}/`));
}
