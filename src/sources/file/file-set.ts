import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { MultilineRules } from '../../codecs/multiline.ts';
import type { FileSourceOptions } from '../file.ts';
import type { FileBatchEmitter } from './batch-emitter.ts';
import type { CheckpointRecord, FileCheckpointStore } from './checkpoints.ts';
import type { DirectoryWatcher, FileDiscovery } from './discovery.ts';
import { type FileFacts, type FingerprintOptions, readHead } from './fingerprint.ts';
import type { FileHandlePool } from './handle-pool.ts';
import type { LineFramerOptions } from './line-framer.ts';
import type { FileMetrics } from './metrics.ts';
import { type RetiredReader, resumePoint } from './resume.ts';
import { TailedFile } from './tailed-file.ts';

/** Records of files not seen by any scan for this long are forgotten. */
const FORGET_AFTER_MS = 24 * 3_600_000;
/** A scan refreshes a record's `seen` (and so dirties the checkpoints) at most this often. */
const SEEN_REFRESH_MS = 60_000;
const GZIP_MAGIC = 0x1f8b;
/** Retired readers remembered for a copy to continue (the most recent ones). */
const MAX_RETIRED = 1000;

interface Candidate {
  path: string;
  gzip: boolean;
  id: string;
}

export interface FileSetDeps {
  options: FileSourceOptions;
  logger: Logger;
  metrics: FileMetrics;
  discovery: FileDiscovery;
  watcher: DirectoryWatcher;
  handles: FileHandlePool;
  emitter: FileBatchEmitter;
  fingerprint: FingerprintOptions;
  framerOptions: Omit<LineFramerOptions, 'onOverlong'>;
  multiline: MultilineRules | undefined;
  store(): FileCheckpointStore;
  stopping(): boolean;
  saveCheckpoints(): Promise<void>;
  readError(f: TailedFile | undefined, path: string, error: unknown): void;
}

/**
 * The files a file source tails, and how they come and go: scans of the globs find new files (identified,
 * resumed at their checkpoint), follow renames within the globs, and mark files that left their path
 * (rotated away, deleted) to be read to their end and released. Keeps the turn order of files with work.
 */
export class TailedFileSet {
  /** Tailed files by `dev:ino`. */
  private readonly files = new Map<string, TailedFile>();
  private readonly byPath = new Map<string, TailedFile>();
  /** Records bound to a tailed file, by key. */
  private readonly bound = new Map<string, TailedFile>();
  /** Files with something to do, in turn order. */
  private readonly ready = new Set<TailedFile>();
  /** Files not to identify again until their mtime changes (copies of a file being read). */
  private readonly skipped = new Map<string, number>();
  /**
   * Where the reader of a record stopped when its file was truncated or released, with its batches in flight:
   * a copy of that content found later (copytruncate's copy, when the globs match it) continues from there.
   */
  private readonly retired = new Map<string, RetiredReader>();
  private scanId = 0;

  constructor(private readonly deps: FileSetDeps) {}

  get size(): number {
    return this.files.size;
  }

  values(): IterableIterator<TailedFile> {
    return this.files.values();
  }

  /** Still tailed (not released). */
  has(f: TailedFile): boolean {
    return this.files.get(f.id) === f;
  }

  /** The file tailed at `path`, for change notifications. */
  at(path: string): TailedFile | undefined {
    return this.byPath.get(path);
  }

  markReady(f: TailedFile): void {
    this.ready.add(f);
  }

  /** The next file with work, in turn; undefined when none. */
  takeReady(): TailedFile | undefined {
    const next = this.ready.values().next();
    if (next.done) return undefined;
    this.ready.delete(next.value);
    return next.value;
  }

  /** Polling: every open file at its end gets a turn (growth, truncation, timeouts), and every orphan. */
  markEndedReady(): void {
    // Files whose handle was closed (max_open_files) are looked at by the scans, by path.
    for (const f of this.files.values()) {
      if ((f.atEof && f.handle !== undefined) || f.orphaned) this.ready.add(f);
    }
  }

  /** After a truncation: `f` reads its new content under `record`; its old record may go to a copy. */
  rebind(f: TailedFile, record: CheckpointRecord): void {
    this.retire(f);
    this.bound.set(record.key, f);
  }

