import { readFileSync } from 'node:fs';
import type { Authenticator, NodeConnectionOptions } from '@nats-io/transport-node';
import { z } from 'zod';
import { type TlsConfig, tlsClientOption } from '../../codecs/tls.ts';
import { FluxoError, RetryableError } from '../errors.ts';
import { lazyRequire } from '../lazy-import.ts';
import { duration } from '../units.ts';

// How the nats sink and the nats source reach their servers: the auth option, the client's connection options,
// and what a failed connect means. Moved here from src/sinks/nats/ so both components share it.

export type NatsAuth = NonNullable<z.infer<ReturnType<typeof natsAuthOption>>>;

/** The connection part of a nats component's options (the same option names in the sink and the source). */
export interface NatsConnectionConfig {
  servers: string[];
  name?: string | undefined;
  connect_timeout: number;
  reconnect_wait: number;
  auth?: NatsAuth | undefined;
  tls?: TlsConfig | undefined;
}

/** `auth`, `tls`, `connect_timeout`, `reconnect_wait` and `name`: the same in the nats sink and the nats source. */
export const natsConnectionShape = (kind: 'sink' | 'source') => ({
  auth: natsAuthOption(),
  tls: tlsClientOption(),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection and its handshake.'),
  reconnect_wait: duration()
    .default(1_000)
    .describe('Time between reconnect attempts (plus jitter) after a connection is lost; the client retries forever.'),
  name: z
    .string()
    .min(1)
    .optional()
    .describe(`Connection name shown by the server (\`nats server report\`); default: the ${kind} id.`),
});

/** The `auth` option: token, user and password, NKey, or a creds file. */
export function natsAuthOption() {
  return z
    .discriminatedUnion(
      'strategy',
      [
        z
          .object({
            strategy: z.literal('token').describe('`token`: the server’s `authorization { token }`.'),
            token: z.string().min(1).describe('The token (use `${ENV_VAR}` to keep it out of the file).'),
          })
          .strict(),
        z
          .object({
            strategy: z.literal('user').describe('`user`: a user name and password.'),
            user: z.string().min(1).describe('User name.'),
            password: z.string().describe('Password (use `${ENV_VAR}`).'),
          })
          .strict(),
        z
          .object({
            strategy: z.literal('nkey').describe('`nkey`: an NKey user, signing the server’s nonce with its seed.'),
            seed: z.string().min(1).optional().describe('The seed (`SU…`); use `${ENV_VAR}`.'),
            seed_file: z.string().min(1).optional().describe('A file holding the seed.'),
          })
          .strict()
          .refine((a) => (a.seed === undefined) !== (a.seed_file === undefined), {
            message: 'nkey auth needs exactly one of seed or seed_file',
          }),
        z
          .object({
            strategy: z.literal('creds').describe('`creds`: a JWT and NKey credentials file (`nsc generate creds`).'),
            creds_file: z.string().min(1).describe('The `.creds` file.'),
          })
          .strict(),
      ],
      { error: 'expected auth with strategy: token, user, nkey or creds' },
    )
    .optional()
    .describe(
      'Authentication: `{ strategy: token, token }`, `{ strategy: user, user, password }`, ' +
        '`{ strategy: nkey, seed | seed_file }` or `{ strategy: creds, creds_file }`. Absent: none.',
    );
}

/**
 * The client's authenticator factories, loaded only when an nkey or creds auth is configured: a type-only import
 * above keeps the NATS client out of a Fluxo that uses no nats component (see lazy-import.ts). Synchronous, so
 * natsConnectionOptions() stays so; the package's main entry is CommonJS.
 */
const authenticators = lazyRequire<typeof import('@nats-io/transport-node')>('@nats-io/transport-node');

/** The client's options: reconnect forever with jittered waits, auth, TLS (handed on to tls.connect). */
export function natsConnectionOptions(o: NatsConnectionConfig, id: string, what: string): NodeConnectionOptions {
  const options: NodeConnectionOptions = {
    servers: o.servers,
    name: o.name ?? `fluxo-${id}`,
    timeout: o.connect_timeout,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: o.reconnect_wait,
    reconnectJitter: Math.round(o.reconnect_wait / 2),
    pingInterval: 10_000,
  };
  const auth = o.auth;
  if (auth?.strategy === 'token') options.token = auth.token;
  else if (auth?.strategy === 'user') {
    options.user = auth.user;
    options.pass = auth.password;
  } else if (auth?.strategy === 'nkey') {
    const seed =
      auth.seed ??
      Buffer.from(readSecret(auth.seed_file!, 'NKey seed', what))
        .toString('utf8')
        .trim();
    options.authenticator = authenticators().nkeyAuthenticator(new TextEncoder().encode(seed)) as Authenticator;
  } else if (auth?.strategy === 'creds') {
    options.authenticator = authenticators().credsAuthenticator(
      readSecret(auth.creds_file, 'credentials', what),
    ) as Authenticator;
  }
  if (o.tls?.enabled) {
    const tls: Record<string, unknown> = {};
    if (o.tls.ca_file) tls.caFile = o.tls.ca_file;
    if (o.tls.crt_file) tls.certFile = o.tls.crt_file;
    if (o.tls.key_file) tls.keyFile = o.tls.key_file;
    // Handed on to tls.connect by the Node transport.
    if (o.tls.verify_certificate === false) tls.rejectUnauthorized = false;
    options.tls = tls;
  }
  return options;
}

function readSecret(file: string, secret: string, what: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new FluxoError(
      'FLUXO_NATS_CREDENTIALS_FILE',
      `${what}: cannot read the ${secret} file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** A failed connect: refused credentials are a clear error, anything else is retried. */
export function connectError(error: unknown, serverList: readonly string[], what: string): Error {
  const e = error as Error & { code?: string };
  const servers = serverList.join(', ');
  if (e.name === 'AuthorizationError' || /authoriz|authentic/i.test(e.message)) {
    return new FluxoError(
      'FLUXO_NATS_AUTH',
      `${what}: the NATS server at ${servers} refused the credentials (${e.message}); check auth`,
      { cause: error },
    );
  }
  return new RetryableError(`${what}: cannot connect to NATS at ${servers}: ${e.message}`, { cause: error });
}
