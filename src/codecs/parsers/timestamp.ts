import { excerpt, ParseFailure } from './parser.ts';
import { daysInMonth, type TimeZone, timeZone, utcFromFields } from './time-zone.ts';

/**
 * Timestamps: strptime-style formats (`%d/%b/%Y:%H:%M:%S %z`), a few named ones, and time zones for the
 * many log formats that write local time without an offset. Formats are compiled once into a list of
 * steps; parsing a value walks the text once with no regex and no Date object until the final instant.
 * Results are epoch milliseconds; events carry them as ISO-8601 UTC strings (`toIso`), like the sources do.
 */

/** Formats with a name instead of strftime directives. */
export const NAMED_TIMESTAMP_FORMATS = ['rfc3339', 'iso8601', 'unix', 'unix_ms', 'unix_us', 'unix_ns'] as const;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTH_NAMES = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
/** Zone abbreviations seen in logs whose offset is unambiguous enough to use. */
const ZONE_ABBREVIATIONS: Record<string, number> = {
  UTC: 0,
  UT: 0,
  GMT: 0,
  Z: 0,
  EST: -300,
  EDT: -240,
  CST: -360,
  CDT: -300,
  MST: -420,
  MDT: -360,
  PST: -480,
  PDT: -420,
  CET: 60,
  CEST: 120,
  EET: 120,
  EEST: 180,
  WET: 0,
  WEST: 60,
};

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** ISO-8601 in UTC with milliseconds, as sources write `timestamp`; undefined for an instant out of range. */
export function toIso(ms: number): string | undefined {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return undefined;
  return new Date(ms).toISOString();
}

// ---------------------------------------------------------------------------------------------------------
// strptime

type Step =
  | { kind: 'literal'; text: string }
  | { kind: 'space' }
  | { kind: 'field'; directive: string; padSpace?: boolean };

interface Fields {
  year?: number;
  twoDigitYear?: number;
  month?: number;
  day?: number;
  dayOfYear?: number;
  hour: number;
  hour12?: number;
  pm?: boolean;
  minute: number;
  second: number;
  ms: number;
  offsetMinutes?: number;
  zone?: TimeZone;
  epochMs?: number;
}

const DIRECTIVES = new Set([
  'Y',
  'y',
  'C',
  'm',
  'd',
  'e',
  'H',
  'k',
  'I',
  'l',
  'p',
  'P',
  'M',
  'S',
  'f',
  '.f',
  'L',
  'b',
  'h',
  'B',
  'a',
  'A',
  'j',
  'z',
  ':z',
  'Z',
  's',
]);
const EXPANSIONS: Record<string, string> = {
  T: '%H:%M:%S',
  F: '%Y-%m-%d',
  D: '%m/%d/%y',
  R: '%H:%M',
  r: '%I:%M:%S %p',
  n: ' ',
  t: ' ',
};

