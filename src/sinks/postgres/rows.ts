import type { Event } from '../../core/event.ts';
import { UNENCODABLE_REASON } from '../../core/sink/index.ts';

/** `"name"` with inner quotes doubled: a PostgreSQL identifier that keeps its case and any character. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.table` or `table` as quoted identifiers; a name already in double quotes keeps its dots. */
export function quoteTable(table: string): string {
  const parts: string[] = [];
  let at = 0;
  while (at < table.length) {
    if (table[at] === '"') {
      let end = at + 1;
      let name = '';
      for (;;) {
        const close = table.indexOf('"', end);
        if (close < 0) throw new Error(`unbalanced double quote in table name ${table}`);
        name += table.slice(end, close);
        if (table[close + 1] === '"') {
          name += '"';
          end = close + 2;
          continue;
        }
        at = close + 1;
        break;
      }
      parts.push(name);
    } else {
      const dot = table.indexOf('.', at);
      const end = dot < 0 ? table.length : dot;
      parts.push(table.slice(at, end));
      at = end;
    }
    if (table[at] === '.') at++;
    else if (at < table.length) throw new Error(`unexpected character after a quoted name in ${table}`);
  }
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => p === '')) {
    throw new Error(`expected table or schema.table, got ${table}`);
  }
  return parts.map(quoteIdent).join('.');
}

/** One column of the stage: its name and where its value comes from. */
export interface ColumnSource {
  readonly column: string;
  /** The event field path split at dots (`http.status` → ['http', 'status']); empty: the whole event. */
  readonly path: readonly string[];
  /** The whole event as JSON from the kit's encoded line (the jsonb column). */
  readonly wholeEvent?: boolean;
}

function lookup(event: Event, path: readonly string[]): unknown {
  let value: unknown = event;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/**
 * A JSON value as the text PostgreSQL's input function of the column reads: strings as they are, numbers and
 * booleans as literals (`true`/`false` are valid input for boolean, and text for text), objects and arrays as
 * JSON (json/jsonb columns, or text). null and absent: SQL NULL. The column's type does the checking: a value
 * it does not take fails the COPY on that row, and that row alone is dead-lettered with PostgreSQL's reason.
 */
function textOf(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value) ?? null;
}

const TEXT_SPECIAL = /[\\\n\r\t]/;
const TEXT_SPECIAL_ALL = /[\\\n\r\t]/g;
const TEXT_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** COPY text format: backslash escapes for the delimiter, line ends and backslash itself; `\N` is NULL. */
function textField(value: string | null): string {
  if (value === null) return '\\N';
  return TEXT_SPECIAL.test(value) ? value.replace(TEXT_SPECIAL_ALL, (c) => TEXT_ESCAPES[c]!) : value;
}

/** COPY csv format: every value quoted (so `""` is an empty string, never NULL, and `\.` never ends the data). */
function csvField(value: string | null): string {
  if (value === null) return '';
  return `"${value.includes('"') ? value.replace(/"/g, '""') : value}"`;
}

export type CopyFormat = 'text' | 'csv';

/** The COPY rows of a write, built once per request so a retry (or a bisection) sends the same bytes. */
export interface CopyRows {
  /** `rows[i]`: the COPY line of event `i` (newline included), or undefined when it was rejected here. */
  readonly rows: (string | undefined)[];
  readonly rejected: { index: number; reason: string }[];
}

/**
 * Encodes each event into one COPY line. `json(i)` gives the kit's JSON of event i (the jsonb column), so the
 * event is not serialized twice. A value that cannot be written (a cycle in a mapped object) rejects its event.
 */
export function copyRows(
  events: readonly Event[],
  columns: readonly ColumnSource[],
  format: CopyFormat,
  json: ((i: number) => string | undefined) | undefined,
): CopyRows {
  const field = format === 'text' ? textField : csvField;
  const separator = format === 'text' ? '\t' : ',';
  const rows: (string | undefined)[] = new Array(events.length);
  const rejected: { index: number; reason: string }[] = [];
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    let line = '';
    let ok = true;
    for (let c = 0; c < columns.length; c++) {
      const source = columns[c]!;
      let text: string | null;
      try {
        text = source.wholeEvent ? (json?.(i) ?? JSON.stringify(event)) : textOf(lookup(event, source.path));
      } catch {
        ok = false;
        break;
      }
      if (c > 0) line += separator;
      line += field(text);
    }
    if (!ok) {
      rejected.push({ index: i, reason: UNENCODABLE_REASON });
      continue;
    }
    rows[i] = `${line}\n`;
  }
  return { rows, rejected };
}
