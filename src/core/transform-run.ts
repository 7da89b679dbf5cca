import type { Transform } from './component.ts';
import type { Event } from './event.ts';

export interface TransformRun {
  /** Non-empty event lists the transform pushed, with the named output (undefined: the default output). */
  readonly pushed: { events: Event[]; output: string | undefined }[];
  /** Non-empty event lists it dead-lettered, with the reason. */
  readonly dead: { events: Event[]; reason: string }[];
  /** The transform threw: nothing it pushed counts and the whole batch is in `dead`. */
  readonly threw: boolean;
  /** Pushes to an output the transform does not declare; their events are in `dead`, after its own. */
  readonly unknownOutputs: number;
}

/**
 * Runs a transform on one batch and collects what it made of it. A transform must not throw; one that does has
 * its batch dead-lettered with the error rather than lost or crashing the process, and so has what it pushes to
 * an output it does not declare. Shared by the running topology and `fluxo test`, so a config's unit tests see
 * exactly what the pipeline does.
 */
export function runTransform(id: string, transform: Transform, events: Event[]): TransformRun {
  const pushed: TransformRun['pushed'] = [];
  const dead: TransformRun['dead'] = [];
  const declared = transform.outputs;
  let strays: TransformRun['dead'] | undefined;
  try {
    transform.process(events, {
      push: (e, output) => {
        if (e.length === 0) return;
        if (output === undefined || declared?.includes(output)) pushed.push({ events: e, output });
        else {
          strays ??= [];
          strays.push({ events: e, reason: `transform ${id} pushed to unknown output ${output}` });
        }
      },
      deadLetter: (e, reason) => {
        if (e.length > 0) dead.push({ events: e, reason });
      },
    });
  } catch (error) {
    pushed.length = 0;
    dead.length = 0;
    dead.push({ events, reason: `transform ${id} threw: ${error instanceof Error ? error.message : String(error)}` });
    return { pushed, dead, threw: true, unknownOutputs: 0 };
  }
  if (strays === undefined) return { pushed, dead, threw: false, unknownOutputs: 0 };
  dead.push(...strays);
  return { pushed, dead, threw: false, unknownOutputs: strays.length };
}
