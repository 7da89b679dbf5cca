import { excerpt, type Fields, ParseFailure, setField } from './parser.ts';

/**
 * `key=value` pairs: logfmt (`level=info msg="disk full" retry`) and the configurable `key_value` format.
 * Values are strings; a quoted value may hold the delimiters and backslash escapes (`\"`, `\\`, `\n`, `\t`,
 * `\r`, `\uXXXX`); a key without a delimiter is a flag set to `true`. The last of repeated keys wins.
 */
export interface KeyValueOptions {
  /** Between a key and its value; default `=`. */
  keyValueDelimiter: string;
  /** Between pairs; ` ` (the default) means any run of whitespace. */
  fieldDelimiter: string;
  /** Keys without a value become `true` (default); otherwise they are an error. */
  acceptStandaloneKey: boolean;
}

export const LOGFMT: KeyValueOptions = { keyValueDelimiter: '=', fieldDelimiter: ' ', acceptStandaloneKey: true };

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/** Reads a quoted string starting at the opening quote; returns [value, index after the closing quote] or -1. */
function readQuoted(text: string, start: number, quote: string): [string, number] {
  let out = '';
  let i = start + 1;
  let from = i;
  while (i < text.length) {
    const c = text[i]!;
    if (c === quote) return [out + text.slice(from, i), i + 1];
    if (c === '\\' && i + 1 < text.length) {
      out += text.slice(from, i);
      const e = text[i + 1]!;
      i += 2;
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'u': {
          const hex = text.slice(i, i + 4);
          if (/^[0-9a-fA-F]{4}$/.test(hex)) {
            out += String.fromCharCode(Number.parseInt(hex, 16));
            i += 4;
          } else out += '\\u';
          break;
        }
        default:
          out += e; // \" \\ and anything else: the character itself
      }
      from = i;
      continue;
    }
    i++;
  }
  return ['', -1];
}

export function parseKeyValue(text: string, options: KeyValueOptions): Fields | ParseFailure {
  const fields: Fields = {};
  const kv = options.keyValueDelimiter;
  const fd = options.fieldDelimiter;
  const whitespace = fd === ' ';
  const n = text.length;
  let i = 0;
  const skipSeparators = () => {
    if (whitespace) while (i < n && isSpace(text.charCodeAt(i))) i++;
    else {
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      while (text.startsWith(fd, i)) {
        i += fd.length;
        while (i < n && isSpace(text.charCodeAt(i))) i++;
      }
    }
  };
  const atFieldEnd = (j: number) => j >= n || (whitespace ? isSpace(text.charCodeAt(j)) : text.startsWith(fd, j));
  skipSeparators();
  while (i < n) {
    let key: string;
    const quotedKey = text[i] === '"';
    if (quotedKey) {
      const [k, next] = readQuoted(text, i, '"');
      if (next < 0) return new ParseFailure(`unterminated quoted key at position ${i}`);
      key = k;
      i = next;
    } else {
      const start = i;
      while (i < n && !atFieldEnd(i) && !text.startsWith(kv, i)) i++;
      key = text.slice(start, i);
    }
    if (text.startsWith(kv, i)) {
      i += kv.length;
      let value: string;
      if (text[i] === '"' || text[i] === "'") {
        const [v, next] = readQuoted(text, i, text[i]!);
        if (next < 0) return new ParseFailure(`unterminated quoted value for key ${excerpt(key)}`);
        value = v;
        i = next;
        if (!atFieldEnd(i)) return new ParseFailure(`unexpected text after the quoted value of ${excerpt(key)}`);
      } else {
        const start = i;
        while (i < n && !atFieldEnd(i)) i++;
        value = whitespace ? text.slice(start, i) : text.slice(start, i).trim();
      }
      if (key === '' && !quotedKey) return new ParseFailure(`a value without a key at position ${i}`);
      setField(fields, key, value);
    } else {
      if (key === '' && !quotedKey) return new ParseFailure(`unexpected ${excerpt(text[i] ?? '')} at position ${i}`);
      if (!options.acceptStandaloneKey) return new ParseFailure(`key ${excerpt(key)} has no value`);
      setField(fields, key, true);
    }
    skipSeparators();
  }
  return fields;
}

export function parseLogfmt(text: string): Fields | ParseFailure {
  return parseKeyValue(text, LOGFMT);
}

// Whitespace, `=`, quotes, backslashes and control characters (tested by code: Biome forbids them in regexes).
const NEEDS_QUOTES = /[\s="\\]/;

function needsQuotes(s: string): boolean {
  if (NEEDS_QUOTES.test(s)) return true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    const code = s.charCodeAt(i);
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

/**
 * Fields to one logfmt line, the inverse of parseLogfmt for string values: `true` is written as a bare key,
 * other scalars as text, objects and lists as JSON. Keys that would not read back (empty, with spaces,
 * `=` or quotes) are quoted.
 */
export function encodeLogfmt(fields: Fields): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const k = key === '' || needsQuotes(key) ? quote(key) : key;
    if (value === true) {
      parts.push(k);
      continue;
    }
    const text =
      typeof value === 'string'
        ? value
        : value !== null && typeof value === 'object'
          ? JSON.stringify(value)
          : String(value);
    parts.push(`${k}=${text === '' || needsQuotes(text) || text[0] === "'" ? quote(text) : text}`);
  }
  return parts.join(' ');
}