  /** Evaluates the globs: new files are tracked, renamed ones followed, vanished ones finished. */
  async scan(initial: boolean): Promise<void> {
    const store = this.deps.store();
    const found = await this.deps.discovery.scan();
    const now = Date.now();
    const scanId = ++this.scanId;
    const newcomers: Candidate[] = [];
    const stats: { path: string; gzip: boolean; st: Awaited<ReturnType<typeof stat>>; id: string }[] = [];
    const idAt = new Map<string, string>();
    for (const [path, gzip] of found) {
      try {
        const st = await stat(path);
        if (!st.isFile()) continue;
        const id = `${st.dev}:${st.ino}`;
        stats.push({ path, gzip, st, id });
        idAt.set(path, id);
      } catch {
        // gone between the glob and now
      }
    }
    for (const { path, gzip, st, id } of stats) {
      const f = this.files.get(id);
      if (f !== undefined) {
        if (f.scanId === scanId) continue; // a second name (hard or symbolic link) of a file already seen
        f.scanId = scanId;
        // Renamed within the globs; a file reachable under several names keeps the one it has.
        if (f.path !== path && idAt.get(f.path) !== id) this.moveTo(f, path);
        if (f.orphaned && !f.deleted) f.orphaned = false;
        if (now - f.record.seen > SEEN_REFRESH_MS) {
          f.record.seen = now;
          store.markDirty();
        }
        if (f.finished ? st.size !== f.finishedSize : (f.atEof || f.handle === undefined) && st.size !== f.readOffset) {
          f.finished = false;
          this.ready.add(f);
        }
        continue;
      }
      if (st.size === 0) continue;
      if (this.skipped.get(id) === st.mtimeMs) continue;
      newcomers.push({ path, gzip, id });
    }
    for (const f of this.files.values()) {
      if (f.scanId !== scanId && !f.orphaned) this.orphan(f, (await this.linkCount(f)) === 0 ? 'deleted' : 'rotated');
    }
    let created = false;
    for (const c of newcomers) {
      if (this.deps.stopping()) break;
      if (await this.track(c, initial, now)) created = true;
    }
    this.forgetOld(now);
    // A new record's key must be durable before the first event carrying it exists.
    if (created) await this.deps.saveCheckpoints();
    this.deps.watcher.watch(this.deps.discovery.bases);
    this.deps.metrics.trackedFiles.set(this.files.size);
  }

  /**
   * A file rotated by rename while Fluxo was stopped has left the globs with unread lines (app.log →
   * app.log.1). Its record still names its directory, inode and first bytes: look there for a file named like
   * it (`<name>*`) with that inode and more bytes than the checkpoint, and finish it like any rotated file.
   */
  async findRotatedWhileStopped(): Promise<void> {
    const now = Date.now();
    const listings = new Map<string, string[]>();
    for (const r of [...this.deps.store().all()]) {
      if (this.bound.has(r.key) || r.path === '' || now - r.seen > FORGET_AFTER_MS) continue;
      const dir = dirname(r.path);
      let names = listings.get(dir);
      if (names === undefined) {
        names = await readdir(dir).catch(() => [] as string[]);
        listings.set(dir, names);
      }
      const base = basename(r.path);
      for (const name of names) {
        if (name === base || !name.startsWith(base)) continue;
        const path = join(dir, name);
        const st = await stat(path).catch(() => undefined);
        if (st === undefined || !st.isFile() || st.dev !== r.dev || st.ino !== r.ino) continue;
        if (st.size > r.offset && !this.files.has(`${st.dev}:${st.ino}`)) {
          this.deps.logger.info(
            { path, was: r.path, checkpoint: r.offset, size: st.size },
            'file source: finishing a file rotated while stopped',
          );
          await this.track({ path, gzip: false, id: `${st.dev}:${st.ino}` }, false, now);
        }
        break;
      }
    }
  }

  private moveTo(f: TailedFile, path: string): void {
    if (this.byPath.get(f.path) === f) this.byPath.delete(f.path);
    this.deps.logger.debug({ from: f.path, to: path }, 'file source: file renamed');
    f.path = path;
    f.record.path = path;
    this.byPath.set(path, f);
    this.deps.store().markDirty();
  }

