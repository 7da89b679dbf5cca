import type { FileHandle } from 'node:fs/promises';
import type { TailedFile } from './tailed-file.ts';

/** The gauge the pool keeps up to date (`fluxo_file_source_open_files`). */
interface Gauge {
  set(value: number): void;
}

/**
 * Keeps the file source within `max_open_files`: every handle (a file's read handle, a gzip reader, a handle
 * opened to identify a new file) is counted, and room for a new one is made by closing the handle of the
 * file idle for longest. A file whose handle was closed keeps its state and is reopened when it grows.
 */
export class FileHandlePool {
  private open = 0;

  constructor(
    private readonly max: number,
    private readonly gauge: Gauge,
    private readonly files: () => Iterable<TailedFile>,
  ) {}

  get size(): number {
    return this.open;
  }

  /** Call before opening a handle: closes one if the limit is reached. */
  async makeRoom(except: TailedFile | undefined): Promise<void> {
    if (this.open >= this.max) await this.evictOne(except);
  }

  /** A handle was opened. */
  opened(): void {
    this.open++;
    this.gauge.set(this.open);
  }

  /** Closes a handle that belongs to no file (identification, a skipped file). */
  async closeTemporary(handle: FileHandle): Promise<void> {
    await handle.close().catch(() => {});
    this.closed();
  }

  /** Closes whatever the file holds open (its read handle, its gzip reader). */
  async close(f: TailedFile): Promise<void> {
    if (f.gunzip !== undefined) {
      f.gunzip.close();
      f.gunzip = undefined;
      this.closed();
    }
    const h = f.handle;
    if (h === undefined) return;
    f.handle = undefined;
    try {
      await h.close();
    } catch {
      // closing a read handle cannot lose anything
    } finally {
      this.closed();
    }
  }

  private closed(): void {
    this.open--;
    this.gauge.set(this.open);
  }

  /**
   * Closes the handle of the file idle for longest: at its end, holding no partial line or multiline group
   * (whose timeouts need polling) if possible; never one being finished after a rotation (it could not be
   * reopened by its path).
   */
  private async evictOne(except: TailedFile | undefined): Promise<void> {
    let victim: TailedFile | undefined;
    let victimRank = 0;
    for (const f of this.files()) {
      if (f === except || (f.handle === undefined && f.gunzip === undefined) || f.orphaned) continue;
      const rank = (f.atEof ? 2 : 0) + (f.safeOffset === f.readOffset ? 1 : 0);
      if (victim === undefined || rank > victimRank || (rank === victimRank && f.lastGrowthAt < victim.lastGrowthAt)) {
        victim = f;
        victimRank = rank;
      }
    }
    if (victim !== undefined) await this.close(victim);
  }
}
