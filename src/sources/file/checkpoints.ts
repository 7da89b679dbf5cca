import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { FluxoError } from '../../core/errors.ts';

/**
 * What Fluxo knows about one file it has read, keyed by `key`, the file's identity and the prefix of its
 * events' `_id`. `offset` is the checkpoint: every line before it was delivered (acknowledged by every sink).
 */
export interface CheckpointRecord {
  /** Fingerprint: a checksum of the file's first bytes, or a random id for a file first seen shorter. */
  readonly key: string;
  offset: number;
  /** Where the file was last seen (informational, and where a rotated file is looked for after a restart). */
  path: string;
  dev: number;
  ino: number;
  /** Birth time in ms (0 when the file system does not report it): tells a reused inode from the original. */
  birth: number;
  /** How many of the file's first bytes `headHash` covers (grows up to the fingerprint length). */
  headLength: number;
  headHash: string;
  /** When the record was made, to prefer the newest of several candidates. */
  created: number;
  /** Last time the file was seen by a scan (ms); records unseen for long are forgotten. */
  seen: number;
}

interface CheckpointFile {
  version: 1;
  written_at: string;
  files: {
    key: string;
    offset: number;
    path: string;
    dev: number;
    ino: number;
    birth: number;
    head_length: number;
    head_hash: string;
    created: number;
    seen: number;
  }[];
}

/**
 * The checkpoints of one file source: `<data_dir>/file_source/<id>/checkpoints.json`, rewritten whole and
 * atomically (temp file, fsync, rename, fsync of the directory), so a crash leaves the previous or the new
 * version, never a torn one. Writes are serialized; a save() while one runs is folded into one more.
 */
export class FileCheckpointStore {
  readonly path: string;
  private readonly records = new Map<string, CheckpointRecord>();
  private readonly byInode = new Map<string, Set<CheckpointRecord>>();
  private readonly byHead = new Map<string, Set<CheckpointRecord>>();
  private dirty = false;
  private saving: Promise<void> | undefined;
  private again = false;
  writes = 0;

  constructor(
    dir: string,
    private readonly fingerprintBytes: number,
    private readonly logger: Logger,
  ) {
    this.path = join(dir, 'checkpoints.json');
  }

  static directory(dataDir: string, sourceId: string): string {
    return join(dataDir, 'file_source', sourceId);
  }

  get size(): number {
    return this.records.size;
  }

