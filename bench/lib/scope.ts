import type { TestContext } from 'node:test';

/**
 * What the test helpers that start servers need of a test context, for a bench: cleanups, run in reverse by
 * close() at the end of the scenario; a skip (a missing server) is an error here.
 */
export function scope() {
  const cleanups: (() => unknown)[] = [];
  const t = {
    after: (fn: () => unknown) => cleanups.push(fn),
    skip: (message?: string) => {
      throw new Error(message);
    },
  } as unknown as TestContext;
  return {
    t,
    async close() {
      for (const fn of cleanups.reverse()) await fn();
    },
  };
}
