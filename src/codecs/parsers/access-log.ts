import { excerpt, type Fields, ParseFailure } from './parser.ts';
import { daysInMonth, utcFromFields } from './time-zone.ts';

/**
 * Web-server access lines in the Common and Combined Log Formats, shared by Apache (`%h %l %u %t "%r" %>s %b
 * "%{Referer}i" "%{User-agent}i"`) and nginx's stock `combined`:
 *
 *   203.0.113.9 - frank [05/Mar/2025:14:02:17 +0100] "GET /cart?id=7 HTTP/1.1" 200 2326 "https://ex.com/" "Mozilla/5.0 (…)"
 *
 * gives `client`, `ident`, `user`, `timestamp` (ISO-8601 UTC), `method`, `path`, `protocol`, `status` (int),
 * `bytes` (int), and for combined `referrer` and `agent`. A `-` means "none": the field is left out, except
 * `bytes`, where CLF's `-` means zero bytes sent. A request line that is not `METHOD TARGET [PROTOCOL]` (a TLS
 * handshake sent to port 80, an empty request) is kept whole in `request`. Escapes in quoted fields are undone:
 * Apache's `\"` and `\\`, C escapes, and nginx's `\xHH` bytes (decoded as UTF-8).
 *
 * A hand-written scanner rather than a regex: it is the hot path of the default config, and indexOf-based
 * scanning is several times faster than even a well-anchored RegExp with nine groups.
 */

const MONTH_BY_NAME = new Map(
  ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].map((m, i) => [m, i + 1]),
);

const utf8 = new TextDecoder('utf-8', { fatal: false });

function digit(text: string, i: number): number {
  const c = text.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : Number.NaN;
}

function twoDigits(text: string, i: number): number {
  return digit(text, i) * 10 + digit(text, i + 1);
}

let lastHttpDate = '';
let lastHttpDateIso = '';

/**
 * `10/Oct/2000:13:55:36 -0700` to ISO-8601 UTC, or undefined. Consecutive lines mostly share their second,
 * so the last conversion is remembered.
 */
export function httpDateToIso(text: string): string | undefined {
  if (text === lastHttpDate) return lastHttpDateIso;
  if (text.length !== 26 || text[2] !== '/' || text[6] !== '/' || text[11] !== ':' || text[20] !== ' ')
    return undefined;
  const day = twoDigits(text, 0);
  const month = MONTH_BY_NAME.get(text.slice(3, 6));
  const year = twoDigits(text, 7) * 100 + twoDigits(text, 9);
  const hour = twoDigits(text, 12);
  const minute = twoDigits(text, 15);
  const second = twoDigits(text, 18);
  const sign = text[21] === '-' ? -1 : text[21] === '+' ? 1 : 0;
  const offset = twoDigits(text, 22) * 60 + twoDigits(text, 24);
  if (
    month === undefined ||
    sign === 0 ||
    !(day >= 1 && day <= daysInMonth(year, month) && hour <= 23 && minute <= 59 && second <= 60 && offset <= 1440)
  ) {
    return undefined;
  }
  const ms = utcFromFields(year, month, day, hour, minute, second, 0) - sign * offset * 60_000;
  if (!Number.isFinite(ms)) return undefined;
  lastHttpDate = text;
  lastHttpDateIso = new Date(ms).toISOString();
  return lastHttpDateIso;
}

/** Index of the quote closing a field opened at `start - 1`, skipping backslash-escaped quotes; -1 if none. */
function closingQuote(text: string, start: number): number {
  let q = text.indexOf('"', start);
  while (q > 0) {
    let backslashes = 0;
    for (let b = q - 1; b >= start && text.charCodeAt(b) === 92; b--) backslashes++;
    if (backslashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
  return -1;
}

/** Undoes Apache and nginx escaping in a quoted field. */
export function unescapeLogField(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  let out = '';
  let bytes: number[] | undefined;
  const flushBytes = () => {
    if (bytes) out += utf8.decode(Uint8Array.from(bytes));
    bytes = undefined;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      flushBytes();
      out += c;
      continue;
    }
    const e = s[i + 1]!;
    if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
      bytes ??= [];
      bytes.push(Number.parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
      continue;
    }
    flushBytes();
    i++;
    out += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
  }
  flushBytes();
  return out;
}

function isToken(s: string): boolean {
  if (s.length === 0 || s.length > 32) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95)) return false;
  }
  return true;
}

