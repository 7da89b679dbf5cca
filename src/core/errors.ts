import type { Event } from './event.ts';

/** Every error Fluxo raises on purpose has a stable `code` a user can search for. */
export class FluxoError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FluxoError';
  }
}

/** A sink error worth retrying: the destination is down, slow, or said "try later". */
export class RetryableError extends FluxoError {
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super('FLUXO_SINK_RETRYABLE', message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
  readonly retryAfterMs: number | undefined;
}

/**
 * The destination rejected events for what they are (bad schema, too large). Retrying cannot help:
 * the events go to the dead letter output with `reason`. When `events` is given only those were rejected
 * and the rest of the write counts as delivered.
 */
export class PermanentError extends FluxoError {
  constructor(
    readonly reason: string,
    readonly events?: Event[],
  ) {
    super('FLUXO_SINK_REJECTED', reason);
  }
}
