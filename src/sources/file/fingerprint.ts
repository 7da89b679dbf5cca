import { createHash, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { CheckpointRecord, FileCheckpointStore } from './checkpoints.ts';

/**
 * File identity. A file is the same file when:
 * - `checksum` (default): its first `bytes` bytes have the checksum of a record (so a rename, a copy or a
 *   move to another device is recognised, and a reused inode is not mistaken for the old file); a file still
 *   shorter than that is recognised by device + inode, its birth time, and the checksum of the first bytes
 *   it had when last seen (a record covers more of the head as the file grows).
 * - `device_and_inode`: by device + inode (and birth time when the file system reports one) only.
 *
 * A record's `key` never changes: it prefixes the `_id` of every event of the file. It is the checksum when
 * the file was long enough when first seen, else random; records are written to disk before the first
 * event with their key is emitted, so a key is never made up twice for the same bytes.
 */
export type FingerprintStrategy = 'checksum' | 'device_and_inode';

export interface FingerprintOptions {
  strategy: FingerprintStrategy;
  bytes: number;
}

export interface FileFacts {
  dev: number;
  ino: number;
  birth: number;
  size: number;
}

/** 64 bits of SHA-256, in hex: enough to tell files apart, short enough to prefix every event id. */
export function hashHead(head: Buffer): string {
  return createHash('sha256').update(head).digest('hex').slice(0, 16);
}

/** Reads up to `length` bytes from the start of the file (fewer when it is shorter). */
export async function readHead(handle: FileHandle, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

export type Identification =
  | { kind: 'known'; record: CheckpointRecord }
  /** Same first bytes as a file being read right now under another inode: a copy of it. */
  | { kind: 'copy'; of: CheckpointRecord }
  | { kind: 'new' };

/**
 * Finds the record of a file from its facts and its first bytes (`head`: up to `options.bytes` of them).
 * `inUse` tells records bound to a file being read now, which cannot be claimed by another.
 */
export function identify(
  store: FileCheckpointStore,
  facts: FileFacts,
  head: Buffer,
  options: FingerprintOptions,
  inUse: (record: CheckpointRecord) => boolean,
): Identification {
  if (options.strategy === 'checksum' && head.length >= options.bytes) {
    const hash = hashHead(head.subarray(0, options.bytes));
    let best: CheckpointRecord | undefined;
    let busy: CheckpointRecord | undefined;
    for (const r of store.withHead(hash)) {
      if (inUse(r)) {
        busy = r;
        continue;
      }
      if (best === undefined || preferred(r, best, facts)) best = r;
    }
    if (best !== undefined) return { kind: 'known', record: best };
    if (busy !== undefined) return { kind: 'copy', of: busy };
  }
  let best: CheckpointRecord | undefined;
  for (const r of store.withInode(facts.dev, facts.ino)) {
    if (inUse(r)) continue;
    if (r.birth !== 0 && facts.birth !== 0 && r.birth !== facts.birth) continue;
    if (options.strategy === 'checksum') {
      if (r.headLength > head.length) continue;
      if (hashHead(head.subarray(0, r.headLength)) !== r.headHash) continue;
    }
    if (best === undefined || r.created > best.created) best = r;
  }
  return best === undefined ? { kind: 'new' } : { kind: 'known', record: best };
}

/** Same inode first (a renamed file), then the most recent record. */
function preferred(a: CheckpointRecord, b: CheckpointRecord, facts: FileFacts): boolean {
  const aSame = a.dev === facts.dev && a.ino === facts.ino;
  const bSame = b.dev === facts.dev && b.ino === facts.ino;
  if (aSame !== bSame) return aSame;
  return a.created > b.created;
}

/** A new record for a file first seen (or seen again with new content, after a truncation). */
export function newRecord(
  store: FileCheckpointStore,
  facts: FileFacts,
  head: Buffer,
  path: string,
  offset: number,
  options: FingerprintOptions,
  now: number,
): CheckpointRecord {
  const headLength = Math.min(head.length, options.bytes);
  const headHash = hashHead(head.subarray(0, headLength));
  let key = options.strategy === 'checksum' && headLength === options.bytes ? headHash : undefined;
  if (key === undefined || store.has(key)) {
    do key = randomBytes(8).toString('hex');
    while (store.has(key));
  }
  const record: CheckpointRecord = {
    key,
    offset,
    path,
    dev: facts.dev,
    ino: facts.ino,
    birth: facts.birth,
    headLength,
    headHash,
    created: now,
    seen: now,
  };
  store.add(record);
  return record;
}
