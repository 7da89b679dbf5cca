import { lazyRequire } from '../../core/lazy-import.ts';

/*
 * CRC-32C of the disk buffer's records and ledger, from @node-rs/crc32 (native code, SSE 4.2), loaded on the
 * first checksum rather than at start: the registry imports the disk buffer for every config, and loading
 * the addon (dlopen and its loader) costs ~10 ms of CPU that a config without a disk buffer never needs.
 */

const native = lazyRequire<typeof import('@node-rs/crc32')>('@node-rs/crc32');

export function crc32c(data: Buffer): number {
  return native().crc32c(data);
}