function setRequest(fields: Fields, raw: string): void {
  if (raw === '' || raw === '-') return;
  const request = unescapeLogField(raw);
  const first = request.indexOf(' ');
  const method = first < 0 ? '' : request.slice(0, first);
  if (!isToken(method)) {
    fields.request = request;
    return;
  }
  const last = request.lastIndexOf(' ');
  fields.method = method;
  if (last > first && request.startsWith('HTTP/', last + 1)) {
    fields.path = request.slice(first + 1, last);
    fields.protocol = request.slice(last + 1);
  } else {
    fields.path = request.slice(first + 1);
  }
}

function fail(what: string): ParseFailure {
  return new ParseFailure(`not an access log line: ${what}`);
}

/**
 * Parses a Common (`combined` false) or Combined Log Format line into `into` (a fresh object by default; the
 * parse transform passes its copy of the event to save an object per line). On failure `into` may hold
 * some fields already and must be discarded.
 */
export function parseAccessLog(text: string, combined: boolean, into: Fields = {}): Fields | ParseFailure {
  const s1 = text.indexOf(' ');
  if (s1 <= 0) return fail('no client address');
  const s2 = text.indexOf(' ', s1 + 1);
  if (s2 < 0) return fail('no ident field');
  const s3 = text.indexOf(' ', s2 + 1);
  if (s3 < 0 || text.charCodeAt(s3 + 1) !== 91 /* [ */) return fail('no [time]');
  const close = text.indexOf(']', s3 + 2);
  if (close < 0) return fail('unterminated [time]');
  const timestamp = httpDateToIso(text.slice(s3 + 2, close));
  if (timestamp === undefined) return fail(`bad time ${excerpt(text.slice(s3 + 2, close))}`);
  if (text.charCodeAt(close + 1) !== 32 || text.charCodeAt(close + 2) !== 34) return fail('no quoted request');
  const requestEnd = closingQuote(text, close + 3);
  if (requestEnd < 0) return fail('unterminated request');
  if (text.charCodeAt(requestEnd + 1) !== 32) return fail('no status');
  const statusStart = requestEnd + 2;
  const statusEnd = text.indexOf(' ', statusStart);
  if (statusEnd < 0) return fail('no byte count');
  let status: number | undefined;
  if (statusEnd - statusStart === 3) {
    status = digit(text, statusStart) * 100 + twoDigits(text, statusStart + 1);
    if (Number.isNaN(status)) return fail('status is not a number');
  } else if (!(statusEnd - statusStart === 1 && text.charCodeAt(statusStart) === 45)) {
    return fail('status is not a number');
  }
  const bytesStart = statusEnd + 1;
  let bytesEnd = combined ? text.indexOf(' ', bytesStart) : text.length;
  if (bytesEnd < 0) return fail('no referrer');
  if (!combined) while (bytesEnd > bytesStart && text.charCodeAt(bytesEnd - 1) <= 32) bytesEnd--;
  let bytes = 0;
  if (!(bytesEnd - bytesStart === 1 && text.charCodeAt(bytesStart) === 45)) {
    if (bytesEnd === bytesStart || bytesEnd - bytesStart > 15) return fail('byte count is not a number');
    for (let i = bytesStart; i < bytesEnd; i++) {
      const d = digit(text, i);
      if (Number.isNaN(d)) return fail('byte count is not a number');
      bytes = bytes * 10 + d;
    }
  }

  const fields = into;
  fields.client = text.slice(0, s1);
  const ident = text.slice(s1 + 1, s2);
  if (ident !== '-') fields.ident = ident;
  const user = text.slice(s2 + 1, s3);
  if (user !== '-') fields.user = user;
  fields.timestamp = timestamp;
  setRequest(fields, text.slice(close + 3, requestEnd));
  if (status !== undefined) fields.status = status;
  fields.bytes = bytes;
  if (!combined) return fields;

  if (text.charCodeAt(bytesEnd + 1) !== 34) return fail('no quoted referrer');
  const referrerEnd = closingQuote(text, bytesEnd + 2);
  if (referrerEnd < 0) return fail('unterminated referrer');
  if (text.charCodeAt(referrerEnd + 1) !== 32 || text.charCodeAt(referrerEnd + 2) !== 34)
    return fail('no quoted user agent');
  const agentEnd = closingQuote(text, referrerEnd + 3);
  if (agentEnd < 0) return fail('unterminated user agent');
  for (let i = agentEnd + 1; i < text.length; i++) {
    if (text.charCodeAt(i) > 32) return fail('unexpected text after the user agent');
  }
  const referrer = text.slice(bytesEnd + 2, referrerEnd);
  if (referrer !== '-' && referrer !== '') fields.referrer = unescapeLogField(referrer);
  const agent = text.slice(referrerEnd + 3, agentEnd);
  if (agent !== '-' && agent !== '') fields.agent = unescapeLogField(agent);
  return fields;
}
