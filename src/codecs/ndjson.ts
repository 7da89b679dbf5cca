/**
 * One line per event, for sinks that write line-oriented files or objects.
 * `json`: `JSON.stringify(event)` (NDJSON; JSON escapes newlines, so a line is always one event).
 * `text`: the `message` field as is (a string), JSON for a non-string value, an empty line when absent.
 */
import type { Event } from '../core/event.ts';

export type LineEncoding = 'json' | 'text';

/**
 * Encodes `events` into one string, each line ending in `\n`. An event that cannot be encoded (a BigInt or a
 * cycle put there by a transform) is left out and pushed to `rejected`, so one bad event cannot block a batch.
 */
export function encodeLines(events: readonly Event[], encoding: LineEncoding, rejected: Event[]): string {
  let out = '';
  if (encoding === 'json') {
    for (const event of events) {
      try {
        out += `${JSON.stringify(event)}\n`;
      } catch {
        rejected.push(event);
      }
    }
    return out;
  }
  for (const event of events) {
    const message = event.message;
    if (typeof message === 'string') out += `${message}\n`;
    else if (message === undefined || message === null) out += '\n';
    else {
      try {
        out += `${JSON.stringify(message)}\n`;
      } catch {
        rejected.push(event);
      }
    }
  }
  return out;
}
