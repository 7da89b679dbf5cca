/**
 * Time zones for timestamps written without an offset: fixed offsets, `local`, and IANA names through Intl,
 * with the wall-clock → instant conversion cached per quarter hour.
 */

const MINUTE_MS = 60_000;

/** A time zone: converts a wall-clock time written without an offset to the instant it names. */
export interface TimeZone {
  readonly name: string;
  /** `localMs` is the wall-clock time read as if it were UTC; returns the real epoch milliseconds. */
  localToUtc(localMs: number): number;
}

class FixedZone implements TimeZone {
  constructor(
    readonly name: string,
    private readonly offsetMs: number,
  ) {}
  localToUtc(localMs: number): number {
    return localMs - this.offsetMs;
  }
}

/**
 * An IANA zone through Intl. Asking Intl costs microseconds, so offsets are cached per quarter hour of
 * wall-clock time (every zone's transitions fall on quarter hours); the cache is bounded.
 */
class IanaZone implements TimeZone {
  private readonly format: Intl.DateTimeFormat;
  private readonly cache = new Map<number, number>();

  constructor(readonly name: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: name,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
  }

  private offsetAt(utcMs: number): number {
    let year = 0;
    let month = 1;
    let day = 1;
    let hour = 0;
    let minute = 0;
    let second = 0;
    let bc = false;
    for (const p of this.format.formatToParts(utcMs)) {
      switch (p.type) {
        case 'year':
          year = Number(p.value);
          break;
        case 'month':
          month = Number(p.value);
          break;
        case 'day':
          day = Number(p.value);
          break;
        case 'hour':
          hour = Number(p.value);
          break;
        case 'minute':
          minute = Number(p.value);
          break;
        case 'second':
          second = Number(p.value);
          break;
        case 'era':
          bc = p.value.startsWith('B');
          break;
      }
    }
    const wall = utcFromFields(bc ? 1 - year : year, month, day, hour, minute, second, 0);
    return wall - (utcMs - mod(utcMs, 1000));
  }

  localToUtc(localMs: number): number {
    const bucket = Math.floor(localMs / (15 * MINUTE_MS));
    const cached = this.cache.get(bucket);
    if (cached !== undefined) return localMs - cached;
    let offset = this.offsetAt(localMs);
    const second = this.offsetAt(localMs - offset);
    if (second !== offset) offset = second;
    if (this.cache.size > 4096) this.cache.clear();
    this.cache.set(bucket, offset);
    return localMs - offset;
  }
}

const UTC = new FixedZone('UTC', 0);
const zones = new Map<string, TimeZone>();

/** Why `name` is not a usable time zone, or undefined when it is. */
export function checkTimeZone(name: string): string | undefined {
  try {
    timeZone(name);
    return undefined;
  } catch {
    return `unknown time zone "${name}": use an IANA name like Europe/Paris, UTC, local, or an offset like +02:00`;
  }
}

/** `UTC`, `local` (the process's zone), an offset `+02:00`, or an IANA name. Throws RangeError when unknown. */
export function timeZone(name: string): TimeZone {
  const known = zones.get(name);
  if (known) return known;
  let zone: TimeZone;
  const offset = /^([+-])(\d{2}):?(\d{2})$/.exec(name);
  if (name === 'UTC' || name === 'utc' || name === 'Z' || name === 'Etc/UTC' || name === 'GMT') zone = UTC;
  else if (offset) {
    const minutes = Number(offset[2]) * 60 + Number(offset[3]);
    zone = new FixedZone(name, (offset[1] === '-' ? -minutes : minutes) * MINUTE_MS);
  } else if (name === 'local') {
    zone = timeZone(new Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC');
  } else {
    zone = new IanaZone(name); // throws RangeError for an unknown zone
  }
  zones.set(name, zone);
  return zone;
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

/** Epoch milliseconds of a UTC wall-clock time; unlike Date.UTC, years 0–99 are not moved to the 1900s. */
export function utcFromFields(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
): number {
  const t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (year >= 0 && year < 100) return new Date(t).setUTCFullYear(year);
  return t;
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}
