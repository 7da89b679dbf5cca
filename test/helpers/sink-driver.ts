import type { Sink } from '../../src/core/component.ts';
import { PermanentError, RetryableError } from '../../src/core/errors.ts';
import type { Event } from '../../src/core/event.ts';
import { UNENCODABLE_REASON } from '../../src/core/sink/encoding.ts';
import type { PreparedRequest } from '../../src/core/sink/request.ts';
import { prepareRequest } from '../../src/core/sink/runner.ts';

/**
 * Calls one sink's send() the way the SinkRunner does for one attempt, for tests that drive a sink alone:
 * the write is encoded once by the kit's prepareRequest; calling again with the same events array is the
 * runner's retry (the same request, or what a partial answer left). An attempt answers as the old
 * `write(events)` contract did: it resolves when everything was delivered, throws the error of what must be
 * retried, and throws PermanentError with the rejected events (after the rest was delivered).
 */
export class SinkDriver {
  private readonly pending = new WeakMap<Event[], PreparedRequest>();

  constructor(private readonly sink: Sink) {}

  async write(events: Event[], signal: AbortSignal, ndjson?: Buffer): Promise<void> {
    let request = this.pending.get(events);
    let unencodable: Event[] = [];
    if (request === undefined) {
      const prepared = prepareRequest(this.sink, events, 0, ndjson);
      unencodable = prepared.unencodable;
      if (prepared.request === undefined) throw new PermanentError(UNENCODABLE_REASON, unencodable);
      request = prepared.request;
      await request.prepare();
    }
    let result: Awaited<ReturnType<Sink['send']>>;
    try {
      result = await this.sink.send(request, signal);
    } catch (error) {
      if (!(error instanceof PermanentError)) {
        request.attempt++;
        this.pending.set(events, request);
      } else this.pending.delete(events);
      throw error;
    }
    const rejected = [...unencodable];
    const reasons = new Set<string>(unencodable.length > 0 ? [UNENCODABLE_REASON] : []);
    for (const r of result?.rejected ?? []) {
      rejected.push(request.events[r.index] as Event);
      reasons.add(r.reason);
    }
    if (result?.retry !== undefined && result.retry.length > 0) {
      const rest = request.subset(result.retry);
      rest.attempt++;
      this.pending.set(events, rest);
      throw result.error ?? new RetryableError(`${result.retry.length} event(s) to retry`);
    }
    this.pending.delete(events);
    if (rejected.length > 0) throw new PermanentError([...reasons].join('; '), rejected);
  }
}

const drivers = new WeakMap<Sink, SinkDriver>();

/** The SinkDriver of `sink` (one per sink, so retries with the same array find their request). */
export function driven(sink: Sink): SinkDriver {
  let driver = drivers.get(sink);
  if (driver === undefined) {
    driver = new SinkDriver(sink);
    drivers.set(sink, driver);
  }
  return driver;
}
