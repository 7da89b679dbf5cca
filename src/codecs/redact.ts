import { createHmac } from 'node:crypto';
import { IPV4_REGEX_SOURCE, IPV6_REGEX_SOURCE } from './grok-patterns.ts';

/**
 * Masks personal data in text before it leaves the server: IPv4 and IPv6 addresses, e-mail addresses,
 * credit-card-like numbers (13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn check,
 * so order ids and timestamps are left alone), and any regex.
 *
 * A match becomes the `replacement` text, or, with a `hashKey`, a keyed hash of it (HMAC-SHA256, hex,
 * truncated): the same address always gives the same token, so joins and distinct counts still work, while
 * the key keeps anyone without it from hashing all 2^32 IPv4 addresses to reverse the tokens.
 */

export const REDACT_PATTERNS = ['ipv4', 'ipv6', 'email', 'credit_card'] as const;
export type RedactPatternName = (typeof REDACT_PATTERNS)[number];

export interface RedactOptions {
  /** Built-in pattern names and user regexes (JavaScript syntax). */
  patterns: readonly (RedactPatternName | { regex: string })[];
  /** What a match becomes when no hash key is set. */
  replacement: string;
  /** When set, a match becomes HMAC-SHA256(hashKey, match) in hex, `hashLength` characters long. */
  hashKey?: string;
  hashLength?: number;
}

interface Rule {
  readonly regex: RegExp;
  /** A character every match contains: the rule is skipped for text without it. */
  readonly needs: string | undefined;
  readonly luhn: boolean;
}

// Boundaries keep the patterns from biting into longer tokens: `1.2.3.4.5`, `std::vector`, `ab12:cd`.
const BUILT_IN: Record<RedactPatternName, () => Rule> = {
  email: () => ({
    regex: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])/g,
    needs: '@',
    luhn: false,
  }),
  credit_card: () => ({ regex: /(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])/g, needs: undefined, luhn: true }),
  ipv6: () => ({
    regex: new RegExp(`(?<![\\w:.])${IPV6_REGEX_SOURCE}(?![\\w:]|\\.[0-9])`, 'g'),
    needs: ':',
    luhn: false,
  }),
  ipv4: () => ({
    regex: new RegExp(`(?<![0-9.])${IPV4_REGEX_SOURCE}(?!\\.?[0-9])`, 'g'),
    needs: '.',
    luhn: false,
  }),
};

/** Luhn checksum over the digits of `s` (separators ignored). */
export function passesLuhn(s: string): boolean {
  let sum = 0;
  let double = false;
  let digits = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) continue;
    digits++;
    let d = c;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits >= 13 && sum % 10 === 0;
}

/** Why a user regex cannot be used for redaction, or undefined. */
export function checkRedactRegex(source: string): string | undefined {
  try {
    const re = new RegExp(source, 'g');
    if (re.test(''))
      return `regex ${JSON.stringify(source)} matches the empty string, which would redact nothing useful`;
    return undefined;
  } catch (error) {
    return `invalid regex ${JSON.stringify(source)}: ${(error as Error).message}`;
  }
}

export class Redactor {
  private readonly rules: Rule[];
  private readonly replace: (match: string) => string;

  constructor(options: RedactOptions) {
    // E-mail first: its domain could otherwise be half-eaten by the IP rules.
    const order: RedactPatternName[] = ['email', 'credit_card', 'ipv6', 'ipv4'];
    const names = new Set(options.patterns.filter((p): p is RedactPatternName => typeof p === 'string'));
    this.rules = order.filter((n) => names.has(n)).map((n) => BUILT_IN[n]());
    for (const p of options.patterns) {
      if (typeof p !== 'string') this.rules.push({ regex: new RegExp(p.regex, 'g'), needs: undefined, luhn: false });
    }
    const key = options.hashKey;
    const length = options.hashLength ?? 16;
    const replacement = options.replacement;
    this.replace =
      key === undefined
        ? () => replacement
        : (match) => createHmac('sha256', key).update(match).digest('hex').slice(0, length);
  }

  redactString(text: string): string {
    let out = text;
    for (const rule of this.rules) {
      if (rule.needs !== undefined && out.indexOf(rule.needs) < 0) continue;
      out = out.replace(rule.regex, rule.luhn ? (m) => (passesLuhn(m) ? this.replace(m) : m) : this.replace);
    }
    return out;
  }

  /** Redacts every string inside `value` (objects and lists are copied, never changed in place). */
  redactValue(value: unknown, depth = 0): unknown {
    if (typeof value === 'string') return this.redactString(value);
    if (value === null || typeof value !== 'object' || depth > 32) return value;
    if (Array.isArray(value)) return value.map((v) => this.redactValue(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = this.redactValue(v, depth + 1);
      if (k === '__proto__')
        Object.defineProperty(out, k, { value: r, enumerable: true, writable: true, configurable: true });
      else out[k] = r;
    }
    return out;
  }
}
