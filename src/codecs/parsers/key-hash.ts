/**
 * A stable 32-bit hash of a field value for sampling and throttling keys: FNV-1a over the UTF-16 code units,
 * then murmur3's finaliser so that nearby keys (`req-1`, `req-2`) spread evenly over the range. The same key
 * hashes the same on every agent and every run, so `sample` keeps or drops all events of one request together
 * wherever they are collected.
 */
export function hashKey(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A field value as key text: strings as they are, other scalars by their JSON text, objects as JSON. */
export function keyText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
