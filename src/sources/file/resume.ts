import type { AckWindow } from './ack-window.ts';
import type { CheckpointRecord, FileCheckpointStore } from './checkpoints.ts';
import { type FileFacts, type FingerprintOptions, hashHead, identify, newRecord } from './fingerprint.ts';

/** Where the reader of a record stopped when its file was truncated or released, with its batches in flight. */
export interface RetiredReader {
  window: AckWindow;
  emittedTo: number;
}

export interface ResumeInput {
  store: FileCheckpointStore;
  fingerprint: FingerprintOptions;
  path: string;
  facts: FileFacts;
  mtimeMs: number;
  /** Up to `fingerprint.bytes` first bytes of the file. */
  head: Buffer;
  /** Read decompressed: offsets are not comparable with the size. */
  gzip: boolean;
  /** Found by the first scan after start (`read_from` applies). */
  initial: boolean;
  readFrom: 'beginning' | 'end';
  ignoreOlderThanMs: number;
  now: number;
  /** Records bound to a file being read now. */
  inUse(record: CheckpointRecord): boolean;
  retired: Map<string, RetiredReader>;
}

export type ResumePoint =
  /** Not to be read: a copy of a file being read, or of content already read further elsewhere. */
  | { kind: 'skip'; reason: 'copy' | 'read_already'; of: CheckpointRecord }
  | {
      kind: 'read';
      record: CheckpointRecord;
      /** The offset to read from. */
      start: number;
      /** The record is new: it must be written to disk before an event carries its key. */
      created: boolean;
      /** Started at the end of content that was there (read_from: end, ignore_older_than). */
      fromEnd: boolean;
      /** Shorter than its checkpoint: truncated while Fluxo was stopped. */
      truncated: boolean;
      /** The batches in flight of the previous reader of this content, continued. */
      window: AckWindow | undefined;
    };

/**
 * Decides whether and where a newly found file is read:
 * - known content resumes at its checkpoint, or where its previous reader stopped (a copytruncate copy
 *   continuing the truncated original), and its record now names this path and inode;
 * - known content on the same inode but shorter than the checkpoint was truncated while stopped: new record;
 * - a copy holding less than what was read of it already, or of a file being read now, is skipped;
 * - new content starts at 0, or at its end for `read_from: end` at start-up and files older than
 *   `ignore_older_than`.
 */
export function resumePoint(input: ResumeInput): ResumePoint {
  const { store, fingerprint, facts, head, path, now } = input;
  const found = identify(store, facts, head, fingerprint, input.inUse);
  if (found.kind === 'copy') return { kind: 'skip', reason: 'copy', of: found.of };
  if (found.kind === 'known') {
    const record = found.record;
    const sameInode = record.dev === facts.dev && record.ino === facts.ino;
    const retired = input.retired.get(record.key);
    const start = retired?.emittedTo ?? record.offset;
    if (!input.gzip && start > facts.size) {
      if (!sameInode) return { kind: 'skip', reason: 'read_already', of: record };
      const fresh = newRecord(store, facts, head, path, 0, fingerprint, now);
      return {
        kind: 'read',
        record: fresh,
        start: 0,
        created: true,
        fromEnd: false,
        truncated: true,
        window: undefined,
      };
    }
    if (!sameInode) store.updateInode(record, facts.dev, facts.ino);
    extendHead(store, record, head, fingerprint.bytes);
    input.retired.delete(record.key);
    record.path = path;
    record.seen = now;
    return { kind: 'read', record, start, created: false, fromEnd: false, truncated: false, window: retired?.window };
  }
  const tooOld = input.ignoreOlderThanMs > 0 && now - input.mtimeMs > input.ignoreOlderThanMs;
  const fromEnd = !input.gzip && (tooOld || (input.initial && input.readFrom === 'end'));
  const start = fromEnd ? facts.size : 0;
  const record = newRecord(store, facts, head, path, start, fingerprint, now);
  return { kind: 'read', record, start, created: true, fromEnd, truncated: false, window: undefined };
}

/** The record covers more of the file's first bytes now (never changes its key). */
export function extendHead(store: FileCheckpointStore, record: CheckpointRecord, head: Buffer, bytes: number): void {
  if (record.headLength >= head.length || record.headLength >= bytes) return;
  const length = Math.min(head.length, bytes);
  store.updateHead(record, length, hashHead(head.subarray(0, length)));
}