/** Why `format` cannot be used, or undefined when it can. */
export function checkTimestampFormat(format: string): string | undefined {
  if ((NAMED_TIMESTAMP_FORMATS as readonly string[]).includes(format)) return undefined;
  try {
    compileSteps(format);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function compileSteps(format: string): Step[] {
  const steps: Step[] = [];
  let literal = '';
  const flush = () => {
    if (literal) steps.push({ kind: 'literal', text: literal });
    literal = '';
  };
  const expanded = format.replace(/%([TFDRrnt])/g, (_, d: string) => EXPANSIONS[d]!);
  for (let i = 0; i < expanded.length; i++) {
    const c = expanded[i]!;
    if (c === ' ' || c === '\t') {
      flush();
      if (steps[steps.length - 1]?.kind !== 'space') steps.push({ kind: 'space' });
      continue;
    }
    if (c !== '%') {
      literal += c;
      continue;
    }
    let d = expanded[++i];
    if (d === undefined) throw new Error(`timestamp format "${format}" ends with a lone %`);
    if (d === '%') {
      literal += '%';
      continue;
    }
    let padSpace = false;
    if (d === '-' || d === '_' || d === '0') {
      padSpace = d === '_';
      d = expanded[++i];
    }
    if (d === '.' || d === ':') {
      const next = expanded[++i];
      d = d + (next === '3' || next === '6' || next === '9' ? expanded[++i] : next);
    } else if ((d === '3' || d === '6' || d === '9') && expanded[i + 1] === 'f') {
      d = expanded[++i];
    }
    if (d === undefined || !DIRECTIVES.has(d)) {
      throw new Error(
        `timestamp format "${format}": unknown directive %${d ?? ''}; supported: %Y %y %m %d %e %H %k %I %l %p %M %S %f %.f %L %b %B %a %A %j %z %Z %s %T %F %D %R %%`,
      );
    }
    flush();
    steps.push({ kind: 'field', directive: d, padSpace });
  }
  flush();
  return steps;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** A compiled timestamp format: text (or a number for the unix formats) to epoch milliseconds. */
export interface TimestampParser {
  parse(value: unknown, nowMs?: number): number | ParseFailure;
}

/**
 * Compiles a format once. `format` is a strftime pattern or one of NAMED_TIMESTAMP_FORMATS (`rfc3339`
 * accepts any ISO-8601 date-time; without an offset it is read in `zone`). Throws for an invalid format or
 * zone (checked at config validation, so build never sees one).
 */
export function compileTimestampParser(format: string, zoneName = 'UTC'): TimestampParser {
  const zone = timeZone(zoneName);
  switch (format) {
    case 'rfc3339':
    case 'iso8601':
      return { parse: (v) => (typeof v === 'string' ? parseIso(v, zone) : notText(v, format)) };
    case 'unix':
      return { parse: (v) => parseEpoch(v, 1000) };
    case 'unix_ms':
      return { parse: (v) => parseEpoch(v, 1) };
    case 'unix_us':
      return { parse: (v) => parseEpoch(v, 0.001) };
    case 'unix_ns':
      return { parse: (v) => parseEpoch(v, 0.000001) };
  }
  const steps = compileSteps(format);
  const hasYear = steps.some(
    (s) => s.kind === 'field' && (s.directive === 'Y' || s.directive === 'y' || s.directive === 's'),
  );
  return {
    parse(value, nowMs = Date.now()) {
      if (typeof value !== 'string') return notText(value, format);
      return parseWithSteps(value, steps, format, zone, hasYear, nowMs);
    },
  };
}

function notText(value: unknown, format: string): ParseFailure {
  return new ParseFailure(`expected a string for timestamp format ${format}, found ${typeof value}`);
}

function parseEpoch(value: unknown, unitMs: number): number | ParseFailure {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(value)) n = Number(value);
  else return new ParseFailure(`not an epoch number: ${typeof value === 'string' ? excerpt(value) : typeof value}`);
  const ms = n * unitMs;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return new ParseFailure(`epoch value out of range: ${n}`);
  return Math.round(ms * 1000) / 1000;
}

const ISO =
  /^([+-]?\d{4,6})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** ISO-8601 / RFC 3339 date-times; a value without an offset is wall-clock time in `zone`. */
export function parseIso(text: string, zone: TimeZone): number | ParseFailure {
  const m = ISO.exec(text);
  if (!m) return new ParseFailure(`not an ISO-8601 timestamp: ${excerpt(text)}`);
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 24 || minute > 59 || second > 60) {
    return new ParseFailure(`invalid date or time in ${excerpt(text)}`);
  }
  const local = utcFromFields(year, month, day, hour, minute, second, ms);
  const tz = m[8];
  if (tz === undefined) return zone.localToUtc(local);
  if (tz === 'Z' || tz === 'z') return local;
  const sign = tz[0] === '-' ? -1 : 1;
  const digits = tz.slice(1).replace(':', '');
  const offset = Number(digits.slice(0, 2)) * 60 + (digits.length > 2 ? Number(digits.slice(2, 4)) : 0);
  return local - sign * offset * MINUTE_MS;
}

function readNumber(text: string, pos: number, min: number, max: number): [number, number] {
  let value = 0;
  let i = pos;
  const end = Math.min(text.length, pos + max);
  while (i < end && isDigit(text.charCodeAt(i))) value = value * 10 + (text.charCodeAt(i++) - 48);
  return i - pos < min ? [-1, pos] : [value, i];
}

function readName(text: string, pos: number, short: string[], long: string[]): [number, number] {
  const rest = text.slice(pos, pos + 12).toLowerCase();
  for (let k = 0; k < long.length; k++) if (rest.startsWith(long[k]!)) return [k, pos + long[k]!.length];
  for (let k = 0; k < short.length; k++) if (rest.startsWith(short[k]!)) return [k, pos + 3];
  return [-1, pos];
}

function parseWithSteps(
  text: string,
  steps: Step[],
  format: string,
  zone: TimeZone,
  hasYear: boolean,
  nowMs: number,
): number | ParseFailure {
  const f: Fields = { hour: 0, minute: 0, second: 0, ms: 0 };
  let pos = 0;
  const fail = (what: string) =>
    new ParseFailure(`timestamp ${excerpt(text)} does not match format ${JSON.stringify(format)}: ${what}`);
  for (const step of steps) {
    if (step.kind === 'space') {
      while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t')) pos++;
      continue;
    }
    if (step.kind === 'literal') {
      if (!text.startsWith(step.text, pos)) return fail(`expected ${JSON.stringify(step.text)} at position ${pos}`);
      pos += step.text.length;
      continue;
    }
    const d = step.directive;
    if (d === 'e' || d === 'k' || d === 'l' || step.padSpace) while (text[pos] === ' ') pos++;
    let v: number;
    switch (d) {
      case 'Y': {
        let sign = 1;
        if (text[pos] === '-' || text[pos] === '+') {
          sign = text[pos] === '-' ? -1 : 1;
          pos++;
        }
        [v, pos] = readNumber(text, pos, 1, 4);
        if (v < 0) return fail('expected a year (%Y)');
        f.year = sign * v;
        break;
      }
      case 'y':
        [v, pos] = readNumber(text, pos, 2, 2);
        if (v < 0) return fail('expected a two-digit year (%y)');
        f.twoDigitYear = v;
        break;
      case 'C':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 0) return fail('expected a century (%C)');
        break;
      case 'm':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 1 || v > 12) return fail('expected a month number 1-12 (%m)');
        f.month = v;
        break;
      case 'd':
      case 'e':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 1 || v > 31) return fail('expected a day of the month (%d)');
        f.day = v;
        break;
      case 'j':
        [v, pos] = readNumber(text, pos, 1, 3);
        if (v < 1 || v > 366) return fail('expected a day of the year (%j)');
        f.dayOfYear = v;
        break;
      case 'H':
      case 'k':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 0 || v > 24) return fail('expected an hour 0-23 (%H)');
        f.hour = v;
        break;
      case 'I':
      case 'l':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 1 || v > 12) return fail('expected an hour 1-12 (%I)');
        f.hour12 = v;
        break;
      case 'p':
      case 'P': {
        const ap = text.slice(pos, pos + 2).toLowerCase();
        if (ap !== 'am' && ap !== 'pm') return fail('expected AM or PM (%p)');
        f.pm = ap === 'pm';
        pos += 2;
        break;
      }
      case 'M':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 0 || v > 59) return fail('expected minutes (%M)');
        f.minute = v;
        break;
      case 'S':
        [v, pos] = readNumber(text, pos, 1, 2);
        if (v < 0 || v > 60) return fail('expected seconds (%S)');
        f.second = v;
        break;
      case 'f':
      case '.f':
      case 'L': {
        if (d.startsWith('.')) {
          if (text[pos] !== '.' && text[pos] !== ',') break; // %.f: the fraction is optional
          pos++;
        }
        const start = pos;
        while (pos < text.length && isDigit(text.charCodeAt(pos))) pos++;
        if (pos === start) return fail('expected fractional seconds (%f)');
        f.ms = Number(text.slice(start, start + 3).padEnd(3, '0'));
        break;
      }
      case 'b':
      case 'h':
      case 'B':
        [v, pos] = readName(text, pos, MONTHS, MONTH_NAMES);
        if (v < 0) return fail('expected a month name (%b)');
        f.month = v + 1;
        break;
      case 'a':
      case 'A':
        [v, pos] = readName(text, pos, DAYS, DAY_NAMES);
        if (v < 0) return fail('expected a weekday name (%a)');
        break;
      case 'z':
      case ':z': {
        if (text[pos] === 'Z' || text[pos] === 'z') {
          f.offsetMinutes = 0;
          pos++;
          break;
        }
        const sign = text[pos] === '-' ? -1 : text[pos] === '+' ? 1 : 0;
        if (sign === 0) return fail('expected an offset like +0200 (%z)');
        let h: number;
        [h, pos] = readNumber(text, pos + 1, 2, 2);
        if (h < 0) return fail('expected an offset like +0200 (%z)');
        if (text[pos] === ':') pos++;
        let m = 0;
        if (isDigit(text.charCodeAt(pos))) [m, pos] = readNumber(text, pos, 2, 2);
        if (m < 0 || m > 59) return fail('expected an offset like +0200 (%z)');
        f.offsetMinutes = sign * (h * 60 + m);
        break;
      }
      case 'Z': {
        const start = pos;
        while (pos < text.length && /[A-Za-z_/+\-0-9]/.test(text[pos]!)) pos++;
        const name = text.slice(start, pos);
        const abbreviation = ZONE_ABBREVIATIONS[name];
        if (abbreviation !== undefined) f.offsetMinutes = abbreviation;
        else {
          try {
            f.zone = timeZone(name);
          } catch {
            return fail(`unknown time zone ${JSON.stringify(name)} (%Z)`);
          }
        }
        break;
      }
      case 's': {
        const m = /^[+-]?\d+(?:\.\d+)?/.exec(text.slice(pos, pos + 32));
        if (!m) return fail('expected epoch seconds (%s)');
        pos += m[0].length;
        f.epochMs = Number(m[0]) * 1000;
        break;
      }
    }
  }
  if (pos !== text.length && text.slice(pos).trim() !== '') return fail(`unexpected text at position ${pos}`);
  if (f.epochMs !== undefined) return Math.round(f.epochMs);

  let hour = f.hour;
  if (f.hour12 !== undefined) hour = (f.hour12 % 12) + (f.pm ? 12 : 0);
  let month = f.month ?? 1;
  let day = f.day ?? 1;
  let year: number;
  if (f.year !== undefined) year = f.year;
  else if (f.twoDigitYear !== undefined) year = f.twoDigitYear < 69 ? 2000 + f.twoDigitYear : 1900 + f.twoDigitYear;
  else year = new Date(nowMs).getUTCFullYear();
  if (f.dayOfYear !== undefined) {
    const d = new Date(utcFromFields(year, 1, 1, 0, 0, 0, 0) + (f.dayOfYear - 1) * DAY_MS);
    month = d.getUTCMonth() + 1;
    day = d.getUTCDate();
  }
  if (day > daysInMonth(year, month)) return fail(`day ${day} does not exist in month ${month} of ${year}`);
  const compute = (y: number) => {
    const local = utcFromFields(y, month, day, hour, f.minute, f.second, f.ms);
    if (f.offsetMinutes !== undefined) return local - f.offsetMinutes * MINUTE_MS;
    return (f.zone ?? zone).localToUtc(local);
  };
  let ms = compute(year);
  // A format without a year (classic syslog) names the most recent such date: December lines read in January.
  if (!hasYear && ms > nowMs + DAY_MS) ms = compute(year - 1);
  if (!Number.isFinite(ms)) return fail('out of range');
  return ms;
}
