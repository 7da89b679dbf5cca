import { isIP } from 'node:net';
import type { RedisClientType } from 'redis';
import { loadTlsClientOptions, type TlsConfig } from '../../codecs/tls.ts';
import { RetryableError } from '../errors.ts';
import { lazyImport } from '../lazy-import.ts';
import { settledWithin } from '../retry.ts';
import { redactUrl } from '../sink/index.ts';

// How the redis sink and the redis source reach their server: one connect, one close, one way to word an error.

/** node-redis loads when a redis component connects, not when Fluxo starts (see lazyImport). */
export const redisModule = lazyImport(() => import('redis'));

/** The connection part of a redis component's options (the same option names in the sink and the source). */
export interface RedisConnectionConfig {
  endpoint: string;
  username?: string | undefined;
  password?: string | undefined;
  database: number;
  tls?: TlsConfig | undefined;
  connect_timeout: number;
}

/**
 * A connected node-redis client. The first connect is not retried here (the caller retries with its backoff, so
 * a server down at start is neither a crash nor a busy loop); once connected, node-redis re-opens a lost
 * connection with a capped backoff, and commands meanwhile fail at once (no offline queue) so the caller backs
 * off instead of piling them up. `signal` aborts a connect in progress. `perCommandTimeout: false` drops
 * node-redis's own 5 s timeout on each command, for a caller that bounds its commands itself: that timeout is an
 * AbortSignal.timeout per command, whose timer fires (and builds a DOMException) even after the answer came,
 * most of a pipelined writer's CPU.
 */
export async function connectRedis(
  o: RedisConnectionConfig,
  what: string,
  onError: (error: Error) => void,
  signal?: AbortSignal,
  perCommandTimeout = true,
): Promise<RedisClientType> {
  const { createClient } = await redisModule();
  const url = new URL(o.endpoint);
  const tls = loadTlsClientOptions(url.protocol === 'rediss:' ? (o.tls ?? { enabled: true }) : undefined, what);
  let ready = false;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 6379 : Number(url.port);
  // SNI takes a host name only (RFC 6066); an IP address is still checked against the certificate's IP SANs.
  const servername = isIP(host) === 0 ? { servername: host } : {};
  const client = createClient({
    socket: {
      host,
      port,
      connectTimeout: o.connect_timeout,
      reconnectStrategy: (retries: number) =>
        ready ? Math.min(50 * 2 ** Math.min(retries, 10), 2_000) + Math.floor(Math.random() * 50) : false,
      ...(tls === undefined ? {} : { tls: true as const, ...tls, ...servername }),
    },
    username: o.username ?? (url.username === '' ? undefined : decodeURIComponent(url.username)),
    password: (o.password || undefined) ?? (url.password === '' ? undefined : decodeURIComponent(url.password)),
    database: o.database,
    disableOfflineQueue: true,
    ...(perCommandTimeout ? {} : { commandOptions: { timeout: 0 } }),
  }) as unknown as RedisClientType;
  client.on('error', onError);
  const abort = () => client.destroy();
  signal?.addEventListener('abort', abort, { once: true });
  try {
    await client.connect();
  } catch (error) {
    client.destroy();
    throw new RetryableError(`${what}: cannot connect to ${redactUrl(o.endpoint)}: ${describeRedisError(error)}`, {
      cause: error,
    });
  } finally {
    signal?.removeEventListener('abort', abort);
  }
  ready = true;
  return client;
}

/** Closes gracefully, but never waits long on a server that stopped answering. */
export async function closeRedis(client: RedisClientType): Promise<void> {
  if (!(await settledWithin(client.close(), 1_000))) client.destroy();
}

/** The first inner error of an aggregate (a refused dual-stack connect), with its code where the text lacks it. */
export function describeRedisError(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { errors?: Error[] };
  const inner = e?.errors?.[0] ?? e;
  const message = inner?.message || e?.code || String(error);
  const code = (inner as NodeJS.ErrnoException)?.code;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
