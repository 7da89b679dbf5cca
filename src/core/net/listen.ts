import type { Server } from 'node:net';
import { FluxoError } from '../errors.ts';

/**
 * Binds a server (TCP, TLS or HTTP) for a source: resolves once it listens, rejects with FLUXO_SOURCE_LISTEN
 * naming the source and the address (a port in use, an address not on this host) instead of an unhandled error.
 */
export function listenServer(
  server: Server,
  host: string,
  port: number,
  sourceId: string,
  address: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) =>
      reject(
        new FluxoError('FLUXO_SOURCE_LISTEN', `source ${sourceId}: cannot listen on ${address}: ${error.message}`, {
          cause: error,
        }),
      );
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** `127.0.0.1:40123` or `[::1]:40123` once the server listens (port 0 resolved); undefined before. */
export function boundHostPort(server: Server): string | undefined {
  const info = server.address();
  if (!info || typeof info !== 'object') return undefined;
  return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
}

/** The peer address as users write it: `::ffff:10.0.0.7` (IPv4 on a dual-stack socket) becomes `10.0.0.7`. */
export function peerHost(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
