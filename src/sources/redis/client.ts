import type { RedisClientType } from 'redis';
import { loadTlsClientOptions, type TlsConfig } from '../../codecs/tls.ts';
import { RetryableError } from '../../core/errors.ts';
import { lazyImport } from '../../core/lazy-import.ts';
import { redactUrl } from '../../core/sink/index.ts';

/** node-redis loads when a redis source connects, not when Fluxo starts (see lazyImport). */
const redisClient = lazyImport(() => import('redis'));

export interface RedisClientConfig {
  endpoint: string;
  username?: string | undefined;
  password?: string | undefined;
  database: number;
  tls?: TlsConfig | undefined;
  connect_timeout: number;
}

/**
 * A connected node-redis client. The first connect is not retried here (the source's loop retries with its
 * backoff); once connected, node-redis re-opens a lost connection with a capped backoff, and commands meanwhile
 * fail at once (no offline queue) so the loop backs off instead of piling them up.
 */
export async function connectRedis(
  o: RedisClientConfig,
  what: string,
  onError: (error: Error) => void,
): Promise<RedisClientType> {
  const { createClient } = await redisClient();
  const url = new URL(o.endpoint);
  const tls = loadTlsClientOptions(url.protocol === 'rediss:' ? (o.tls ?? { enabled: true }) : undefined, what);
  let ready = false;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 6379 : Number(url.port);
  const client = createClient({
    socket: {
      host,
      port,
      connectTimeout: o.connect_timeout,
      reconnectStrategy: (retries: number) =>
        ready ? Math.min(50 * 2 ** Math.min(retries, 10), 2_000) + Math.floor(Math.random() * 50) : false,
      ...(tls === undefined ? {} : { tls: true as const, ...tls, servername: host }),
    },
    username: o.username ?? (url.username === '' ? undefined : decodeURIComponent(url.username)),
    password: (o.password || undefined) ?? (url.password === '' ? undefined : decodeURIComponent(url.password)),
    database: o.database,
    disableOfflineQueue: true,
  }) as unknown as RedisClientType;
  client.on('error', onError);
  try {
    await client.connect();
  } catch (error) {
    client.destroy();
    throw new RetryableError(`${what}: cannot connect to ${redactUrl(o.endpoint)}: ${describeRedisError(error)}`, {
      cause: error,
    });
  }
  ready = true;
  return client;
}

/** Closes gracefully, but never waits long on a server that stopped answering. */
export async function closeRedis(client: RedisClientType): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    client.close().then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 1_000);
    }),
  ]);
  clearTimeout(timer);
  if (!closed) client.destroy();
}

export function describeRedisError(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { errors?: Error[] };
  const inner = e?.errors?.[0] ?? e;
  const message = inner?.message || e?.code || String(error);
  const code = (inner as NodeJS.ErrnoException)?.code;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
