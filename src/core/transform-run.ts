import type { Transform } from './component.ts';
import type { Event } from './event.ts';

export interface TransformRun {
  /** Non-empty event lists the transform pushed, with the named output (undefined: the default output). */
  readonly pushed: { events: Event[]; output: string | undefined }[];
  /** Non-empty event lists it dead-lettered, with the reason. */
  readonly dead: { events: Event[]; reason: string }[];
  /** The transform threw: nothing it pushed counts and the whole batch is in `dead`. */
  readonly threw: boolean;
}

/**
 * Runs a transform on one batch and collects what it made of it. A transform must not throw; one that does has
 * its batch dead-lettered with the error rather than lost or crashing the process. Shared by the running
 * topology and `fluxo test`, so a config's unit tests see exactly what the pipeline does.
 */
export function runTransform(id: string, transform: Transform, events: Event[]): TransformRun {
  const pushed: TransformRun['pushed'] = [];
  const dead: TransformRun['dead'] = [];
  try {
    transform.process(events, {
      push: (e, output) => {
        if (e.length > 0) pushed.push({ events: e, output });
      },
      deadLetter: (e, reason) => {
        if (e.length > 0) dead.push({ events: e, reason });
      },
    });
  } catch (error) {
    pushed.length = 0;
    dead.length = 0;
    dead.push({ events, reason: `transform ${id} threw: ${error instanceof Error ? error.message : String(error)}` });
    return { pushed, dead, threw: true };
  }
  return { pushed, dead, threw: false };
}
