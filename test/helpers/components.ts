import { z } from 'zod';
import type { AckStatus } from '../../src/core/ack.ts';
import { defineSink, defineSource, type SourceContext } from '../../src/core/component.ts';
import { PermanentError, RetryableError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';

/**
 * Components for runtime tests: a source the test drives by hand and a sink the test can stall or fail.
 * They implement the real contracts and run inside the real Topology.
 */
export class ManualSourceHandle {
  ctx: SourceContext | undefined;
  readonly acks: AckStatus[] = [];
  started = false;
  stopped = false;

  /** Emits events and records the acknowledgement status when it settles. */
  emit(events: Event[]): Promise<void> {
    if (!this.ctx) throw new Error('manual source not built');
    return this.ctx.emit(events, { onSettled: (status) => this.acks.push(status) });
  }
}

export function manualSource(handles: Map<string, ManualSourceHandle>) {
  return defineSource({
    kind: 'source',
    type: 'manual',
    description: 'test source driven by the test',
    options: z.object({}),
    build(_options, ctx) {
      const handle = handles.get(ctx.id) ?? new ManualSourceHandle();
      handles.set(ctx.id, handle);
      handle.ctx = ctx;
      return {
        async start() {
          handle.started = true;
        },
        async stop() {
          handle.stopped = true;
        },
      };
    },
  });
}

export type Behaviour = 'ok' | 'stall' | { failTimes: number } | { reject: 'all' | ((e: Event) => boolean) };

export class ControlledSinkHandle {
  readonly written: Event[] = [];
  writes = 0;
  attempts = 0;
  behaviour: Behaviour = 'ok';
  stopped = false;
  private stallRelease: (() => void)[] = [];
  private attemptWaiters: (() => void)[] = [];

  /** Lets stalled writes complete and future ones pass. */
  release(): void {
    this.behaviour = 'ok';
    for (const r of this.stallRelease.splice(0)) r();
  }

  async waitForAttempts(n: number): Promise<void> {
    while (this.attempts < n) await new Promise<void>((r) => this.attemptWaiters.push(r));
  }

  async write(events: Event[], signal: AbortSignal): Promise<void> {
    this.attempts++;
    for (const w of this.attemptWaiters.splice(0)) w();
    const b = this.behaviour;
    if (b === 'stall') {
      await new Promise<void>((resolve, reject) => {
        this.stallRelease.push(resolve);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    } else if (typeof b === 'object' && 'failTimes' in b && b.failTimes > 0) {
      b.failTimes--;
      throw new RetryableError('injected transient failure');
    } else if (typeof b === 'object' && 'reject' in b) {
      const rejected = b.reject === 'all' ? events : events.filter(b.reject);
      this.written.push(...events.filter((e) => !rejected.includes(e)));
      this.writes++;
      throw new PermanentError('injected rejection', b.reject === 'all' ? undefined : rejected);
    }
    this.written.push(...events);
    this.writes++;
  }
}

export function controlledSink(handles: Map<string, ControlledSinkHandle>) {
  return defineSink({
    kind: 'sink',
    type: 'controlled',
    description: 'test sink controlled by the test',
    options: z.object({}),
    build(_options, ctx) {
      const handle = handles.get(ctx.id) ?? new ControlledSinkHandle();
      handles.set(ctx.id, handle);
      return {
        send: async (request, signal) => {
          await handle.write(request.events as Event[], signal);
          return undefined;
        },
        async stop() {
          handle.stopped = true;
        },
      };
    },
  });
}

/** Numbered events `{ message: 'line N', n: N }` for loss checks. */
export function numbered(from: number, count: number): Event[] {
  return Array.from({ length: count }, (_, i) => ({ message: `line ${from + i}`, n: from + i }));
}
