import { FluxoError } from '../core/errors.ts';
import { GROK_PATTERNS } from './grok-patterns.ts';
import { type Coercion, type CoercionType, compileCoercion } from './parsers/coerce.ts';
import { compilePath, type FieldPath, setPath } from './parsers/field-path.ts';
import { type Fields, ParseFailure, setField } from './parsers/parser.ts';

/**
 * Grok, the Logstash way: `%{IPORHOST:client} \[%{HTTPDATE:ts}\] %{NUMBER:bytes:int}` names patterns from a
 * library (src/codecs/grok-patterns.ts plus the user's own) and captures what they match into fields.
 *
 * A pattern is expanded and compiled once into one native RegExp; matching is then a single `exec` and a walk
 * over the capture indices. Oniguruma syntax that Logstash users write and JavaScript lacks is translated:
 * atomic groups `(?>…)` and possessive quantifiers become ordinary ones, `(?<field>…)` captures may use any
 * field name (`client.ip`, `[http][method]`), POSIX classes `[[:alpha:]]`, `\A`, `\Z`, `\h`, and a leading
 * `(?i)`. As in Oniguruma with named groups, plain `( )` groups do not capture.
 *
 * Fields: a capture that did not participate or matched the empty string is left out (Logstash's default);
 * when two captures share a name the first that matched wins. Dotted names and `[a][b]` make nested objects.
 */

export const GROK_TYPES = ['int', 'float', 'bool', 'string'] as const;

interface GrokField {
  readonly index: number;
  readonly name: string;
  readonly path: FieldPath;
  readonly coerce: Coercion | undefined;
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: 'a-zA-Z0-9',
  alpha: 'a-zA-Z',
  ascii: '\\x00-\\x7f',
  blank: ' \\t',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: ' \\t\\r\\n\\v\\f',
  upper: 'A-Z',
  word: '\\w',
  xdigit: '0-9A-Fa-f',
};

class Translation {
  groups = 0;
  readonly fields: GrokField[] = [];
  readonly named = new Map<string, number>();
  flags = '';

  constructor(
    readonly library: Readonly<Record<string, string>>,
    readonly definitions: Readonly<Record<string, string>>,
  ) {}

  pattern(name: string): string | undefined {
    if (Object.hasOwn(this.definitions, name)) return this.definitions[name];
    return Object.hasOwn(this.library, name) ? this.library[name] : undefined;
  }

  addField(rawName: string, type: string | undefined): number {
    const index = ++this.groups;
    const name = normaliseFieldName(rawName);
    if (type !== undefined && !(GROK_TYPES as readonly string[]).includes(type)) {
      throw new FluxoError(
        'FLUXO_GROK_INVALID',
        `%{…:${rawName}:${type}}: unknown type "${type}"; grok types are ${GROK_TYPES.join(', ')}`,
      );
    }
    const coerce = type === undefined ? undefined : compileCoercion({ type: type as CoercionType });
    this.fields.push({ index, name, path: compilePath(name), coerce });
    if (!this.named.has(rawName)) this.named.set(rawName, index);
    return index;
  }
}

/** `[http][request][method]` (Logstash field reference) → `http.request.method`. */
function normaliseFieldName(name: string): string {
  if (/^(\[[^\][]+\])+$/.test(name)) return name.slice(1, -1).split('][').join('.');
  return name;
}

function grokError(message: string): FluxoError {
  return new FluxoError('FLUXO_GROK_INVALID', message);
}

function isQuantifierEnd(c: string): boolean {
  return c === '*' || c === '+' || c === '?' || c === '}';
}

