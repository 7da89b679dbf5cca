import { excerpt, type Fields, ParseFailure, setField } from './parser.ts';
import { daysInMonth, type TimeZone, utcFromFields } from './time-zone.ts';

/**
 * nginx's error log (ngx_log.c):
 *
 *   2025/03/05 14:02:17 [error] 1234#1234: *56 open() "/srv/x.png" failed (2: No such file or directory),
 *     client: 203.0.113.9, server: shop.example, request: "GET /x.png HTTP/1.1", host: "shop.example"
 *
 * gives `timestamp` (nginx writes local time without an offset: read in `zone`), `severity`, `pid`, `tid`,
 * `cid` (the connection, when there is one), `message`, and the context nginx appends: `client`, `server`,
 * `request`, `upstream`, `host`, `referrer`, `subrequest`, `port`, `zone` (quoted ones unquoted).
 */
const HEAD = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2}) \[([a-z]+)\] (\d+)#(\d+): (?:\*(\d+) )?/;
const CONTEXT_KEYS = new Set([
  'client',
  'server',
  'request',
  'upstream',
  'host',
  'referrer',
  'subrequest',
  'port',
  'zone',
]);

export function parseNginxError(text: string, zone: TimeZone): Fields | ParseFailure {
  const m = HEAD.exec(text);
  if (!m) return new ParseFailure('not an nginx error log line: expected `YYYY/MM/DD HH:MM:SS [level] PID#TID: …`');
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as number[];
  if (
    !(month! >= 1 && month! <= 12 && day! >= 1 && day! <= daysInMonth(year!, month!) && hour! <= 23 && minute! <= 59)
  ) {
    return new ParseFailure(`invalid date ${excerpt(text.slice(0, 19))} in nginx error log line`);
  }
  const ms = zone.localToUtc(utcFromFields(year!, month!, day!, hour!, minute!, second!, 0));
  const fields: Fields = {
    timestamp: new Date(ms).toISOString(),
    severity: m[7],
    pid: Number(m[8]),
    tid: Number(m[9]),
  };
  if (m[10] !== undefined) fields.cid = Number(m[10]);
  const rest = text.slice(m[0].length);
  const context = rest.indexOf(', client: ');
  fields.message = (context < 0 ? rest : rest.slice(0, context)).trimEnd();
  if (context >= 0) readContext(rest, context + 2, fields);
  return fields;
}

/** `key: value, key: "quoted, value"` pairs after the message; an unknown key ends the context. */
function readContext(text: string, start: number, fields: Fields): void {
  let i = start;
  while (i < text.length) {
    const colon = text.indexOf(': ', i);
    if (colon < 0) return;
    const key = text.slice(i, colon);
    if (!CONTEXT_KEYS.has(key)) return;
    let value: string;
    let next: number;
    if (text[colon + 2] === '"') {
      const close = text.indexOf('"', colon + 3);
      if (close < 0) return;
      value = text.slice(colon + 3, close);
      next = close + 1;
    } else {
      const comma = text.indexOf(', ', colon + 2);
      next = comma < 0 ? text.length : comma;
      value = text.slice(colon + 2, next).trimEnd();
    }
    setField(fields, key, value);
    if (!text.startsWith(', ', next)) return;
    i = next + 2;
  }
}
