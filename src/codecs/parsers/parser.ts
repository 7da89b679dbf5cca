/**
 * What every parser in this folder shares. A parser never throws on bad input: it returns a ParseFailure
 * with a reason a user can act on. Failures are plain objects (no stack trace), because garbage lines
 * can be as frequent as good ones and must stay cheap.
 */
export class ParseFailure {
  constructor(readonly reason: string) {}
}

/** Turns text into a value (an object for every format but `json`, which may also give arrays and scalars). */
export type Parser = (text: string) => unknown;

export function isFailure(value: unknown): value is ParseFailure {
  return value instanceof ParseFailure;
}

/** A fresh object for parsed fields. */
export type Fields = Record<string, unknown>;

/**
 * Sets a key on an object built from untrusted input. `__proto__` as a plain assignment would change the
 * object's prototype instead of adding a field; it becomes an own property like every other key.
 */
export function setField(target: Fields, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else target[key] = value;
}

/** Shortens a value for an error message, so a reason never carries a whole line. */
export function excerpt(text: string, max = 40): string {
  const s = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(s);
}