/** Translates grok source to JavaScript regex source, expanding `%{…}` references recursively. */
function translate(src: string, t: Translation, stack: string[]): string {
  let out = '';
  let i = 0;
  // Whether the last thing emitted was a quantifier: a `+` right after one makes it possessive in Oniguruma.
  let afterQuantifier = false;
  if (stack.length === 0 && src.startsWith('(?i)')) {
    t.flags = 'i';
    i = 4;
  }
  while (i < src.length) {
    const c = src[i]!;
    if (c === '+' && afterQuantifier) {
      i++;
      afterQuantifier = false;
      continue;
    }
    afterQuantifier = false;
    if (c === '%' && src[i + 1] === '{') {
      const close = src.indexOf('}', i + 2);
      if (close < 0) throw grokError(`unterminated %{ at position ${i} of ${JSON.stringify(src)}`);
      const [name, field, type, extra] = src.slice(i + 2, close).split(':');
      if (!name || !/^[A-Za-z0-9_]+$/.test(name) || extra !== undefined || field === '') {
        throw grokError(
          `invalid reference %{${src.slice(i + 2, close)}}: expected %{NAME}, %{NAME:field} or %{NAME:field:type}`,
        );
      }
      const body = t.pattern(name);
      if (body === undefined) {
        const known = [...Object.keys(t.definitions), ...Object.keys(t.library)];
        const near = known.filter((k) => k.includes(name) || name.includes(k)).slice(0, 5);
        throw grokError(
          `unknown grok pattern %{${name}}${near.length ? `; similar: ${near.join(', ')}` : ''}; define it in pattern_definitions`,
        );
      }
      if (stack.includes(name))
        throw grokError(`grok patterns reference each other in a cycle: ${[...stack, name].join(' -> ')}`);
      if (stack.length > 64) throw grokError(`grok patterns nest deeper than 64 levels at %{${name}}`);
      if (field === undefined) out += `(?:${translate(body, t, [...stack, name])})`;
      else {
        t.addField(field, type);
        out += `(${translate(body, t, [...stack, name])})`;
      }
      i = close + 1;
      continue;
    }
    if (c === '\\') {
      const e = src[i + 1];
      if (e === undefined) throw grokError(`pattern ends with a lone backslash: ${JSON.stringify(src)}`);
      if (e === 'A') out += '^';
      else if (e === 'Z' || e === 'z') out += '$';
      else if (e === 'h') out += '[0-9A-Fa-f]';
      else if (e === 'H') out += '[^0-9A-Fa-f]';
      else if (e === 'k' && src[i + 2] === '<') {
        const end = src.indexOf('>', i + 3);
        const ref = end < 0 ? '' : src.slice(i + 3, end);
        const index = t.named.get(ref);
        if (index === undefined) throw grokError(`back-reference \\k<${ref}> names no earlier capture`);
        out += `\\${index}`;
        i = end + 1;
        continue;
      } else if (e === 'x' && src[i + 2] === '{') {
        const end = src.indexOf('}', i + 3);
        const hex = end < 0 ? '' : src.slice(i + 3, end);
        if (!/^[0-9A-Fa-f]{1,4}$/.test(hex)) throw grokError(`unsupported escape \\x{${hex}}`);
        out += `\\u${hex.padStart(4, '0')}`;
        i = end + 1;
        continue;
      } else out += `\\${e}`;
      i += 2;
      continue;
    }
    if (c === '[') {
      const [cls, next] = translateClass(src, i);
      out += cls;
      i = next;
      continue;
    }
    if (c === '(') {
      const rest = src.slice(i, i + 4);
      const named = /^\(\?(?:P?<([^>=!][^>]*)>|'([^']+)')/.exec(src.slice(i, i + 200));
      if (named) {
        const raw = named[1] ?? named[2]!;
        const colon = raw.indexOf(':');
        t.addField(colon < 0 ? raw : raw.slice(0, colon), colon < 0 ? undefined : raw.slice(colon + 1));
        out += '(';
        i += named[0].length;
        continue;
      }
      if (rest.startsWith('(?>')) {
        out += '(?:';
        i += 3;
        continue;
      }
      if (rest.startsWith('(?#')) {
        const end = src.indexOf(')', i);
        i = end < 0 ? src.length : end + 1;
        continue;
      }
      if (rest.startsWith('(?:') || rest.startsWith('(?=') || rest.startsWith('(?!')) {
        out += rest.slice(0, 3);
        i += 3;
        continue;
      }
      if (rest.startsWith('(?<=') || rest.startsWith('(?<!')) {
        out += rest;
        i += 4;
        continue;
      }
      if (rest.startsWith('(?'))
        throw grokError(
          `unsupported group ${JSON.stringify(src.slice(i, i + 6))}… (inline flags work only as a leading (?i))`,
        );
      out += '(?:';
      i++;
      continue;
    }
    if (c === '{') {
      const q = /^\{\d+(?:,\d*)?\}/.exec(src.slice(i, i + 24));
      if (q) {
        out += q[0];
        i += q[0].length;
        afterQuantifier = true;
        continue;
      }
      out += '\\{';
      i++;
      continue;
    }
    out += c;
    afterQuantifier = isQuantifierEnd(c) && c !== '}';
    i++;
  }
  return out;
}

