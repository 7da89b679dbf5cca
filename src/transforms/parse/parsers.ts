import { readFileSync } from 'node:fs';
import { compileGrok, type GrokPattern, parsePatternFile } from '../../codecs/grok.ts';
import { parseAccessLog } from '../../codecs/parsers/access-log.ts';
import { parseCsv } from '../../codecs/parsers/csv.ts';
import { parseJson } from '../../codecs/parsers/json.ts';
import { parseKeyValue, parseLogfmt } from '../../codecs/parsers/key-value.ts';
import { parseNginxError } from '../../codecs/parsers/nginx-error.ts';
import { type Fields, ParseFailure, type Parser } from '../../codecs/parsers/parser.ts';
import { compileRegexes, parseWithRegexes } from '../../codecs/parsers/regex.ts';
import { timeZone } from '../../codecs/parsers/time-zone.ts';
import { SyslogParser } from '../../codecs/syslog.ts';
import { FluxoError } from '../../core/errors.ts';

export const PARSE_FORMATS = [
  'json',
  'logfmt',
  'regex',
  'grok',
  'apache_combined',
  'apache_common',
  'nginx_error',
  'syslog',
  'csv',
  'key_value',
] as const;
export type ParseFormat = (typeof PARSE_FORMATS)[number];

/** The options of `parse` a parser depends on. */
export interface ParserSettings {
  format: ParseFormat;
  pattern?: string | string[] | undefined;
  pattern_definitions: Record<string, string>;
  pattern_files: string[];
  columns?: string[] | undefined;
  delimiter: string;
  quote: string;
  key_value_delimiter: string;
  field_delimiter: string;
  timezone: string;
  target?: string | undefined;
}

/** Problems with a combination of options, for config validation and build. */
export function parserSettingsProblems(s: ParserSettings): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const patterns = s.pattern === undefined ? [] : Array.isArray(s.pattern) ? s.pattern : [s.pattern];
  if ((s.format === 'regex' || s.format === 'grok') && patterns.length === 0) {
    problems.push({ path: 'pattern', message: `format ${s.format} needs a pattern` });
  } else if (s.format !== 'regex' && s.format !== 'grok' && patterns.length > 0) {
    problems.push({ path: 'pattern', message: `pattern applies to formats regex and grok, not ${s.format}` });
  }
  if (s.format === 'csv' && s.columns === undefined && s.target === undefined) {
    problems.push({
      path: 'columns',
      message: 'format csv needs columns (field names), or a target to hold the list of values',
    });
  }
  if (problems.length > 0) return problems;
  try {
    buildParser(s);
  } catch (error) {
    problems.push({
      path: s.format === 'grok' || s.format === 'regex' ? 'pattern' : 'format',
      message: (error as Error).message,
    });
  }
  return problems;
}

function syslogParser(): Parser {
  const parser = new SyslogParser();
  return (text) => {
    // Lines from a file (/var/log/syslog) have no <PRI>: parse them as if they had one, without its fields.
    const withPri = text.charCodeAt(0) === 60;
    const m = parser.parse(withPri ? text : `<13>${text}`);
    if (m === undefined) return new ParseFailure(`not a syslog message: ${parser.error}`);
    const fields: Fields = {};
    if (withPri) {
      fields.facility = m.facility;
      fields.severity = m.severity;
    }
    if (m.timestamp !== undefined) fields.timestamp = m.timestamp;
    if (m.hostname !== undefined) fields.hostname = m.hostname;
    if (m.appname !== undefined) fields.appname = m.appname;
    if (m.procid !== undefined) fields.procid = m.procid;
    if (m.msgid !== undefined) fields.msgid = m.msgid;
    if (m.structured_data !== undefined) fields.structured_data = m.structured_data;
    fields.message = m.message;
    return fields;
  };
}

function grokParser(patterns: string[], s: ParserSettings): Parser {
  const definitions: Record<string, string> = {};
  for (const file of s.pattern_files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new FluxoError(
        'FLUXO_GROK_INVALID',
        `cannot read pattern file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
    Object.assign(definitions, parsePatternFile(text));
  }
  Object.assign(definitions, s.pattern_definitions);
  const compiled: GrokPattern[] = patterns.map((p) => compileGrok(p, { definitions }));
  const failure = new ParseFailure(
    compiled.length === 1 ? 'the grok pattern does not match' : `none of the ${compiled.length} grok patterns matches`,
  );
  return (text) => {
    for (const g of compiled) {
      const r = g.match(text);
      if (r !== undefined) return r;
    }
    return failure;
  };
}

/** Writes the parsed fields straight into a given object (the event's copy): formats with a hand-written parser. */
export type DirectParser = (text: string, into: Fields) => Fields | ParseFailure;

export function buildDirectParser(s: ParserSettings): DirectParser | undefined {
  if (s.format === 'apache_combined') return (text, into) => parseAccessLog(text, true, into);
  if (s.format === 'apache_common') return (text, into) => parseAccessLog(text, false, into);
  return undefined;
}

/** Builds the parser for a format; throws FluxoError for a bad pattern or pattern file. */
export function buildParser(s: ParserSettings): Parser {
  const patterns = s.pattern === undefined ? [] : Array.isArray(s.pattern) ? s.pattern : [s.pattern];
  switch (s.format) {
    case 'json':
      return parseJson;
    case 'logfmt':
      return parseLogfmt;
    case 'key_value': {
      const options = {
        keyValueDelimiter: s.key_value_delimiter,
        fieldDelimiter: s.field_delimiter,
        acceptStandaloneKey: true,
      };
      return (text) => parseKeyValue(text, options);
    }
    case 'csv': {
      const options = { delimiter: s.delimiter, quote: s.quote, columns: s.columns };
      return (text) => parseCsv(text, options);
    }
    case 'apache_combined':
      return (text) => parseAccessLog(text, true);
    case 'apache_common':
      return (text) => parseAccessLog(text, false);
    case 'nginx_error': {
      const zone = timeZone(s.timezone);
      return (text) => parseNginxError(text, zone);
    }
    case 'syslog':
      return syslogParser();
    case 'regex': {
      const regexes = compileRegexes(patterns);
      return (text) => parseWithRegexes(text, regexes);
    }
    case 'grok':
      return grokParser(patterns, s);
  }
}
