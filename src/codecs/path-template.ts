/**
 * Path templates for sinks that place events in files or objects:
 * `data/master/dt=%Y-%m-%d/hour=%H/{{ app }}.ndjson.gz`.
 *
 * strftime fields come from the event's `timestamp` (ISO-8601 string or epoch milliseconds; the current time
 * when it is missing or unparseable), event fields from `{{ field }}` / `{{ a.b }}`. A template is parsed once
 * into segments; rendering caches the time part per distinct second, so a batch whose events share a second
 * renders its strftime fields once and, without event fields, returns the very same string for each event.
 */
import { z } from 'zod';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';

export type Timezone = 'utc' | 'local';

export class PathTemplateError extends FluxoError {
  constructor(message: string) {
    super('FLUXO_PATH_TEMPLATE_INVALID', message);
    this.name = 'PathTemplateError';
  }
}

interface TimeParts {
  Y: string;
  m: string;
  d: string;
  H: string;
  M: string;
  S: string;
  j: string;
  s: string;
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** The strftime fields a template may use. */
const TIME_FIELDS: Readonly<Record<string, (p: TimeParts) => string>> = {
  Y: (p) => p.Y,
  y: (p) => p.Y.slice(-2),
  m: (p) => p.m,
  d: (p) => p.d,
  H: (p) => p.H,
  M: (p) => p.M,
  S: (p) => p.S,
  j: (p) => p.j,
  s: (p) => p.s,
  F: (p) => `${p.Y}-${p.m}-${p.d}`,
  T: (p) => `${p.H}:${p.M}:${p.S}`,
};
export const SUPPORTED_TIME_FIELDS = `${Object.keys(TIME_FIELDS)
  .map((k) => `%${k}`)
  .join(' ')} %%`;

function timeParts(second: number, timezone: Timezone): TimeParts {
  const date = new Date(second * 1000);
  const utc = timezone === 'utc';
  const year = utc ? date.getUTCFullYear() : date.getFullYear();
  const month = utc ? date.getUTCMonth() : date.getMonth();
  const day = utc ? date.getUTCDate() : date.getDate();
  // Calendar arithmetic on the (already zoned) date, so %j is right in both time zones.
  const dayOfYear = (Date.UTC(year, month, day) - Date.UTC(year, 0, 1)) / 86_400_000 + 1;
  return {
    Y: String(year).padStart(4, '0'),
    m: pad2(month + 1),
    d: pad2(day),
    H: pad2(utc ? date.getUTCHours() : date.getHours()),
    M: pad2(utc ? date.getUTCMinutes() : date.getMinutes()),
    S: pad2(utc ? date.getUTCSeconds() : date.getSeconds()),
    j: String(dayOfYear).padStart(3, '0'),
    s: String(second),
  };
}

/** An ISO-8601 date-time: the part up to the seconds, the fraction, the zone. */
const ISO_SECOND = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const LITERAL = 0;
const TIME = 1;
const FIELD = 2;

interface Segment {
  kind: typeof LITERAL | typeof TIME | typeof FIELD;
  /** LITERAL: the text; TIME: the strftime letter; FIELD: the field path as written (`a.b`). */
  text: string;
}

const FIELD_NAME = /^[\w@-]+(\.[\w@-]+)*$/;

function parse(template: string): Segment[] {
  const segments: Segment[] = [];
  let literal = '';
  const flush = () => {
    if (literal !== '') segments.push({ kind: LITERAL, text: literal });
    literal = '';
  };
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === '%') {
      const f = template[i + 1];
      if (f === '%') literal += '%';
      else if (f !== undefined && Object.hasOwn(TIME_FIELDS, f)) {
        flush();
        segments.push({ kind: TIME, text: f });
      } else {
        throw new PathTemplateError(
          `path template "${template}": unknown strftime field "%${f ?? ''}" at position ${i + 1}; supported: ${SUPPORTED_TIME_FIELDS}`,
        );
      }
      i++;
    } else if (c === '{' && template[i + 1] === '{') {
      const end = template.indexOf('}}', i + 2);
      if (end < 0)
        throw new PathTemplateError(`path template "${template}": "{{" at position ${i + 1} is never closed`);
      const name = template.slice(i + 2, end).trim();
      if (!FIELD_NAME.test(name)) {
        throw new PathTemplateError(
          `path template "${template}": "{{${template.slice(i + 2, end)}}}" is not a field name like {{ host }} or {{ kubernetes.pod }}`,
        );
      }
      flush();
      segments.push({ kind: FIELD, text: name });
      i = end + 1;
    } else {
      literal += c;
    }
  }
  flush();
  return segments;
}

