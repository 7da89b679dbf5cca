import { type FileHandle, open, stat } from 'node:fs/promises';
import { MultilineRules } from '../../codecs/multiline.ts';
import type { Source, SourceContext } from '../../core/component.ts';
import type { FileSourceOptions } from '../file.ts';
import { FileBatchEmitter } from './batch-emitter.ts';
import { FileCheckpointStore } from './checkpoints.ts';
import { DirectoryWatcher, FileDiscovery } from './discovery.ts';
import { TailedFileSet } from './file-set.ts';
import { type FileFacts, type FingerprintOptions, hashHead, newRecord, readHead } from './fingerprint.ts';
import { FileHandlePool } from './handle-pool.ts';
import type { LineFramerOptions } from './line-framer.ts';
import { FileMetrics } from './metrics.ts';
import { extendHead } from './resume.ts';
import { GzipChunkReader, type TailedFile } from './tailed-file.ts';

/** Delay between a file appearing or disappearing (notification) and the rescan it triggers, to batch bursts. */
const RESCAN_DEBOUNCE_MS = 20;

/**
 * The `file` source. One loop per source does all reading, in turns: a chunk of up to `max_read_bytes` from one
 * file with new data, framed into lines (and multiline groups), emitted as one batch, and awaited before the
 * next read, so backpressure stops the reading. Scans of the globs (TailedFileSet) run inside the same loop, so
 * the state of a file only ever changes in one place; acknowledgements, notifications and timers only set
 * flags and wake it. Here: the loop, and what a turn does to a file (read, detect truncation, timeouts,
 * rewind after a failed batch, reopen after max_open_files closed it).
 *
 * A file's checkpoint moves with its acknowledgements (see AckWindow) and is written every
 * `checkpoint_interval` and at stop. Held partial lines and multiline groups are not emitted at stop: the
 * checkpoint stops before them and the next start reads them again, whole.
 */
export class FileTailSource implements Source {
  private readonly discovery: FileDiscovery;
  private readonly watcher: DirectoryWatcher;
  private readonly metrics: FileMetrics;
  private readonly fingerprint: FingerprintOptions;
  private readonly framerOptions: Omit<LineFramerOptions, 'onOverlong'>;
  private readonly multiline: MultilineRules | undefined;
  private readonly readBuffer: Buffer;
  private store: FileCheckpointStore | undefined;

  private readonly files: TailedFileSet;
  private readonly handles: FileHandlePool;

  private stopping = false;
  private stopped = false;
  private stopPromise: Promise<void> | undefined;
  private loopDone: Promise<void> | undefined;
  private scanDue = false;
  private pollDue = false;
  private wakeUp: (() => void) | undefined;
  private timers: NodeJS.Timeout[] = [];
  private rescanTimer: NodeJS.Timeout | undefined;

  private readonly emitter: FileBatchEmitter;
  private lastCheckpointErrorLog = 0;
  /** Files that could not be opened to start tailing them: when their error was last logged. */
  private readonly untrackedErrorLogAt = new Map<string, number>();

  constructor(
    private readonly options: FileSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    this.discovery = new FileDiscovery(options.include, options.exclude);
    this.watcher = new DirectoryWatcher(
      {
        changed: (path) => this.onChanged(path),
        renamed: () => this.rescanSoon(),
      },
      ctx.logger,
    );
    this.metrics = new FileMetrics(ctx.metrics);
    this.handles = new FileHandlePool(options.max_open_files, this.metrics.openFiles, () => this.files.values());
    this.emitter = new FileBatchEmitter(ctx, this.metrics, options.max_line_bytes, {
      committed: () => {
        this.store?.markDirty();
        // Batches settling after the stop (the sinks drain after the sources) still reach the checkpoints.
        if (this.stopped) void this.saveCheckpoints();
      },
      failed: (f, window) => {
        if (this.stopping || window !== f.window) return;
        this.files.markReady(f);
        this.wake();
      },
    });
    this.fingerprint = { strategy: options.fingerprint.strategy, bytes: Math.max(1, options.fingerprint.bytes) };
    this.framerOptions = { maxLineBytes: Math.max(1, options.max_line_bytes), overlong: options.overlong_lines };
    this.multiline = options.multiline === undefined ? undefined : new MultilineRules(options.multiline);
    this.readBuffer = Buffer.allocUnsafeSlow(Math.max(4096, options.max_read_bytes));
    this.files = new TailedFileSet({
      options,
      logger: ctx.logger,
      metrics: this.metrics,
      discovery: this.discovery,
      watcher: this.watcher,
      handles: this.handles,
      emitter: this.emitter,
      fingerprint: this.fingerprint,
      framerOptions: this.framerOptions,
      multiline: this.multiline,
      store: () => this.store!,
      stopping: () => this.stopping,
      saveCheckpoints: () => this.saveCheckpoints(),
      readError: (f, path, error) => this.readError(f, path, error),
    });
  }

