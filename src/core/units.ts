import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseSize(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] || 'b').toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

export function parseDuration(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!);
}

/** A size in bytes: a number, or a string with a unit (`512KiB`, `1GiB`, `10MB`). */
export function size() {
  return z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
    if (typeof value === 'number') return value;
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size like 64KiB, 10MiB or 1GiB (or a number of bytes), found "${value}"`,
      });
      return z.NEVER;
    }
    return bytes;
  });
}

/** A duration in milliseconds: a string with a unit (`250ms`, `30s`, `5m`, `1h`) or a number of milliseconds. */
export function duration() {
  return z.union([z.number().nonnegative(), z.string()]).transform((value, ctx) => {
    if (typeof value === 'number') return value;
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration like 250ms, 30s, 5m or 1h (or a number of milliseconds), found "${value}"`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

const HOST_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/;

/** Why `host` cannot be bound or connected to, or undefined when it is a hostname or IP literal. */
function hostProblem(host: string, bracketed: boolean): string | undefined {
  if (bracketed) return isIPv6(host) ? undefined : `"[${host}]" is not an IPv6 address`;
  if (host === '') return 'the host is missing (write 127.0.0.1, 0.0.0.0, [::1] or a hostname)';
  if (/^[\d.]+$/.test(host)) return isIPv4(host) ? undefined : `"${host}" is not an IPv4 address`;
  if (host.includes(':')) return `IPv6 addresses go in brackets, e.g. [${host}]:PORT`;
  const labels = host.endsWith('.') ? host.slice(0, -1).split('.') : host.split('.');
  if (host.length > 253 || labels.some((l) => l.length > 63 || !HOST_LABEL.test(l)))
    return `"${host}" is not a valid hostname`;
  return undefined;
}

/** A URL with one of `schemes` (`['http', 'https']`), checked when the config loads. */
export function urlString(schemes: readonly string[]) {
  const wanted = schemes.map((scheme) => `${scheme}://`).join(' or ');
  const expected = `expected ${/^[aeiouh]/.test(schemes[0] ?? '') ? 'an' : 'a'} ${wanted} URL`;
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${expected}, found "${value}"` });
      return;
    }
    if (!schemes.includes(url.protocol.slice(0, -1))) {
      ctx.addIssue({ code: 'custom', message: `${expected}, found ${url.protocol}` });
    }
  });
}

/**
 * A `host:port` address; port 0 asks the OS for a free port. Checked here, not at bind time, so `fluxo validate`
 * reports a port past 65535 or a malformed host at its key and line instead of a start-up failure.
 */
export function address() {
  return z.string().superRefine((value, ctx) => {
    const m = /^(?:\[([^\]]*)\]|([^\s]*)):(\d+)$/.exec(value);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: 'expected an address host:port, e.g. 127.0.0.1:5514' });
      return;
    }
    const problem = hostProblem(m[1] ?? m[2]!, m[1] !== undefined);
    const port = Number(m[3]);
    if (problem) ctx.addIssue({ code: 'custom', message: `expected an address host:port: ${problem}` });
    else if (port > 65535)
      ctx.addIssue({
        code: 'custom',
        message: `expected an address host:port: port ${m[3]} is outside 0-65535 (0 picks a free port)`,
      });
  });
}

export function splitAddress(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  let host = value.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(value.slice(i + 1)) };
}
