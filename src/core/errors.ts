import type { ErrorCode } from './error-codes.ts';
import type { Event } from './event.ts';

/**
 * Every error Fluxo raises on purpose has a stable `code` a user can search for; the codes, with what each
 * means and what to do, are catalogued in error-codes.ts (and docs/errors.md).
 */
export class FluxoError extends Error {
  constructor(
    readonly code: ErrorCode,
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

/** The code of a FluxoError, for log fields (`code=FLUXO_…`); undefined for any other error. */
export function errorCode(error: unknown): ErrorCode | undefined {
  return error instanceof FluxoError ? error.code : undefined;
}
