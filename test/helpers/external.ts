import { spawnSync } from 'node:child_process';

/**
 * Finds an external program a test needs (rsyslogd, logger, redis-server…). In CI (CI=true) a missing program
 * fails the test: .ci/run must install it. Elsewhere the test is skipped with a message naming the package.
 * Usage: `const rsyslogd = requireProgram(t, 'rsyslogd', 'rsyslog'); if (!rsyslogd) return;`
 */
export function requireProgram(
  t: { skip: (message?: string) => void },
  program: string,
  debianPackage: string,
): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${program} || ls /usr/sbin/${program} 2>/dev/null`], {
    encoding: 'utf8',
  });
  const path = found.stdout.trim().split('\n')[0];
  if (path) return path;
  const message = `${program} not found: install the Debian package ${debianPackage} (apt-get install ${debianPackage})`;
  if (process.env.CI === 'true') throw new Error(`${message}; CI must install it in .ci/run`);
  t.skip(message);
  return undefined;
}
