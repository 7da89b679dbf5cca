import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

/** A private rsyslogd running for one test: its process, what it printed so far, and its exit. */
export interface RsyslogProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  output(): string;
}

/**
 * Starts `rsyslogd -n` on `dir/rsyslog.conf` (which the test wrote: its own work directory, no imuxsock, so it
 * never touches the system log) with its pid file in `dir`, and stops it with `stopSignal` after the test.
 */
export function startRsyslogd(
  t: { after: (fn: () => Promise<void>) => void },
  rsyslogd: string,
  dir: string,
  stopSignal: NodeJS.Signals = 'SIGTERM',
): RsyslogProcess {
  const child = spawn(rsyslogd, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslogd.pid')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => {
    output += d;
  });
  child.stderr!.on('data', (d) => {
    output += d;
  });
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(stopSignal);
      await exited;
    }
  });
  return { child, exited, output: () => output };
}