/** Translates a character class starting at `[`; returns [JavaScript source, index after the closing `]`]. */
function translateClass(src: string, start: number): [string, number] {
  let out = '[';
  let i = start + 1;
  if (src[i] === '^') {
    out += '^';
    i++;
  }
  if (src[i] === ']') {
    out += '\\]';
    i++;
  }
  while (i < src.length) {
    const c = src[i]!;
    if (c === ']') return [`${out}]`, i + 1];
    if (c === '\\') {
      const e = src[i + 1];
      if (e === 'h') out += '0-9A-Fa-f';
      else out += `\\${e ?? ''}`;
      i += 2;
      continue;
    }
    if (c === '[') {
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(i, i + 16));
      if (posix && Object.hasOwn(POSIX_CLASSES, posix[2]!)) {
        if (posix[1]) throw grokError(`negated POSIX class [:^${posix[2]}:] is not supported`);
        out += POSIX_CLASSES[posix[2]!];
        i += posix[0].length;
        continue;
      }
      out += '\\[';
      i++;
      continue;
    }
    out += c;
    i++;
  }
  throw grokError(`unterminated character class starting at position ${start} of ${JSON.stringify(src)}`);
}

/** A compiled grok pattern. */
export class GrokPattern {
  constructor(
    readonly source: string,
    readonly regex: RegExp,
    private readonly fields: readonly GrokField[],
  ) {}

  /** The captured fields, undefined when the text does not match, or a ParseFailure for a failed `:int`. */
  match(text: string): Fields | ParseFailure | undefined {
    const m = this.regex.exec(text);
    if (m === null) return undefined;
    const out: Fields = {};
    const fields = this.fields;
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k]!;
      const raw = m[f.index];
      if (raw === undefined || raw === '') continue;
      let value: unknown = raw;
      if (f.coerce) {
        value = f.coerce(raw);
        if (value instanceof ParseFailure) return new ParseFailure(`field ${f.name}: ${value.reason}`);
      }
      if (f.path.length === 1) {
        if (!Object.hasOwn(out, f.name)) setField(out, f.name, value);
      } else if (!hasNested(out, f.path)) setPath(out, f.path, value);
    }
    return out;
  }
}

function hasNested(fields: Fields, path: FieldPath): boolean {
  let v: unknown = fields;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return false;
    v = (v as Fields)[key];
  }
  return true;
}

export interface GrokOptions {
  /** User patterns, `NAME: regex`; they may reference each other and the library, and override it. */
  definitions?: Readonly<Record<string, string>>;
}

/** Expands and compiles a grok pattern; throws FluxoError `FLUXO_GROK_INVALID` with a readable reason. */
export function compileGrok(pattern: string, options: GrokOptions = {}): GrokPattern {
  const definitions = options.definitions ?? {};
  for (const name of Object.keys(definitions)) {
    if (!/^[A-Za-z0-9_]+$/.test(name)) throw grokError(`pattern name "${name}": use letters, digits and "_" only`);
  }
  const t = new Translation(GROK_PATTERNS, definitions);
  const source = translate(pattern, t, []);
  let regex: RegExp;
  try {
    regex = new RegExp(source, t.flags);
  } catch (error) {
    throw grokError(
      `grok pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${(error as Error).message}`,
    );
  }
  return new GrokPattern(pattern, regex, t.fields);
}

/** Why a pattern cannot be compiled, or undefined (for config validation). */
export function checkGrok(pattern: string, options: GrokOptions = {}): string | undefined {
  try {
    compileGrok(pattern, options);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Reads a Logstash patterns file: one `NAME regex` per line, `#` comments and blank lines ignored.
 */
export function parsePatternFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^([A-Za-z0-9_]+)\s+(.*)$/.exec(trimmed);
    if (m) setField(out, m[1]!, m[2]!);
  }
  return out;
}