/** True when the file name part of the template starts with a literal `.`. */
function fileNameStartsWithDot(segments: Segment[]): boolean {
  for (let i = segments.length - 1; i >= 0; i--) {
    const s = segments[i]!;
    if (s.kind !== LITERAL) continue;
    const slash = s.text.lastIndexOf('/');
    if (slash >= 0) return s.text[slash + 1] === '.';
  }
  // No separator: the name starts with the first segment.
  return segments[0]!.kind === LITERAL && segments[0]!.text.startsWith('.');
}

/** Longest a field value may be in a path; longer values are cut (a file name is at most 255 bytes). */
export const MAX_FIELD_VALUE_LENGTH = 100;

/**
 * Makes an event's field value safe as (part of) one path segment: `/`, `\`, NUL and control characters
 * become `_`, `..` becomes `__`, and a leading `.` becomes `_` (a hidden name would be skipped by
 * Spark/Hive/DuckDB globs, hiding the data).
 */
export function sanitizePathValue(value: string): string {
  let s = value;
  if (s.length > MAX_FIELD_VALUE_LENGTH) {
    // Never cut between the halves of a surrogate pair (it would become U+FFFD on disk).
    const high = s.charCodeAt(MAX_FIELD_VALUE_LENGTH - 1);
    s = s.slice(0, high >= 0xd800 && high <= 0xdbff ? MAX_FIELD_VALUE_LENGTH - 1 : MAX_FIELD_VALUE_LENGTH);
  }
  let unsafe = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x2f || c === 0x5c) {
      unsafe = true;
      break;
    }
  }
  if (unsafe) {
    let out = '';
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      out += c < 0x20 || c === 0x7f || c === 0x2f || c === 0x5c ? '_' : s[i];
    }
    s = out;
  }
  if (s.includes('..')) s = s.replaceAll('..', '__');
  if (s.charCodeAt(0) === 0x2e) s = `_${s.slice(1)}`;
  return s;
}

/** A bounded memo of sanitised values: field values repeat (app names, hosts), so most lookups hit. */
const MAX_SANITISED_CACHE = 4096;

interface FieldSlot {
  index: number;
  name: string;
  path: string[];
  cache: Map<string, string>;
}

export interface PathTemplateOptions {
  timezone?: Timezone;
}

export class PathTemplate {
  readonly template: string;
  /**
   * The directory part before the first field, with its trailing `/` (`data/master/` for
   * `data/master/dt=%Y/part.log`); `''` when the template starts with a field.
   */
  readonly staticDir: string;
  /** How many directory levels below `staticDir` the rendered files are. */
  readonly depth: number;
  readonly hasTimeFields: boolean;
  readonly hasEventFields: boolean;
  /** The field that made the last render() return undefined. */
  missingField: string | undefined;

  private readonly timezone: Timezone;
  private readonly segments: Segment[];
  private readonly fields: FieldSlot[];
  /** Per second: the rendered text of each segment (event fields left empty). */
  private readonly bySecond = new Map<number, string[]>();
  /** Per second, for templates without event fields: the whole path. */
  private readonly pathBySecond = new Map<number, string>();
  private lastSecond = Number.NaN;
  private lastParts: string[] = [];
  private lastPath = '';
  private lastTimestamp: string | undefined;
  private lastTimestampSecond = 0;
  /** `YYYY-MM-DDTHH:MM:SS` and zone of the last timestamp, when it was ISO-8601 in that shape. */
  private isoPrefix: string | undefined;
  private isoZone = '';

