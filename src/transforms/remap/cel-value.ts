import { Optional } from '@marcbachmann/cel-js';

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * A CEL result as a JSON value for an event field. CEL integers are bigints (numbers when they fit, text
 * otherwise), timestamps are Dates (ISO-8601 strings, like `timestamp` everywhere), bytes are read as UTF-8,
 * durations and unsigned integers become their CEL text or number, an empty optional is undefined.
 */
export function celToJson(value: unknown, depth = 0): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(value)
        : value.toString();
    case 'undefined':
      return undefined;
    case 'object':
      break;
    default:
      return String(value);
  }
  if (value === null) return null;
  if (depth > 64) return null;
  if (value instanceof Optional) return value.hasValue() ? celToJson(value.value(), depth + 1) : undefined;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return utf8.decode(value);
  if (Array.isArray(value)) return value.map((v) => celToJson(v, depth + 1) ?? null);
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) define(out, String(k), celToJson(v, depth + 1));
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) define(out, k, celToJson(v, depth + 1));
    return out;
  }
  // Durations read as their CEL text ("1.5s"); UnsignedInt's valueOf gives a bigint.
  if ((value as { constructor?: { name?: string } }).constructor?.name === 'Duration') return String(value);
  const primitive = (value as { valueOf(): unknown }).valueOf();
  if (typeof primitive === 'bigint' || typeof primitive === 'number') return celToJson(primitive, depth + 1);
  return String(value);
}

function define(out: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined) return;
  if (key === '__proto__')
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}
