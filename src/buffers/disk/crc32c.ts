import { createRequire } from 'node:module';

/*
 * CRC-32C of the disk buffer's records and ledger, from @node-rs/crc32 (native code, SSE 4.2), loaded on the
 * first checksum rather than at start: the registry imports the disk buffer for every config, and loading
 * the addon (dlopen and its loader) costs ~10 ms of CPU that a config without a disk buffer never needs.
 */

type Crc32c = typeof import('@node-rs/crc32').crc32c;
const require = createRequire(import.meta.url);
let native: Crc32c | undefined;

export function crc32c(data: Buffer): number {
  native ??= (require('@node-rs/crc32') as typeof import('@node-rs/crc32')).crc32c;
  return native(data);
}