  constructor(template: string, options: PathTemplateOptions = {}) {
    this.template = template;
    this.timezone = options.timezone ?? 'utc';
    if (template === '') throw new PathTemplateError('path template is empty');
    if (template.includes('\0')) throw new PathTemplateError(`path template "${template}" contains a NUL byte`);
    if (template.endsWith('/')) {
      throw new PathTemplateError(
        `path template "${template}" ends with "/": it needs a file name, e.g. …/part.ndjson`,
      );
    }
    this.segments = parse(template);
    if (fileNameStartsWithDot(this.segments)) {
      throw new PathTemplateError(
        `path template "${template}": the file name starts with "." so readers (Spark, Hive, DuckDB globs) skip it`,
      );
    }
    this.hasTimeFields = this.segments.some((s) => s.kind === TIME);
    this.fields = [];
    this.segments.forEach((s, index) => {
      if (s.kind === FIELD) this.fields.push({ index, name: s.text, path: s.text.split('.'), cache: new Map() });
    });
    this.hasEventFields = this.fields.length > 0;

    let prefix = '';
    let firstToken = this.segments.length;
    for (let i = 0; i < this.segments.length; i++) {
      if (this.segments[i]!.kind !== LITERAL) {
        firstToken = i;
        break;
      }
      prefix += this.segments[i]!.text;
    }
    // staticDir ends at the prefix's last "/", and fields never render a "/", so the files sit exactly as many
    // levels below it as there are separators after the first field.
    this.staticDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    let depth = 0;
    for (let i = firstToken; i < this.segments.length; i++) {
      const s = this.segments[i]!;
      if (s.kind === LITERAL) depth += s.text.split('/').length - 1;
    }
    this.depth = depth;
  }

  /**
   * The path for `event`, or undefined when an event field of the template is missing, null, empty or not a
   * scalar (`missingField` says which). `nowMs` stands in for a missing or unparseable timestamp.
   */
  render(event: Event, nowMs: number): string | undefined {
    const second = this.hasTimeFields ? this.secondOf(event.timestamp, nowMs) : 0;
    if (second !== this.lastSecond) this.renderSecond(second);
    if (this.fields.length === 0) return this.lastPath;
    const parts = this.lastParts;
    let out = '';
    let f = 0;
    for (let i = 0; i < parts.length; i++) {
      const slot = this.fields[f];
      if (slot !== undefined && slot.index === i) {
        const value = fieldValue(event, slot);
        if (value === undefined) {
          this.missingField = slot.name;
          return undefined;
        }
        out += value;
        f++;
      } else {
        out += parts[i];
      }
    }
    return out;
  }

  private secondOf(timestamp: unknown, nowMs: number): number {
    if (typeof timestamp === 'string') {
      if (timestamp === this.lastTimestamp || this.sameSecondAsLast(timestamp)) return this.lastTimestampSecond;
      const ms = Date.parse(timestamp);
      if (Number.isNaN(ms)) return Math.floor(nowMs / 1000);
      this.lastTimestamp = timestamp;
      this.lastTimestampSecond = Math.floor(ms / 1000);
      const iso = ISO_SECOND.exec(timestamp);
      this.isoPrefix = iso?.[1];
      this.isoZone = iso?.[3] ?? '';
      return this.lastTimestampSecond;
    }
    if (typeof timestamp === 'number' && Number.isFinite(timestamp)) return Math.floor(timestamp / 1000);
    return Math.floor(nowMs / 1000);
  }

