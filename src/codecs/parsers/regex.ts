import { FluxoError } from '../../core/errors.ts';
import { type Fields, ParseFailure, setField } from './parser.ts';

/**
 * Named-group regexes (`^(?<client>\S+) (?<status>\d{3})`), the first of several that matches wins. Python's
 * `(?P<name>…)` is accepted too. Groups that did not participate are left out.
 */
export function compileRegexes(patterns: readonly string[]): RegExp[] {
  return patterns.map((p) => {
    const source = p.replace(/\(\?P</g, '(?<');
    let regex: RegExp;
    try {
      regex = new RegExp(source);
    } catch (error) {
      throw new FluxoError('FLUXO_REGEX_INVALID', `invalid regex ${JSON.stringify(p)}: ${(error as Error).message}`);
    }
    if (!/\(\?<[^=!]/.test(source)) {
      throw new FluxoError(
        'FLUXO_REGEX_INVALID',
        `regex ${JSON.stringify(p)} has no named group (?<field>…) to capture`,
      );
    }
    return regex;
  });
}

export function parseWithRegexes(text: string, regexes: readonly RegExp[]): Fields | ParseFailure {
  for (const regex of regexes) {
    const m = regex.exec(text);
    if (m === null) continue;
    const fields: Fields = {};
    for (const [name, value] of Object.entries(m.groups ?? {})) if (value !== undefined) setField(fields, name, value);
    return fields;
  }
  return new ParseFailure(
    regexes.length === 1 ? 'the regex does not match' : `none of the ${regexes.length} regexes matches`,
  );
}
