/**
 * Syslog message parsing: RFC 5424 and RFC 3164 (BSD), detected per message.
 *
 *   RFC 5424: <165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event
 *   RFC 3164: <34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8
 *
 * A message is RFC 5424 when a version number follows the `<PRI>`; anything else after `<PRI>` is read as
 * RFC 3164 the way real senders write it (rsyslog, syslog-ng, BusyBox, util-linux `logger`): an optional
 * timestamp (`Mmm dd hh:mm:ss[.fff]` in the collector's local time zone, or RFC 3339), an optional hostname,
 * an optional `TAG[PID]:`, then the message. RFC 5424's NILVALUE (`-`) leaves its field out.
 *
 * The parser never throws: a line that is not syslog (no `<PRI>`, a malformed RFC 5424 header or structured
 * data) returns undefined and `error` says why; the source then keeps the raw line as `message`.
 */

export const FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'security',
  'console',
  'solaris-cron',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

export const SEVERITIES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

/** Structured data: `{ "exampleSDID@32473": { "iut": "3" } }`. */
import type { Event } from '../core/event.ts';

export type StructuredData = Record<string, Record<string, string>>;

/** The fields of one parsed message; absent (NILVALUE or not in the format) fields are undefined. */
export interface SyslogMessage {
  facility: string;
  severity: string;
  /** ISO-8601 in UTC, millisecond precision; undefined when the message has no timestamp. */
  timestamp: string | undefined;
  hostname: string | undefined;
  appname: string | undefined;
  procid: string | undefined;
  msgid: string | undefined;
  structured_data: StructuredData | undefined;
  /** The MSG part (RFC 5424: a leading UTF-8 BOM removed; RFC 3164: the text after `TAG: `). */
  message: string;
}

const SP = 0x20;
const LT = 0x3c;
const GT = 0x3e;
const DASH = 0x2d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const EQUALS = 0x3d;
const COLON = 0x3a;
const BOM = 0xfeff;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/;
/** `Mmm dd hh:mm:ss` with an optional fraction; the day is space-padded (`Mar  5`) or not (`Mar 05`, `Mar 5`). */
const BSD_TIMESTAMP = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?= |$)/;
const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};
/** A 3164 TAG: printable characters up to `[`, `:` or a space (32 is the RFC limit; real tags run longer). */
const TAG_CHAR = /^[^\s[\]:]{1,64}/;
/** A year-less BSD date this far ahead of the collector's clock belongs to the previous year (Dec 31 → Jan 1). */
const FUTURE_TOLERANCE_MS = 7 * 86_400_000;
const HEADER_FIELDS = ['TIMESTAMP', 'HOSTNAME', 'APP-NAME', 'PROCID', 'MSGID'] as const;

/**
 * The event of a parsed message, as every syslog-speaking source emits it: `message`, `timestamp` (the
 * message's, or `received`), `host` (the sender), `source_type`, `facility`, `severity`, the fields the message
 * has, then `_id`.
 */
export function syslogEvent(m: SyslogMessage, received: string, host: string, sourceType: string, id: string): Event {
  const e: Event = {
    message: m.message,
    timestamp: m.timestamp ?? received,
    host,
    source_type: sourceType,
    facility: m.facility,
    severity: m.severity,
  };
  if (m.hostname !== undefined) e.hostname = m.hostname;
  if (m.appname !== undefined) e.appname = m.appname;
  if (m.procid !== undefined) e.procid = m.procid;
  if (m.msgid !== undefined) e.msgid = m.msgid;
  if (m.structured_data !== undefined) e.structured_data = m.structured_data;
  e._id = id;
  return e;
}

export class SyslogParser {
  /** Why the last parse() returned undefined. */
  error = '';
  /** The last RFC 3339 timestamp and its ISO form: messages of one burst often share it. */
  private lastRfc3339 = '';
  private lastIso = '';
  /**
   * The last BSD timestamp's text, the second of the clock it was read at, and its ISO form: lines of one
   * second share it, and reading one (a regex, a local-time conversion) was ~1 µs of the syslog source's time.
   */
  private lastBsd = '';
  private lastBsdSecond = -1;
  private lastBsdIso = '';