  /**
   * Events of a batch differ in milliseconds, so the exact-string memo misses; Date.parse per event would be
   * most of the rendering cost. Same length, same date-time prefix and zone, and only a fraction in between
   * mean the same second.
   */
  private sameSecondAsLast(timestamp: string): boolean {
    const prefix = this.isoPrefix;
    if (prefix === undefined || timestamp.length !== this.lastTimestamp!.length) return false;
    if (!timestamp.startsWith(prefix) || !timestamp.endsWith(this.isoZone)) return false;
    const end = timestamp.length - this.isoZone.length;
    if (end > 19 && timestamp.charCodeAt(19) !== 0x2e) return false;
    for (let i = 20; i < end; i++) {
      const c = timestamp.charCodeAt(i);
      if (c < 0x30 || c > 0x39) return false;
    }
    return true;
  }

  private renderSecond(second: number): void {
    this.lastSecond = second;
    let parts = this.bySecond.get(second);
    if (parts === undefined) {
      const p = this.hasTimeFields ? timeParts(second, this.timezone) : undefined;
      parts = this.segments.map((s) => (s.kind === LITERAL ? s.text : s.kind === TIME ? TIME_FIELDS[s.text]!(p!) : ''));
      // Events of a batch span few seconds; a bounded memo keeps interleaved sources from re-rendering.
      if (this.bySecond.size >= 256) {
        this.bySecond.clear();
        this.pathBySecond.clear();
      }
      this.bySecond.set(second, parts);
    }
    this.lastParts = parts;
    if (this.fields.length === 0) {
      let path = this.pathBySecond.get(second);
      if (path === undefined) {
        path = parts.join('');
        this.pathBySecond.set(second, path);
      }
      this.lastPath = path;
    }
  }
}

function fieldValue(event: Event, slot: FieldSlot): string | undefined {
  let value: unknown = event;
  for (const key of slot.path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  let raw: string;
  if (typeof value === 'string') raw = value;
  else if (typeof value === 'number' && Number.isFinite(value)) raw = String(value);
  else if (typeof value === 'boolean') raw = value ? 'true' : 'false';
  else return undefined;
  if (raw === '') return undefined;
  let safe = slot.cache.get(raw);
  if (safe === undefined) {
    safe = sanitizePathValue(raw);
    if (slot.cache.size >= MAX_SANITISED_CACHE) slot.cache.clear();
    slot.cache.set(raw, safe);
  }
  return safe;
}

/** Returns the error message for an invalid template, for config validation. */
export function checkPathTemplate(template: string): string | undefined {
  try {
    new PathTemplate(template);
    return undefined;
  } catch (error) {
    if (error instanceof PathTemplateError) return error.message;
    throw error;
  }
}

/** Compression extensions that sit after a format extension (`part.ndjson.gz`). */
const COMPRESSION_EXTENSIONS = new Set(['gz', 'bz2', 'xz', 'zst', 'lz4', 'br', 'snappy', 'z']);

/**
 * Where the extensions of a file name start: the last `.ext`, and the one before it when the last is a
 * compression extension (`part.ndjson.gz` → at `.ndjson`; `app.v2.log` → at `.log`). A leading dot does not
 * start an extension. Returns the name's length when it has none.
 */
export function extensionStart(name: string): number {
  const last = name.lastIndexOf('.');
  if (last <= 0) return name.length;
  if (!COMPRESSION_EXTENSIONS.has(name.slice(last + 1).toLowerCase())) return last;
  const before = name.lastIndexOf('.', last - 1);
  return before > 0 ? before : last;
}

/** `20261124T074501Z`: a compact UTC stamp for file names. */
export function compactUtcStamp(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/**
 * Inserts `-<stamp>-<unique>` before the extensions of the path's file name:
 * `a/part.ndjson.gz` → `a/part-20261124T074501Z-1a2b3c4d.ndjson.gz`.
 */
export function insertUniqueSuffix(path: string, stampMs: number, unique: string): string {
  const slash = path.lastIndexOf('/');
  const name = path.slice(slash + 1);
  const at = extensionStart(name);
  return `${path.slice(0, slash + 1)}${name.slice(0, at)}-${compactUtcStamp(stampMs)}-${unique}${name.slice(at)}`;
}

/** A config string that must be a valid template (file paths, redis keys): checked when the config loads. */
export function templateString() {
  return z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const problem = checkPathTemplate(value);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    });
}