  /** Reads the file; a missing file is an empty store, an unreadable one is kept aside and reported. */
  async load(): Promise<void> {
    await removeStaleTemps(dirname(this.path));
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new FluxoError('FLUXO_FILE_CHECKPOINT_READ', `cannot read ${this.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    let parsed: CheckpointFile;
    try {
      parsed = JSON.parse(text) as CheckpointFile;
      if (parsed.version !== 1 || !Array.isArray(parsed.files)) throw new Error('unknown format');
    } catch (error) {
      // Atomic writes make this a hand-edited or foreign file. Starting empty reads files again from their
      // start (duplicates, same ids) rather than skipping anything; the original is kept for inspection.
      const aside = `${this.path}.unreadable-${Date.now()}`;
      await rename(this.path, aside).catch(() => {});
      this.logger.error(
        { path: this.path, kept_as: aside, err: (error as Error).message },
        'file source: checkpoints unreadable; files are read again from their start',
      );
      return;
    }
    for (const f of parsed.files) {
      if (typeof f.key !== 'string' || typeof f.offset !== 'number') continue;
      this.add({
        key: f.key,
        offset: f.offset,
        path: String(f.path ?? ''),
        dev: Number(f.dev ?? 0),
        ino: Number(f.ino ?? 0),
        birth: Number(f.birth ?? 0),
        headLength: Number(f.head_length ?? 0),
        headHash: String(f.head_hash ?? ''),
        created: Number(f.created ?? 0),
        seen: Number(f.seen ?? 0),
      });
    }
  }

  has(key: string): boolean {
    return this.records.has(key);
  }

  get(key: string): CheckpointRecord | undefined {
    return this.records.get(key);
  }

  all(): IterableIterator<CheckpointRecord> {
    return this.records.values();
  }

  add(record: CheckpointRecord): void {
    this.records.set(record.key, record);
    indexAdd(this.byInode, inodeKey(record.dev, record.ino), record);
    if (record.headLength === this.fingerprintBytes) indexAdd(this.byHead, record.headHash, record);
    this.dirty = true;
  }

  remove(record: CheckpointRecord): void {
    if (this.records.get(record.key) !== record) return;
    this.records.delete(record.key);
    indexRemove(this.byInode, inodeKey(record.dev, record.ino), record);
    indexRemove(this.byHead, record.headHash, record);
    this.dirty = true;
  }

  /** Records of files that had this device and inode. */
  withInode(dev: number, ino: number): Iterable<CheckpointRecord> {
    return this.byInode.get(inodeKey(dev, ino)) ?? [];
  }

  /** Records whose full-length fingerprint is `hash`. */
  withHead(hash: string): Iterable<CheckpointRecord> {
    return this.byHead.get(hash) ?? [];
  }

  /** The file grew: its record now covers more of its first bytes (never changes `key`). */
  updateHead(record: CheckpointRecord, headLength: number, headHash: string): void {
    if (record.headLength === this.fingerprintBytes) indexRemove(this.byHead, record.headHash, record);
    record.headLength = headLength;
    record.headHash = headHash;
    if (headLength === this.fingerprintBytes) indexAdd(this.byHead, headHash, record);
    this.dirty = true;
  }

  /** The file moved (rename, a new device after a remount is a new file). */
  updateInode(record: CheckpointRecord, dev: number, ino: number): void {
    indexRemove(this.byInode, inodeKey(record.dev, record.ino), record);
    record.dev = dev;
    record.ino = ino;
    indexAdd(this.byInode, inodeKey(dev, ino), record);
    this.dirty = true;
  }

  markDirty(): void {
    this.dirty = true;
  }

  get isDirty(): boolean {
    return this.dirty;
  }

  /** Writes the checkpoints if anything changed since the last write; resolves once they are durable. */
  save(): Promise<void> {
    if (this.saving) {
      this.again = true;
      return this.saving;
    }
    if (!this.dirty) return Promise.resolve();
    const run = async () => {
      try {
        do {
          this.again = false;
          this.dirty = false;
          try {
            await this.write();
          } catch (error) {
            this.dirty = true;
            throw error;
          }
        } while (this.again && this.dirty);
      } finally {
        this.saving = undefined;
      }
    };
    this.saving = run();
    return this.saving;
  }

  private async write(): Promise<void> {
    const content: CheckpointFile = {
      version: 1,
      written_at: new Date().toISOString(),
      files: [...this.records.values()].map((r) => ({
        key: r.key,
        offset: r.offset,
        path: r.path,
        dev: r.dev,
        ino: r.ino,
        birth: r.birth,
        head_length: r.headLength,
        head_hash: r.headHash,
        created: r.created,
        seen: r.seen,
      })),
    };
    await writeAtomically(this.path, `${JSON.stringify(content)}\n`);
    this.writes++;
  }
}

/**
 * Replaces `path` with `text`: temp file, fsync, rename over, fsync of the directory. The temp name is unique,
 * so two writers (the old and the new instance during a reload) never interleave in one temp file.
 */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Temp files of writes a crash interrupted (older than a minute, so never one a live writer is filling). */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names) {
    if (!/^checkpoints\.json\..+\.tmp$/.test(name)) continue;
    const path = join(dir, name);
    try {
      if (now - (await stat(path)).mtimeMs > 60_000) await unlink(path);
    } catch {
      // gone already, or not ours to remove
    }
  }
}

function inodeKey(dev: number, ino: number): string {
  return `${dev}:${ino}`;
}

function indexAdd(index: Map<string, Set<CheckpointRecord>>, key: string, record: CheckpointRecord): void {
  let set = index.get(key);
  if (set === undefined) {
    set = new Set();
    index.set(key, set);
  }
  set.add(record);
}

function indexRemove(index: Map<string, Set<CheckpointRecord>>, key: string, record: CheckpointRecord): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(record);
  if (set.size === 0) index.delete(key);
}
