import { createRequire } from 'node:module';

/**
 * A module imported on first use, once. Client libraries of a sink or source (undici, redis, NATS, Kafka, the
 * AWS SDK, pg…) are loaded this way from its start() or connect(), never at the top of its file (`import type`
 * only), so that a Fluxo that does not use the component pays neither their memory nor their start-up time:
 * the registry imports every component's file for its options schema. test/unit/layering.test.ts checks it.
 */
export function lazyImport<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load();
    return loading;
  };
}

const require = createRequire(import.meta.url);

/**
 * A module required on first use, once, for code that must stay synchronous (a checksum, a codec, a server's
 * creation). Also the way to load a built-in without its ES facade (see core/net/builtins.ts) and a native
 * addon only when its component runs. `require()` keeps its own cache; the closure only saves the lookup.
 */
export function lazyRequire<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => {
    loaded ??= require(specifier) as T;
    return loaded;
  };
}