  endpoint(): string {
    return this.options.include.join(', ');
  }

  async start(): Promise<void> {
    const dir = FileCheckpointStore.directory(this.ctx.dataDir, this.ctx.id);
    this.store = new FileCheckpointStore(dir, this.fingerprint.bytes, this.ctx.logger);
    await this.store.load();
    await this.files.scan(true);
    await this.files.findRotatedWhileStopped();
    await this.saveCheckpoints();
    const { glob_interval, poll_interval, checkpoint_interval } = this.options;
    this.timers.push(
      setInterval(() => this.requestScan(), Math.max(10, glob_interval)).unref(),
      // Kept referenced: a pipeline whose only input is files must stay alive while it waits for lines.
      setInterval(() => this.requestPoll(), Math.max(10, poll_interval)),
      setInterval(() => void this.saveCheckpoints(), Math.max(10, checkpoint_interval)).unref(),
    );
    this.loopDone = this.loop();
    this.ctx.logger.info(
      { include: this.options.include, files: this.files.size, checkpoints: this.store.size },
      'file source: tailing',
    );
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.rescanTimer);
    this.watcher.close();
    this.wake();
    await this.loopDone;
    // What is in flight settles while the sinks drain; the checkpoint then covers exactly what they confirmed.
    await this.saveCheckpoints();
    await this.emitter.idle();
    await this.saveCheckpoints();
    await Promise.all([...this.files.values()].map((f) => this.handles.close(f)));
    this.stopped = true;
  }

  // ---- the loop ----------------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        if (this.scanDue) {
          this.scanDue = false;
          await this.files.scan(false);
        }
        if (this.pollDue) {
          this.pollDue = false;
          this.files.markEndedReady();
        }
        const f = this.files.takeReady();
        if (f === undefined) {
          // stop() may have come while this iteration awaited a scan: its wake() found no sleeper then, and
          // no timer will wake one now. Checking right before sleeping (no await in between) closes that gap.
          if (this.stopping) break;
          await new Promise<void>((resolve) => {
            this.wakeUp = resolve;
          });
          this.wakeUp = undefined;
          continue;
        }
        await this.service(f);
      } catch (error) {
        this.ctx.metrics.error('loop');
        this.ctx.logger.error({ err: (error as Error).message }, 'file source: unexpected error; continuing');
      }
    }
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private requestScan(): void {
    this.scanDue = true;
    this.wake();
  }

  private requestPoll(): void {
    this.pollDue = true;
    this.wake();
  }

  private rescanSoon(): void {
    if (this.rescanTimer !== undefined || this.stopping) return;
    this.rescanTimer = setTimeout(() => {
      this.rescanTimer = undefined;
      this.requestScan();
    }, RESCAN_DEBOUNCE_MS);
  }

  private onChanged(path: string): void {
    const f = this.files.at(path);
    if (f === undefined) return;
    this.files.markReady(f);
    this.wake();
  }

  // ---- reading -----------------------------------------------------------------------------------------

  /** One turn for one file: rewind after a failure, check its size, read one chunk and emit it. */
  private async service(f: TailedFile): Promise<void> {
    if (!this.files.has(f)) return; // released meanwhile
    try {
      if (f.window.failed) await this.rewind(f);
      if (f.gzip) {
        await this.serviceGzip(f);
        return;
      }
      if (f.handle === undefined && !(await this.reopen(f))) return;
      const handle = f.handle!;
      if (f.atEof) {
        const st = await handle.stat();
        if (st.nlink === 0 && !f.deleted) this.files.orphan(f, 'deleted');
        if (st.size < f.readOffset) {
          await this.truncated(f, handle, st.size);
          this.files.markReady(f);
          return;
        }
        if (st.size === f.readOffset) {
          await this.atEnd(f);
          return;
        }
        f.atEof = false;
      }
      const buffer = this.readBuffer;
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, f.readOffset);
      if (bytesRead === 0) {
        f.atEof = true;
        this.files.markReady(f); // the next turn checks for truncation and timeouts
        return;
      }
      // Read after the chunk: if the file was truncated and rewritten past our offset (copytruncate under
      // load), the first bytes changed and the chunk may be new content at an old offset: start over instead.
      if (await this.headChanged(f, handle)) {
        await this.truncated(f, handle, (await handle.stat()).size);
        this.files.markReady(f);
        return;
      }
      f.lastGrowthAt = Date.now();
      await this.emitter.emitChunk(f, buffer.subarray(0, bytesRead));
      this.files.markReady(f);
    } catch (error) {
      this.readError(f, f.path, error);
      await this.handles.close(f);
    }
  }

  private async serviceGzip(f: TailedFile): Promise<void> {
    if (f.finished) {
      if (f.orphaned) await this.files.release(f);
      return;
    }
    if (f.gunzip === undefined) {
      await this.handles.makeRoom(f);
      f.gunzip = new GzipChunkReader(f.path, f.readOffset);
      this.handles.opened();
    }
    let chunk: Buffer | undefined;
    try {
      chunk = await f.gunzip.next();
    } catch (error) {
      // Damaged, or still being written by the compressor: try again when its size changes.
      await this.handles.close(f);
      f.finished = true;
      f.finishedSize = (await stat(f.path).catch(() => ({ size: -1 }))).size;
      this.readError(f, f.path, error);
      return;
    }
    if (chunk === undefined) {
      await this.handles.close(f);
      f.finished = true;
      f.finishedSize = (await stat(f.path).catch(() => ({ size: -1 }))).size;
      // The end of a compressed file ends its last line.
      await this.emitter.flushHeld(f, true, true);
      return;
    }
    f.lastGrowthAt = Date.now();
    await this.emitter.emitChunk(f, chunk);
    this.files.markReady(f);
  }

  /** Nothing new in the file: timeouts, and the end of a file that left its path. */
  private async atEnd(f: TailedFile): Promise<void> {
    const now = Date.now();
    const o = this.options;
    if (f.orphaned && now - f.lastGrowthAt >= o.rotate_wait) {
      await this.files.release(f);
      return;
    }
    const partialDue = o.partial_line_timeout > 0 && f.framer.holding && now - f.lastGrowthAt >= o.partial_line_timeout;
    const groupDue = f.multiline?.overdue(now) === true;
    if (partialDue || groupDue) await this.emitter.flushHeld(f, partialDue, false);
  }

  /**
   * Reads the first bytes again: different ones mean the file was truncated and rewritten (content replaced).
   * While the record covers fewer bytes than the fingerprint length, it is extended as the file grows.
   */
  private async headChanged(f: TailedFile, handle: FileHandle): Promise<boolean> {
    if (this.fingerprint.strategy !== 'checksum') return false;
    const record = f.record;
    const head = await readHead(handle, this.fingerprint.bytes);
    if (head.length < record.headLength) return true;
    if (hashHead(head.subarray(0, record.headLength)) !== record.headHash) return true;
    extendHead(this.store!, record, head, this.fingerprint.bytes);
    return false;
  }

  /**
   * The file is shorter than what was read, or its first bytes changed (copytruncate, `> file`): what is held
   * of the old content is emitted, and the new content starts over at 0 under a new record, since the same
   * offsets now hold other lines and must not get the same ids.
   */
  private async truncated(f: TailedFile, handle: FileHandle, size: number): Promise<void> {
    this.metrics.truncations.inc();
    this.ctx.logger.info(
      { path: f.path, read: f.readOffset, size },
      'file source: file truncated; reading from its start',
    );
    // Complete lines held in a multiline group are emitted; a partial line is not: its end is in the copy a
    // copytruncate made, which continues from its start when the globs match it.
    await this.emitter.flushHeld(f, false, true);
    const store = this.store!;
    f.record.seen = Date.now();
    const head = await readHead(handle, Math.min(this.fingerprint.bytes, size));
    const facts: FileFacts = { dev: f.dev, ino: f.ino, birth: f.birth, size };
    const record = newRecord(store, facts, head, f.path, 0, this.fingerprint, Date.now());
    this.files.rebind(f, record);
    f.restartAt(0, record);
    await this.saveCheckpoints();
  }

  /** A batch failed (not delivered): read again from its first line. Later batches in flight are abandoned. */
  private async rewind(f: TailedFile): Promise<void> {
    const r = f.window.rewind();
    if (r === undefined) return;
    this.emitter.abandoned(r.abandonedPending);
    this.metrics.rewinds.inc();
    this.ctx.logger.warn(
      { path: f.path, from: r.from, read: f.readOffset },
      'file source: a batch was not delivered; reading it again',
    );
    f.restartAt(r.from);
    if (f.gzip) await this.handles.close(f);
  }

  /** Reopens a file whose handle was closed to stay within max_open_files. */
  private async reopen(f: TailedFile): Promise<boolean> {
    await this.handles.makeRoom(f);
    let handle: FileHandle;
    try {
      handle = await open(f.path, 'r');
    } catch {
      await this.files.release(f); // gone while closed
      return false;
    }
    const st = await handle.stat().catch(async (error) => {
      await handle.close();
      throw error;
    });
    if (st.dev !== f.dev || st.ino !== f.ino) {
      // Its path holds another file now; the one we had is out of reach (a rotation while it was closed).
      await handle.close();
      this.ctx.logger.warn(
        { path: f.path, offset: f.readOffset },
        'file source: a closed file was replaced before it could be reopened; raise max_open_files',
      );
      await this.files.release(f);
      return false;
    }
    f.handle = handle;
    this.handles.opened();
    return true;
  }

  // ---- checkpoints and errors --------------------------------------------------------------------------

  private async saveCheckpoints(): Promise<void> {
    const store = this.store;
    if (store === undefined || !store.isDirty) return;
    try {
      await store.save();
      this.metrics.checkpointWrites.inc();
    } catch (error) {
      this.ctx.metrics.error('checkpoint_write');
      const now = Date.now();
      if (now - this.lastCheckpointErrorLog > 60_000) {
        this.lastCheckpointErrorLog = now;
        this.ctx.logger.error(
          { path: store.path, err: (error as Error).message },
          'file source: cannot write checkpoints; lines will be read again after a restart',
        );
      }
    }
  }

  /** Counts every read error; logs one per file and minute, so an unreadable file does not flood the log. */
  private readError(f: TailedFile | undefined, path: string, error: unknown): void {
    this.ctx.metrics.error('read');
    const now = Date.now();
    if (f !== undefined) {
      if (now - f.lastErrorLogAt < 60_000) return;
      f.lastErrorLogAt = now;
    } else {
      if (now - (this.untrackedErrorLogAt.get(path) ?? 0) < 60_000) return;
      if (this.untrackedErrorLogAt.size > 10_000) this.untrackedErrorLogAt.clear();
      this.untrackedErrorLogAt.set(path, now);
    }
    this.ctx.logger.warn({ path, err: (error as Error).message }, 'file source: cannot read file; retrying');
  }
}
