import { readFileSync } from 'node:fs';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { z } from 'zod';
import { FluxoError } from '../core/errors.ts';
import { nodeTls } from '../core/net/builtins.ts';

/**
 * The `tls` block every network component shares (syslog, http, forward source and sink, …):
 *
 *   tls: { crt_file: /etc/fluxo/server.crt, key_file: /etc/fluxo/server.key, ca_file: /etc/fluxo/ca.crt, verify_certificate: true }
 *
 * One schema for servers and clients; what a field means depends on the side, and the loaders below apply
 * each side's defaults (a server does not ask for client certificates unless told to, a client always
 * verifies the server unless told not to).
 */
export const tlsOptionsSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe('Use TLS. Writing a `tls` block turns it on; `enabled: false` turns it off without deleting the block.'),
  crt_file: z
    .string()
    .min(1)
    .optional()
    .describe('PEM certificate (chain) file. Required for a server; for a client, the certificate it presents.'),
  key_file: z
    .string()
    .min(1)
    .optional()
    .describe('PEM private key of `crt_file` (unencrypted). Required for a server.'),
  ca_file: z
    .string()
    .min(1)
    .optional()
    .describe(
      'PEM CA bundle that replaces the system trust store. Server: verifies client certificates; client: verifies the server.',
    ),
  verify_certificate: z
    .boolean()
    .optional()
    .describe(
      'Server: require a client certificate signed by `ca_file` (mutual TLS; default false). ' +
        'Client: verify the server certificate and name (default true).',
    ),
});

export type TlsConfig = z.infer<typeof tlsOptionsSchema>;

/**
 * The `tls` option of a server component: optional, and checked at validation time so that
 * `fluxo validate` reports a TLS server without certificate before anything starts.
 */
export function tlsServerOption() {
  return tlsOptionsSchema
    .superRefine((tls, ctx) => {
      if (!tls.enabled) return;
      for (const key of ['crt_file', 'key_file'] as const) {
        if (tls[key] === undefined) {
          ctx.addIssue({ code: 'custom', path: [key], message: `a TLS server needs ${key} (PEM)` });
        }
      }
      if (tls.verify_certificate && tls.ca_file === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['ca_file'],
          message: 'verify_certificate on a server needs ca_file: the CA that signs the client certificates',
        });
      }
    })
    .optional()
    .describe(
      'TLS for incoming connections: `{ crt_file, key_file }` (PEM), plus `ca_file` and `verify_certificate: true` ' +
        'for mutual TLS. Absent: plain text.',
    );
}

/** The `tls` option of a client component (a sink that connects out). */
export function tlsClientOption() {
  return tlsOptionsSchema
    .optional()
    .describe(
      'TLS for outgoing connections: `{}` verifies the server against the system CAs; `ca_file` for a private CA, ' +
        '`crt_file` + `key_file` for a client certificate, `verify_certificate: false` to skip verification (tests only).',
    );
}

function readPem(file: string, what: string, component: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new FluxoError(
      'FLUXO_TLS_FILE',
      `${component}: cannot read TLS ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Options for `tls.createServer` / `https.createServer`, or undefined when TLS is off. Reads the files now,
 * so a missing or unreadable file fails the component's start with a FluxoError (`FLUXO_TLS_FILE`).
 */
export function loadTlsServerOptions(tls: TlsConfig | undefined, component = 'tls'): TlsOptions | undefined {
  if (!tls?.enabled) return undefined;
  if (tls.crt_file === undefined || tls.key_file === undefined) {
    throw new FluxoError('FLUXO_TLS_CONFIG', `${component}: a TLS server needs crt_file and key_file`);
  }
  const verify = tls.verify_certificate ?? false;
  return checkUsable(
    {
      cert: readPem(tls.crt_file, 'certificate', component),
      key: readPem(tls.key_file, 'key', component),
      ca: tls.ca_file === undefined ? undefined : readPem(tls.ca_file, 'CA bundle', component),
      requestCert: verify,
      rejectUnauthorized: verify,
      minVersion: 'TLSv1.2',
    },
    tls,
    component,
  );
}

/** Options for `tls.connect` (merge `host`/`port`/`servername` in), or undefined when TLS is off. */
export function loadTlsClientOptions(tls: TlsConfig | undefined, component = 'tls'): ConnectionOptions | undefined {
  if (!tls?.enabled) return undefined;
  if ((tls.crt_file === undefined) !== (tls.key_file === undefined)) {
    throw new FluxoError('FLUXO_TLS_CONFIG', `${component}: a client certificate needs both crt_file and key_file`);
  }
  return checkUsable(
    {
      cert: tls.crt_file === undefined ? undefined : readPem(tls.crt_file, 'certificate', component),
      key: tls.key_file === undefined ? undefined : readPem(tls.key_file, 'key', component),
      ca: tls.ca_file === undefined ? undefined : readPem(tls.ca_file, 'CA bundle', component),
      rejectUnauthorized: tls.verify_certificate ?? true,
      minVersion: 'TLSv1.2',
    },
    tls,
    component,
  );
}

/**
 * Loads the PEMs into a secure context once, so that a file that is not PEM, an encrypted key or a key of
 * another certificate fails with the component and the files named, not with a bare OpenSSL message
 * ("PEM routines::no start line") from wherever the server or the first connection is created.
 */
function checkUsable<T extends TlsOptions | ConnectionOptions>(options: T, tls: TlsConfig, component: string): T {
  try {
    nodeTls().createSecureContext({ cert: options.cert, key: options.key, ca: options.ca });
  } catch (error) {
    const files = (['crt_file', 'key_file', 'ca_file'] as const)
      .filter((k) => tls[k] !== undefined)
      .map((k) => `${k} ${tls[k]}`)
      .join(', ');
    const reason = `${component}: cannot use the TLS files (${files}): ${(error as Error).message}`;
    throw new FluxoError('FLUXO_TLS_INVALID', reason, { cause: error });
  }
  return options;
}
