import { z } from 'zod';
import { loadTlsClientOptions, tlsClientOption } from '../../codecs/tls.ts';
import { zstdCodec } from '../../codecs/zstd.ts';
import { lazyImport } from '../lazy-import.ts';
import { address } from '../units.ts';

// How the kafka sink and the kafka source reach their brokers: the option names they share and the client's
// connection options made from them.

export const kafkaBootstrapServers = () =>
  z
    .array(address())
    .min(1)
    .describe('Brokers to learn the cluster from, `host:port` each; the client then talks to each partition leader.');

/**
 * @platformatic/kafka, loaded when a kafka sink connects or a kafka source starts (not when Fluxo starts: see
 * lazyImport), with zstd in its codec table on every Node. The client compresses and reads zstd batches with
 * node:zlib, which has zstd from Node 22.15 on; on an older Node its table's zstd entry only throws, so a
 * producer could not use zstd and, worse, a consumer could not read a topic another producer wrote with zstd.
 * There the entry is given the WebAssembly build of the reference library (codecs/zstd.ts) instead.
 */
export const kafkaLibrary = lazyImport(async () => {
  const lib = await import('@platformatic/kafka');
  const entry = lib.compressionsAlgorithms.zstd as unknown as {
    compressSync: (data: Uint8Array | { buffer: Buffer }) => Buffer;
    decompressSync: (data: Uint8Array | { buffer: Buffer }) => Buffer;
    available: boolean;
  };
  if (!entry.available) {
    // zstd level 3: the library's own default, and what librdkafka and the Java client use.
    const { compress, decompress } = await zstdCodec(3);
    // The client hands a Buffer, or its growable buffer type, whose `buffer` is the bytes.
    const bytes = (data: Uint8Array | { buffer: Buffer }) => (data instanceof Uint8Array ? data : data.buffer);
    entry.compressSync = (data) => compress(bytes(data));
    entry.decompressSync = (data) => decompress(bytes(data));
    entry.available = true;
  }
  return lib;
});

/** `client_id`, `sasl` and `tls`, the same in the sink and the source. */
export const kafkaClientShape = () => ({
  client_id: z.string().min(1).default('fluxo').describe('The client id the brokers log and apply quotas to.'),
  sasl: z
    .strictObject({
      mechanism: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']).describe('SASL mechanism.'),
      username: z.string().min(1).describe('SASL user.'),
      password: z.string().describe('SASL password; use `${KAFKA_PASSWORD}` to keep it out of the file.'),
    })
    .optional()
    .describe(
      'SASL authentication `{ mechanism, username, password }`; combine with `tls` (PLAIN sends the password).',
    ),
  tls: tlsClientOption(),
});

export interface KafkaClientConfig {
  bootstrap_servers: string[];
  client_id: string;
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string } | undefined;
  tls?: Parameters<typeof loadTlsClientOptions>[0];
  request_timeout: number;
  connect_timeout: number;
}

/** The options of @platformatic/kafka's clients (Producer, Consumer) that say how to reach and log in. */
export function kafkaClientOptions(o: KafkaClientConfig, what: string) {
  const tls = loadTlsClientOptions(o.tls, what);
  return {
    clientId: o.client_id,
    bootstrapBrokers: o.bootstrap_servers,
    timeout: o.request_timeout,
    requestTimeout: o.request_timeout,
    connectTimeout: o.connect_timeout,
    ...(tls === undefined ? {} : { tls }),
    ...(o.sasl === undefined ? {} : { sasl: { ...o.sasl } }),
  };
}

type Nested = Error & { errors?: Nested[]; cause?: unknown; code?: unknown };

/**
 * The client's error with the one that caused it: @platformatic/kafka wraps a refused TLS handshake or login
 * in "metadata failed 3 times" (`errors`) and "Connection to … failed" (`cause`); the reason an operator can act
 * on (an unknown CA, the broker's "Authentication failed") is at the bottom.
 */
export function describeKafkaError(error: unknown): string {
  const top = error as Nested;
  let inner: Nested | undefined = top;
  for (let depth = 0; depth < 10; depth++) {
    const next: unknown = inner?.errors?.[0] ?? inner?.cause;
    if (!(next instanceof Error)) break;
    inner = next as Nested;
  }
  const code = typeof inner?.code === 'string' && !inner.message.includes(inner.code) ? ` (${inner.code})` : '';
  const message = `${inner?.message || String(error)}${code}`;
  return inner !== top && top?.message ? `${top.message} ${message}` : message;
}

/**
 * @platformatic/kafka listens once for a connection's 'error': a connection that fails its TLS handshake or its
 * SASL login can emit a second one as its socket closes, which nothing hears, and an unheard 'error' ends the
 * process. The first error is reported to the request that needed the connection; later ones are dropped here.
 */
export function hearFailedConnections(client: {
  on(
    event: 'client:broker:failed',
    listener: (payload: { connection: { on(e: 'error', l: () => void): unknown } }) => void,
  ): unknown;
}): void {
  client.on('client:broker:failed', ({ connection }) => {
    connection.on('error', () => {});
  });
}
