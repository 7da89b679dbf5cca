import { z } from 'zod';
import { size } from '../units.ts';

/**
 * Options every listening source spells and documents the same way (socket, syslog): one definition so their
 * names, defaults and docs cannot drift apart.
 */

export function receiveBufferBytesOption() {
  return size()
    .optional()
    .describe('UDP: kernel receive buffer (SO_RCVBUF) to absorb bursts, e.g. `8MiB`; the system default when absent.');
}

export function keepaliveOption() {
  return z
    .boolean()
    .default(true)
    .describe('TCP: send keep-alive probes on idle connections so vanished peers are noticed and their slot freed.');
}
