import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { ComponentContext, EmitOptions, SourceContext } from '../../src/core/component.ts';
import type { Event } from '../../src/core/event.ts';
import { PipelineMetrics } from '../../src/core/metrics.ts';

/** Every directory tempDir() made in this process, removed again when it exits. */
const tempDirs = new Set<string>();

/**
 * A temporary directory removed when the test ends: `const dir = tempDir(t)`.
 *
 * After hooks run in the order they were added, so this removal usually comes before the hooks that stop
 * what the test started, while it may still be writing there. The removal therefore never throws (a hook
 * that throws skips the hooks after it: a server or timer left running keeps the test process alive), and
 * whatever is left, or written after it, goes when the process exits.
 */
export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'fluxo-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (tempDirs.size === 0) process.once('exit', () => tempDirs.forEach(removeQuietly));
  tempDirs.add(dir);
  t.after(() => removeQuietly(dir));
  return dir;
}

function removeQuietly(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  } catch {
    // something still writes there: removed again at exit
  }
}

/** A silent logger; set FLUXO_TEST_LOG=debug to see component logs while debugging a test. */
export function testLogger() {
  return pino({ level: process.env.FLUXO_TEST_LOG ?? 'silent' });
}

/**
 * A pino logger that keeps every line it writes, parsed, for tests that check what an operator would read
 * (also copied to stderr when FLUXO_TEST_LOG is set).
 */
export function recordingLogger(level = 'debug'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        if (process.env.FLUXO_TEST_LOG) process.stderr.write(line);
      },
    },
  );
  return { logger, lines };
}

export function componentContext(
  id: string,
  dataDir: string,
  kind: 'source' | 'transform' | 'sink' = 'sink',
  type = id,
): ComponentContext & { pipelineMetrics: PipelineMetrics } {
  const pipelineMetrics = new PipelineMetrics({ defaultMetrics: false });
  return { id, dataDir, logger: testLogger(), metrics: pipelineMetrics.forComponent(id, kind, type), pipelineMetrics };
}

export interface RecordedBatch {
  events: Event[];
  options: EmitOptions | undefined;
}

/**
 * A SourceContext that records what the source emits. `block()` makes emit() wait until `unblock()`,
 * to test that a source stops reading under backpressure.
 */
export function recordingSourceContext(id: string, dataDir: string, type = id) {
  const base = componentContext(id, dataDir, 'source', type);
  const batches: RecordedBatch[] = [];
  const deadLettered: { events: Event[]; reason: string }[] = [];
  let gate: { promise: Promise<void>; resolve: () => void } | undefined;
  const waiters: (() => void)[] = [];
  const ctx: SourceContext = {
    ...base,
    emit(events, options) {
      batches.push({ events, options });
      for (const w of waiters.splice(0)) w();
      return gate ? gate.promise : Promise.resolve();
    },
    deadLetter(events, reason) {
      deadLettered.push({ events, reason });
    },
  };
  return {
    ctx,
    batches,
    deadLettered,
    pipelineMetrics: base.pipelineMetrics,
    events: () => batches.flatMap((b) => b.events),
    block() {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      gate = { promise, resolve };
    },
    unblock() {
      gate?.resolve();
      gate = undefined;
    },
    /** Resolves once at least `n` events were emitted in total. */
    async waitForEvents(n: number): Promise<void> {
      while (batches.reduce((s, b) => s + b.events.length, 0) < n) {
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}