  /** Parses one message (no trailing newline). `nowMs` anchors the year of RFC 3164 timestamps. */
  parse(line: string, nowMs: number = Date.now()): SyslogMessage | undefined {
    if (line.charCodeAt(0) !== LT) return this.fail('no <PRI> at the start');
    let pri = 0;
    let i = 1;
    for (; i < 4 && i < line.length; i++) {
      const c = line.charCodeAt(i);
      if (c === GT) break;
      if (c < 0x30 || c > 0x39) return this.fail('<PRI> is not a number');
      pri = pri * 10 + (c - 0x30);
    }
    if (i === 1 || line.charCodeAt(i) !== GT) return this.fail('<PRI> is not 1 to 3 digits closed by >');
    if (pri > 191) return this.fail(`<PRI> ${pri} is over 191`);
    const facility = FACILITIES[pri >> 3]!;
    const severity = SEVERITIES[pri & 7]!;
    i++;
    // RFC 5424: VERSION (a non-zero digit, 1 today) then SP; a 3164 timestamp starts with a letter.
    const c0 = line.charCodeAt(i);
    if (c0 >= 0x31 && c0 <= 0x39) {
      const c1 = line.charCodeAt(i + 1);
      if (c1 === SP || (c1 >= 0x30 && c1 <= 0x39 && line.charCodeAt(i + 2) === SP)) {
        const afterVersion = c1 === SP ? i + 2 : i + 3;
        // Not 5424 after all when what follows cannot be its TIMESTAMP (e.g. `<13>1 apple fell`).
        const t = line.charCodeAt(afterVersion);
        if (t === DASH || (t >= 0x30 && t <= 0x39 && line.charCodeAt(afterVersion + 4) === DASH)) {
          return this.parse5424(line, afterVersion, facility, severity);
        }
      }
    }
    return this.parse3164(line, i, facility, severity, nowMs);
  }

  /** An RFC 3339 timestamp as ISO-8601 in UTC, or undefined when it is not one. */
  private rfc3339(text: string): string | undefined {
    // lastIso is '' until a timestamp was parsed: an empty token must not hit the initial ''.
    if (text === this.lastRfc3339 && this.lastIso !== '') return this.lastIso;
    const ms = RFC3339.test(text) ? Date.parse(text) : Number.NaN;
    if (Number.isNaN(ms)) return undefined;
    this.lastRfc3339 = text;
    this.lastIso = new Date(ms).toISOString();
    return this.lastIso;
  }

  private fail(reason: string): undefined {
    this.error = reason;
    return undefined;
  }

  private parse5424(line: string, start: number, facility: string, severity: string): SyslogMessage | undefined {
    let i = start;
    const header: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
    const names = HEADER_FIELDS;
    for (let f = 0; f < 5; f++) {
      const sp = line.indexOf(' ', i);
      if (sp < 0) {
        const missing = i >= line.length ? names[f] : (names[f + 1] ?? 'STRUCTURED-DATA');
        return this.fail(`RFC 5424 header ends before ${missing}`);
      }
      if (sp === i) return this.fail(`RFC 5424 ${names[f]} is empty (two spaces)`);
      if (!(sp === i + 1 && line.charCodeAt(i) === DASH)) header[f] = line.slice(i, sp);
      i = sp + 1;
    }
    let timestamp: string | undefined;
    if (header[0] !== undefined) {
      timestamp = this.rfc3339(header[0]);
      if (timestamp === undefined) return this.fail(`RFC 5424 TIMESTAMP "${header[0]}" is not RFC 3339`);
    }
    let structured: StructuredData | undefined;
    if (line.charCodeAt(i) === DASH) {
      i++;
    } else if (line.charCodeAt(i) === LBRACKET) {
      structured = {};
      i = this.parseStructuredData(line, i, structured);
      if (i < 0) return undefined;
    } else {
      return this.fail('RFC 5424 STRUCTURED-DATA is neither - nor [');
    }
    let message = '';
    if (i < line.length) {
      if (line.charCodeAt(i) !== SP) return this.fail('RFC 5424 STRUCTURED-DATA is not followed by a space');
      message = line.charCodeAt(i + 1) === BOM ? line.slice(i + 2) : line.slice(i + 1);
    }
    return {
      facility,
      severity,
      timestamp,
      hostname: header[1],
      appname: header[2],
      procid: header[3],
      msgid: header[4],
      structured_data: structured,
      message,
    };
  }

  /** Parses `[id k="v" …][id2 …]` from `i` into `out`; returns the index after the last `]`, or -1. */
  private parseStructuredData(line: string, i: number, out: StructuredData): number {
    const n = line.length;
    while (i < n && line.charCodeAt(i) === LBRACKET) {
      i++;
      let end = i;
      while (end < n) {
        const c = line.charCodeAt(end);
        if (c === SP || c === RBRACKET || c === EQUALS || c === QUOTE) break;
        end++;
      }
      if (end === i) return this.fail('structured data element without SD-ID') ?? -1;
      const id = line.slice(i, end);
      const params: Record<string, string> = Object.hasOwn(out, id) ? out[id]! : {};
      setOwn(out, id, params);
      i = end;
      for (;;) {
        const c = line.charCodeAt(i);
        if (c === RBRACKET) {
          i++;
          break;
        }
        if (c !== SP) return this.fail(`structured data element [${id} is not closed by ]`) ?? -1;
        i++;
        const eq = line.indexOf('=', i);
        if (eq <= i || line.charCodeAt(eq + 1) !== QUOTE) {
          return this.fail(`structured data element [${id} has a parameter without ="value"`) ?? -1;
        }
        const name = line.slice(i, eq);
        // PARAM-VALUE escapes only `"`, `\` and `]`; a backslash before anything else stays as it is.
        let value = '';
        let from = eq + 2;
        let j = from;
        for (;;) {
          if (j >= n) return this.fail(`structured data value of ${id}.${name} has no closing quote`) ?? -1;
          const v = line.charCodeAt(j);
          if (v === QUOTE) break;
          if (v === BACKSLASH) {
            const next = line.charCodeAt(j + 1);
            if (next === QUOTE || next === BACKSLASH || next === RBRACKET) {
              value += line.slice(from, j);
              from = j + 1;
              j += 2;
              continue;
            }
          }
          j++;
        }
        value += line.slice(from, j);
        setOwn(params, name, value);
        i = j + 1;
      }
    }
    return i;
  }

