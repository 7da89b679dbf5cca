/**
 * What a ClickHouse server answered, read the same way on every version: 18.x writes errors as
 * `Code: 27, e.displayText() = DB::Exception: …`, newer servers as `Code: 27. DB::Exception: …` and add an
 * `X-ClickHouse-Exception-Code` header.
 */
export interface ClickHouseAnswer {
  readonly status: number;
  /** The exception code, when the server raised one. */
  readonly code: number | undefined;
  /** The exception text without the `e.what()` tail, or the body as it is. */
  readonly message: string;
}

export function readAnswer(status: number, header: string | string[] | undefined, body: string): ClickHouseAnswer {
  const fromHeader = typeof header === 'string' ? Number(header) : Number.NaN;
  const m = /^Code: (\d+)[.,]\s*(?:e\.displayText\(\) = )?(.*)/s.exec(body.trim());
  const code = Number.isInteger(fromHeader) ? fromHeader : m ? Number(m[1]) : undefined;
  const message = (m ? m[2]! : body.trim()).replace(/,\s*e\.what\(\) = DB::Exception\s*$/s, '').trim();
  return { status, code, message: message.slice(0, 2000) };
}

/**
 * Exception codes about the rows themselves: a value a column's type does not take, a malformed line, an
 * unknown field (with skip_unknown_fields off), NULL in a column that is not Nullable. A write answered with
 * one is split to find the rows; any other code (an unknown table, a memory limit, too many parts, a timeout,
 * a wrong password) is about the server or the setup and the write is retried whole.
 */
const ROW_ERROR_CODES = new Set([
  6, // CANNOT_PARSE_TEXT
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  32, // ATTEMPT_TO_READ_AFTER_EOF
  33, // CANNOT_READ_ALL_DATA
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  131, // TOO_LARGE_STRING_SIZE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
  457, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
]);

export function isRowError(answer: ClickHouseAnswer): boolean {
  return answer.code !== undefined && ROW_ERROR_CODES.has(answer.code);
}

/**
 * A refused login: 192 UNKNOWN_USER, 193 WRONG_PASSWORD, 194 REQUIRED_PASSWORD (18.x–21.x), 516
 * AUTHENTICATION_FAILED (newer), or a bare 401/403 from a proxy in front.
 */
const AUTH_CODES = new Set([192, 193, 194, 516]);

export function isAuthFailure(answer: ClickHouseAnswer): boolean {
  return (answer.code !== undefined && AUTH_CODES.has(answer.code)) || answer.status === 401 || answer.status === 403;
}

/** The 1-based row a parse error names (`(at row 3)`), a hint of where to split. */
export function errorRow(answer: ClickHouseAnswer): number | undefined {
  const m = /\(at row (\d+)\)/.exec(answer.message);
  return m ? Number(m[1]) : undefined;
}

/** What the server can do, asked once at connect: `SELECT version()` and `system.settings`. */
export interface ServerFeatures {
  readonly version: string;
  /** `insert_deduplication_token` (22.2+): a retried insert with the same token is dropped by the table. */
  readonly deduplicationToken: boolean;
  /** `async_insert` with `wait_for_async_insert` (21.11+). */
  readonly asyncInsert: boolean;
}

export const FEATURE_QUERY =
  "SELECT version() AS v, groupArray(name) AS s FROM system.settings WHERE name IN ('insert_deduplication_token', " +
  "'async_insert', 'wait_for_async_insert') FORMAT JSONEachRow";

export function readFeatures(body: string): ServerFeatures {
  const row = JSON.parse(body.trim().split('\n')[0] ?? '{}') as { v?: string; s?: string[] };
  const settings = new Set(row.s ?? []);
  return {
    version: row.v ?? 'unknown',
    deduplicationToken: settings.has('insert_deduplication_token'),
    asyncInsert: settings.has('async_insert') && settings.has('wait_for_async_insert'),
  };
}

/** `name` as a ClickHouse identifier in backquotes. */
export function quoteName(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

/** A string literal in single quotes. */
export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
