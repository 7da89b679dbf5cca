/**
 * Multiline aggregation shared by line-oriented sources: consecutive lines of one stream (a file, a connection)
 * become one event, e.g. a Java stack trace. The rules are Vector's `multiline`:
 *
 * - A line matching `start_pattern` while nothing is held starts a group; any other line passes through alone.
 * - While a group is held, `condition_pattern` and `mode` decide what the next line does:
 *   - `continue_through`: a matching line joins the group; a non-matching line ends it (and may start the next).
 *   - `continue_past`: a matching line joins; a non-matching line joins too, as the group's last line.
 *   - `halt_before`: a non-matching line joins; a matching line ends the group (and may start the next).
 *   - `halt_with`: a non-matching line joins; a matching line joins as the last line.
 * - A group waits at most `timeout` for its next line, and holds at most `max_bytes` (then it is emitted as it
 *   is and the rest goes on as a new group).
 *
 * Lines of a group are joined with `\n`. Each group keeps the position of its first line (for a file: the
 * byte offset), which is also where a reader must resume after a restart, since a group held here was not
 * emitted yet.
 */
import { z } from 'zod';
import { duration, size } from '../core/units.ts';

export type MultilineMode = 'continue_through' | 'continue_past' | 'halt_before' | 'halt_with';

function regexOption(what: string) {
  return z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      try {
        new RegExp(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${(error as Error).message}` });
      }
    })
    .describe(what);
}

/** The `multiline` option of a line-oriented source. */
export function multilineOptions() {
  return z
    .object({
      start_pattern: regexOption(
        'Regular expression (JavaScript syntax) of the first line of a group, e.g. `^[^\\s]` for a line that does not ' +
          'start with white space. A line that does not match while no group is held is an event on its own.',
      ),
      condition_pattern: regexOption(
        'Regular expression tested on every line while a group is held; `mode` says what a match means. Java stack ' +
          'traces: `^\\s+(at |\\.\\.\\. \\d+ more)|^Caused by:`.',
      ),
      mode: z
        .enum(['continue_through', 'continue_past', 'halt_before', 'halt_with'])
        .describe(
          '`continue_through`: lines matching `condition_pattern` join the group; `continue_past`: they join, and so ' +
            'does the first line that does not match; `halt_before`: lines not matching join, a matching line starts ' +
            'the next group; `halt_with`: lines not matching join, a matching line ends the group.',
        ),
      timeout: duration().default(1000).describe('A group waiting this long for its next line is emitted as it is.'),
      max_bytes: size()
        .default(1024 * 1024)
        .describe('Largest group in bytes; a group that would grow past it is emitted and the rest starts a new one.'),
    })
    .describe(
      "Join continuation lines into one event (stack traces), with Vector's rules: `{ start_pattern, condition_pattern, " +
        'mode, timeout, max_bytes }`. A line matching `start_pattern` starts a group; while a group is held, ' +
        '`mode` says what a line matching `condition_pattern` does: `continue_through` (matching lines join), ' +
        '`continue_past` (they join, plus the next one), `halt_before` (non-matching lines join, a match starts the ' +
        'next group), `halt_with` (non-matching lines join, a match ends the group). A group waits at most `timeout` ' +
        '(default 1s) for its next line and holds at most `max_bytes` (default 1MiB). Absent: every line is an event.',
    );
}

export type MultilineOptions = z.infer<ReturnType<typeof multilineOptions>>;

/** The compiled rules, built once per source (no regex compilation per line or per stream). */
export class MultilineRules {
  readonly start: RegExp;
  readonly condition: RegExp;
  readonly mode: MultilineMode;
  readonly timeoutMs: number;
  readonly maxBytes: number;

  constructor(options: MultilineOptions) {
    // No `g` or `y` flag: test() then keeps no state between lines.
    this.start = new RegExp(options.start_pattern);
    this.condition = new RegExp(options.condition_pattern);
    this.mode = options.mode;
    this.timeoutMs = options.timeout;
    this.maxBytes = options.max_bytes;
  }
}

/** Where an aggregator puts finished events: parallel arrays, so no object is made per event here. */
export interface MultilineOutput {
  messages: string[];
  /** Position of each event's first line (a byte offset for files). */
  positions: number[];
}

/**
 * The aggregation state of one stream. push() lines in order; finished events are appended to `out`.
 * Call expire() from time to time to emit a group whose next line is overdue.
 */
export class MultilineAggregator {
  private parts: string[] = [];
  private heldBytes = 0;
  private firstPosition = -1;
  private lastLineAt = 0;
  /** Groups emitted because they reached max_bytes. */
  splitGroups = 0;

  constructor(private readonly rules: MultilineRules) {}

  /** True while a group is held. */
  get holding(): boolean {
    return this.firstPosition >= 0;
  }

  /** Position of the first line of the held group, or -1. */
  get heldPosition(): number {
    return this.firstPosition;
  }

  /** When the held group got its last line (the `now` given to push), for the timeout. */
  get heldSince(): number {
    return this.lastLineAt;
  }

  /** `bytes` is the line's size in the input (for max_bytes); `now` in ms, for the timeout. */
  push(line: string, position: number, bytes: number, now: number, out: MultilineOutput): void {
    const rules = this.rules;
    if (this.firstPosition < 0) {
      this.startOrPass(line, position, bytes, now, out);
      return;
    }
    const matched = rules.condition.test(line);
    switch (rules.mode) {
      case 'continue_through':
        if (matched) this.append(line, position, bytes, now, out);
        else {
          this.emitHeld(out);
          this.startOrPass(line, position, bytes, now, out);
        }
        return;
      case 'continue_past':
        this.append(line, position, bytes, now, out);
        if (!matched) this.emitHeld(out);
        return;
      case 'halt_before':
        if (matched) {
          this.emitHeld(out);
          this.startOrPass(line, position, bytes, now, out);
        } else this.append(line, position, bytes, now, out);
        return;
      case 'halt_with':
        this.append(line, position, bytes, now, out);
        if (matched) this.emitHeld(out);
        return;
    }
  }

  /** The held group has waited `timeout` for its next line. */
  overdue(now: number): boolean {
    return this.firstPosition >= 0 && now - this.lastLineAt >= this.rules.timeoutMs;
  }

  /** Emits the held group if its next line is overdue at `now`; returns whether it did. */
  expire(now: number, out: MultilineOutput): boolean {
    if (!this.overdue(now)) return false;
    this.emitHeld(out);
    return true;
  }

  /** Emits the held group whatever its age (end of the stream). */
  flush(out: MultilineOutput): void {
    if (this.firstPosition >= 0) this.emitHeld(out);
  }

  /** Forgets the held group (the input is read again from its first line, e.g. after a failed delivery). */
  reset(): void {
    this.parts = [];
    this.heldBytes = 0;
    this.firstPosition = -1;
  }

  private startOrPass(line: string, position: number, bytes: number, now: number, out: MultilineOutput): void {
    if (this.rules.start.test(line)) {
      this.parts.push(line);
      this.heldBytes = bytes;
      this.firstPosition = position;
      this.lastLineAt = now;
    } else {
      out.messages.push(line);
      out.positions.push(position);
    }
  }

  private append(line: string, position: number, bytes: number, now: number, out: MultilineOutput): void {
    if (this.heldBytes + 1 + bytes > this.rules.maxBytes) {
      this.splitGroups++;
      this.emitHeld(out);
      this.parts.push(line);
      this.heldBytes = bytes;
      this.firstPosition = position;
    } else {
      this.parts.push(line);
      this.heldBytes += 1 + bytes;
    }
    this.lastLineAt = now;
  }

  private emitHeld(out: MultilineOutput): void {
    const parts = this.parts;
    out.messages.push(parts.length === 1 ? parts[0]! : parts.join('\n'));
    out.positions.push(this.firstPosition);
    this.parts = [];
    this.heldBytes = 0;
    this.firstPosition = -1;
  }
}
