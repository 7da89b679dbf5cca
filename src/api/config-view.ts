import type { PipelineConfig } from '../core/pipeline-config.ts';
import { redactUrl } from '../core/sink/auth.ts';

/** What a redacted value shows instead. */
export const REDACTED = '***';

// By name: config values are interpolated from ${ENV} before they get here, so the value itself cannot tell.
const SECRET_KEY =
  /(pass(word|phrase)?|passwd|secret|token|credential|authorization|cookie|api[_-]?key|access[_-]?key|private[_-]?key|hash[_-]?key|sas|signature)/i;

/**
 * The running config as JSON for the dashboard, every secret replaced by `***`: values under a key that names a
 * secret (password, token, secret_access_key, hash_key, Authorization…), passwords inside URLs, and inline PEM keys.
 * Never the raw text: what is shown is what the validated config holds, after defaults.
 */
export function redactedConfig(config: PipelineConfig): Record<string, unknown> {
  const section = (specs: ReadonlyMap<string, { type: string; options: Record<string, unknown> }>, extra = false) => {
    const out: Record<string, unknown> = {};
    for (const [id, spec] of specs) {
      const entry: Record<string, unknown> = { type: spec.type };
      const s = spec as unknown as { inputs?: readonly string[]; buffer?: unknown };
      if (s.inputs) entry.inputs = [...s.inputs];
      if (extra && s.buffer) entry.buffer = s.buffer;
      Object.assign(entry, spec.options);
      out[id] = redactValue(entry);
    }
    return out;
  };
  return {
    data_dir: config.dataDir,
    api: redactValue({ ...config.api }),
    shutdown_timeout_ms: config.shutdownTimeoutMs,
    sources: section(config.sources),
    transforms: section(config.transforms),
    sinks: section(config.sinks, true),
  };
}

export function redactValue(value: unknown, key = ''): unknown {
  if (key !== '' && SECRET_KEY.test(key) && value !== null && value !== undefined && typeof value !== 'boolean') {
    // A nested object under a secret-named key (auth: { strategy, token }) keeps its shape, secrets masked.
    if (typeof value === 'object' && !Array.isArray(value)) return redactObject(value as Record<string, unknown>, true);
    return REDACTED;
  }
  if (typeof value === 'string') {
    if (value.includes('-----BEGIN')) return REDACTED;
    return value.includes('://') ? redactUrl(value) : value;
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v));
  if (value instanceof Map) return redactObject(Object.fromEntries(value), false);
  if (typeof value === 'object' && value !== null) return redactObject(value as Record<string, unknown>, false);
  if (typeof value === 'function' || typeof value === 'bigint' || typeof value === 'symbol') return String(value);
  return value;
}

function redactObject(o: Record<string, unknown>, underSecret: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    // Under `auth`, only the strategy and user name are not secrets.
    if (underSecret && !['strategy', 'user', 'username', 'type'].includes(k)) out[k] = v === undefined ? v : REDACTED;
    else out[k] = redactValue(v, k);
  }
  return out;
}
