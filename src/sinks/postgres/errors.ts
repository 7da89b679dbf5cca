/** What a PostgreSQL error says about a write, from its SQLSTATE. */
export interface PgError extends Error {
  code?: string;
  detail?: string;
  where?: string;
  column?: string;
  constraint?: string;
}

/**
 * Class 22 (data exception: a value the column's type does not take, a bad encoding) and 23 (integrity
 * constraint: NOT NULL, CHECK, a foreign key, another unique index) are about rows: the write is split to find
 * them. Everything else is about the server or the setup (class 08 connection, 57P01 admin shutdown, 53
 * resources, 40 serialization, 42 a missing table or column or privilege, no SQLSTATE at all for a socket
 * error) and is retried whole: dead-lettering good events for a broken setup would lose them.
 */
export function isRowError(error: unknown): boolean {
  const code = (error as PgError)?.code;
  return typeof code === 'string' && code.length === 5 && (code.startsWith('22') || code.startsWith('23'));
}

const COPY_LINE = /\bCOPY [^,]+, line (\d+)/;

/** The 1-based COPY line PostgreSQL names in a data error's context, when the COPY itself failed. */
export function copyLine(error: unknown): number | undefined {
  const where = (error as PgError)?.where;
  if (typeof where !== 'string') return undefined;
  const m = COPY_LINE.exec(where);
  return m ? Number(m[1]) : undefined;
}

/**
 * The reason a rejected row is dead-lettered with: PostgreSQL's message, SQLSTATE and detail, without the
 * row's values from the context (the event is right beside the reason already).
 */
export function rowReason(error: unknown): string {
  const e = error as PgError;
  let reason = `postgres ${e.code ?? 'error'}: ${e.message}`;
  if (e.column) reason += ` (column ${e.column})`;
  if (e.constraint) reason += ` (constraint ${e.constraint})`;
  if (e.detail && !/^Failing row contains/.test(e.detail)) reason += `: ${e.detail}`;
  return reason;
}

/** A short text of any error for the log and RetryableError: SQLSTATE or errno code, and the message. */
export function describePgError(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { errors?: Error[] };
  const inner = (e?.errors?.[0] as NodeJS.ErrnoException | undefined) ?? e;
  const message = inner?.message || e?.code || String(error);
  const code = inner?.code ?? e?.code;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