  /** Identifies a file found by a scan and starts tailing it; returns whether a new record was made. */
  private async track(c: Candidate, initial: boolean, now: number): Promise<boolean> {
    const store = this.deps.store();
    let handle: FileHandle | undefined;
    await this.deps.handles.makeRoom(undefined);
    try {
      handle = await open(c.path, 'r');
      this.deps.handles.opened();
      const st = await handle.stat();
      const facts: FileFacts = { dev: st.dev, ino: st.ino, birth: Math.round(st.birthtimeMs), size: st.size };
      const id = `${st.dev}:${st.ino}`;
      if (this.files.has(id) || st.size === 0) {
        await this.deps.handles.closeTemporary(handle);
        return false;
      }
      const head = await readHead(handle, Math.min(this.deps.fingerprint.bytes, st.size));
      const gzip = c.gzip && head.length >= 2 && head.readUInt16BE(0) === GZIP_MAGIC;
      const resume = resumePoint({
        store,
        fingerprint: this.deps.fingerprint,
        path: c.path,
        facts,
        mtimeMs: st.mtimeMs,
        head,
        gzip,
        initial,
        readFrom: this.deps.options.read_from,
        ignoreOlderThanMs: this.deps.options.ignore_older_than,
        now,
        inUse: (r) => this.bound.has(r.key),
        retired: this.retired,
      });
      if (resume.kind === 'skip') {
        if (resume.reason === 'copy') {
          this.deps.logger.info(
            { path: c.path, copy_of: resume.of.path },
            'file source: same first bytes as a file being read; not read twice',
          );
          this.deps.metrics.copiesSkipped.inc();
        }
        this.skipped.set(id, st.mtimeMs);
        await this.deps.handles.closeTemporary(handle);
        return false;
      }
      const { record, start, fromEnd } = resume;
      if (resume.truncated) {
        this.deps.metrics.truncations.inc();
        this.deps.logger.info(
          { path: c.path, size: st.size },
          'file source: file shorter than its checkpoint (truncated while stopped); reading from its start',
        );
      }
      const f = new TailedFile(
        c.path,
        st.dev,
        st.ino,
        facts.birth,
        gzip,
        record,
        start,
        {
          ...this.deps.framerOptions,
          onOverlong: (prefix, offset, bytes) => this.deps.emitter.overlong(f, prefix, offset, bytes),
        },
        this.deps.multiline,
        now,
        resume.window,
      );
      if (fromEnd && st.size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, st.size - 1);
        // Started mid-line: the rest of that line is not a line of its own.
        if (last[0] !== 0x0a) f.framer.skipToNextLine();
      }
      f.scanId = this.scanId;
      this.files.set(id, f);
      this.bound.set(record.key, f);
      this.byPath.set(c.path, f);
      // Kept open: it is about to be read (the next read reopens it if it is evicted meanwhile).
      if (gzip) await this.deps.handles.closeTemporary(handle);
      else f.handle = handle;
      handle = undefined;
      this.deps.metrics.discovered.inc();
      this.ready.add(f);
      this.deps.logger.debug(
        { path: c.path, key: record.key, offset: start, new: resume.created },
        'file source: tailing file',
      );
      return resume.created;
    } catch (error) {
      if (handle !== undefined) await this.deps.handles.closeTemporary(handle);
      this.deps.readError(undefined, c.path, error);
      return false;
    }
  }

  /** Links of an open file (0: deleted); -1 when unknown (no handle). */
  private async linkCount(f: TailedFile): Promise<number> {
    try {
      return f.handle === undefined ? -1 : (await f.handle.stat()).nlink;
    } catch {
      return -1;
    }
  }

  orphan(f: TailedFile, why: 'rotated' | 'deleted'): void {
    if (f.orphaned) {
      // Renamed out of the globs first, deleted later: it was a rotation, and stays counted as one.
      if (why === 'deleted') f.deleted = true;
      return;
    }
    f.orphaned = true;
    if (why === 'deleted') {
      f.deleted = true;
      this.deps.metrics.deleted.inc();
    } else {
      this.deps.metrics.rotated.inc();
    }
    this.deps.logger.debug({ path: f.path, why, offset: f.readOffset }, 'file source: file left its path');
    if (this.byPath.get(f.path) === f) this.byPath.delete(f.path);
    this.ready.add(f);
  }

  /** The file's record is no longer read by it; a copy of the same content may take over from here. */
  retire(f: TailedFile): void {
    if (this.bound.get(f.record.key) === f) this.bound.delete(f.record.key);
    this.retired.delete(f.record.key);
    this.retired.set(f.record.key, { window: f.window, emittedTo: f.emittedTo });
    if (this.retired.size > MAX_RETIRED) this.retired.delete(this.retired.keys().next().value!);
    this.skipped.clear(); // a copy skipped while its original was read may now be read in its place
  }

  /** Forgets records of files no scan has seen for FORGET_AFTER_MS. */
  private forgetOld(now: number): void {
    const store = this.deps.store();
    for (const r of store.all()) {
      if (!this.bound.has(r.key) && now - r.seen > FORGET_AFTER_MS) {
        store.remove(r);
        this.retired.delete(r.key);
      }
    }
  }

  /** Done with a file (it left its path and stopped growing, or it is gone): its last line is complete. */
  async release(f: TailedFile): Promise<void> {
    await this.deps.emitter.flushHeld(f, true, true);
    await this.deps.handles.close(f);
    this.files.delete(f.id);
    this.retire(f);
    if (this.byPath.get(f.path) === f) this.byPath.delete(f.path);
    this.ready.delete(f);
    this.deps.metrics.released.inc();
    this.deps.metrics.trackedFiles.set(this.files.size);
    // A deleted file cannot come back: its record has no use once its last batch settled.
    if (f.deleted) f.record.seen = 0;
    this.deps.logger.debug({ path: f.path, offset: f.readOffset }, 'file source: file released');
  }
}
