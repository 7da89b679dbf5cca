import { excerpt, type Fields, ParseFailure, setField } from './parser.ts';

/**
 * One CSV record (RFC 4180): fields separated by `delimiter`, optionally enclosed in `quote`, a doubled quote
 * inside a quoted field standing for one. A line is one record, so a quoted field cannot span lines here.
 */
export interface CsvOptions {
  delimiter: string;
  quote: string;
  /** Column names; without them the record is a list of strings. */
  columns?: readonly string[];
}

export function parseCsvRecord(text: string, delimiter = ',', quote = '"'): string[] | ParseFailure {
  if (delimiter === '') return new ParseFailure('the CSV delimiter is empty');
  const values: string[] = [];
  const n = text.length;
  let end = n;
  if (end > 0 && text[end - 1] === '\r') end--;
  let i = 0;
  for (;;) {
    if (text[i] === quote) {
      let value = '';
      let from = ++i;
      for (;;) {
        const q = text.indexOf(quote, i);
        if (q < 0 || q >= end) return new ParseFailure(`unterminated quoted field starting at position ${from - 1}`);
        if (text[q + 1] === quote) {
          value += text.slice(from, q + 1);
          i = q + 2;
          from = i;
          continue;
        }
        value += text.slice(from, q);
        i = q + 1;
        break;
      }
      values.push(value);
      if (i >= end) return values;
      if (!text.startsWith(delimiter, i))
        return new ParseFailure(`unexpected ${excerpt(text[i]!)} after a quoted field at position ${i}`);
      i += delimiter.length;
      continue;
    }
    const d = text.indexOf(delimiter, i);
    if (d < 0 || d >= end) {
      values.push(text.slice(i, end));
      return values;
    }
    values.push(text.slice(i, d));
    i = d + delimiter.length;
  }
}

export function parseCsv(text: string, options: CsvOptions): Fields | string[] | ParseFailure {
  const values = parseCsvRecord(text, options.delimiter, options.quote);
  if (values instanceof ParseFailure || !options.columns) return values;
  const columns = options.columns;
  if (values.length !== columns.length)
    return new ParseFailure(`expected ${columns.length} columns, found ${values.length}`);
  const fields: Fields = {};
  for (let k = 0; k < columns.length; k++) setField(fields, columns[k]!, values[k]);
  return fields;
}
