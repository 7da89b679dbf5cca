import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { pino } from 'pino';
import { RateLimitedWarnings } from '../../src/core/rate-limited-warnings.ts';

describe('RateLimitedWarnings', () => {
  it('logs a kind at most once per interval and reports how many were suppressed', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    try {
      const w = new RateLimitedWarnings(logger, 10_000);
      w.warn('auth', { host: 'a' }, 'refused');
      w.warn('auth', { host: 'b' }, 'refused');
      w.warn('auth', { host: 'c' }, 'refused');
      w.warn('tls', { host: 'd' }, 'handshake failed');
      mock.timers.tick(10_000);
      w.warn('auth', { host: 'e' }, 'refused');
      assert.deepEqual(
        lines.map((l) => [l.msg, l.host, l.suppressed]),
        [
          ['refused', 'a', undefined],
          ['handshake failed', 'd', undefined],
          ['refused', 'e', 2],
        ],
      );
    } finally {
      mock.timers.reset();
    }
  });
});