  private parse3164(
    line: string,
    start: number,
    facility: string,
    severity: string,
    nowMs: number,
  ): SyslogMessage | undefined {
    let i = start;
    let timestamp: string | undefined;
    const rest = line.slice(i);
    const second = Math.floor(nowMs / 1000);
    const last = this.lastBsd;
    if (
      second === this.lastBsdSecond &&
      rest.startsWith(last) &&
      (rest.length === last.length || rest.charCodeAt(last.length) === SP)
    ) {
      timestamp = this.lastBsdIso;
      i += last.length;
    } else {
      const bsd = BSD_TIMESTAMP.exec(rest);
      if (bsd) timestamp = bsdTimestamp(bsd, nowMs);
      if (timestamp !== undefined) {
        i += bsd![0].length;
        this.lastBsd = bsd![0];
        this.lastBsdSecond = second;
        this.lastBsdIso = timestamp;
      }
    }
    if (timestamp === undefined) {
      const sp = rest.indexOf(' ');
      const token = sp < 0 ? rest : rest.slice(0, sp);
      timestamp = this.rfc3339(token);
      if (timestamp !== undefined) i += token.length;
    }
    if (timestamp !== undefined) {
      if (line.charCodeAt(i) === SP) i++;
    }
    let hostname: string | undefined;
    // Without a timestamp there is no hostname either (`<13>app: text`, as BusyBox and some devices send).
    if (timestamp !== undefined) {
      const sp = line.indexOf(' ', i);
      const token = sp < 0 ? line.slice(i) : line.slice(i, sp);
      // A token ending in `:` or holding `[` is already the TAG: the sender left the hostname out.
      if (token.length > 0 && !token.endsWith(':') && !token.includes('[') && sp >= 0) {
        hostname = token;
        i = sp + 1;
      }
    }
    let appname: string | undefined;
    let procid: string | undefined;
    const tail = line.slice(i);
    const tag = TAG_CHAR.exec(tail);
    if (tag) {
      let j = tag[0].length;
      let pid: string | undefined;
      if (tail.charCodeAt(j) === LBRACKET) {
        const close = tail.indexOf(']', j + 1);
        if (close > j + 1 && close - j <= 130) {
          pid = tail.slice(j + 1, close);
          j = close + 1;
        }
      }
      if (tail.charCodeAt(j) === COLON) {
        appname = tag[0];
        procid = pid;
        j++;
        if (tail.charCodeAt(j) === SP) j++;
        i += j;
      } else if (pid !== undefined && (j === tail.length || tail.charCodeAt(j) === SP)) {
        appname = tag[0];
        procid = pid;
        i += j + (j < tail.length ? 1 : 0);
      }
    }
    return {
      facility,
      severity,
      timestamp,
      hostname,
      appname,
      procid,
      msgid: undefined,
      structured_data: undefined,
      message: line.slice(i),
    };
  }
}

/**
 * A BSD timestamp has neither year nor zone: it is read in the collector's time zone, in the year that puts it
 * nearest before the collector's clock, or up to a week after it (a sender whose clock runs ahead): Dec 31 read
 * just after the new year is last year's, Jan 1 read just before it is next year's.
 */
function bsdTimestamp(m: RegExpExecArray, nowMs: number): string | undefined {
  const month = MONTHS[m[1]!];
  const day = Number(m[2]);
  const h = Number(m[3]);
  const min = Number(m[4]);
  const s = Number(m[5]);
  if (month === undefined || day < 1 || day > 31 || h > 23 || min > 59 || s > 60) return undefined;
  const ms = m[6] === undefined ? 0 : Math.floor(Number(`0.${m[6]}`) * 1000);
  const year = new Date(nowMs).getFullYear();
  let date = new Date(year, month, day, h, min, s, ms);
  if (date.getTime() - nowMs > FUTURE_TOLERANCE_MS) {
    date = new Date(year - 1, month, day, h, min, s, ms);
  } else if (nowMs - date.getTime() > 300 * 86_400_000) {
    const next = new Date(year + 1, month, day, h, min, s, ms);
    if (next.getTime() - nowMs <= FUTURE_TOLERANCE_MS) date = next;
  }
  return date.toISOString();
}

/** Assigns without invoking the `__proto__` setter: SD-IDs and parameter names come from the network. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}
