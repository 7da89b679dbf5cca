import { existsSync, type FSWatcher, watch } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { glob, isDynamicPattern } from 'tinyglobby';

/** Most directories watched for change hints; beyond that, rescans and polling alone find changes. */
const MAX_WATCHED_DIRECTORIES = 64;

interface PatternGroup {
  /** The directory the pattern's static part names, e.g. `/var/log/app` for `/var/log/app/**\/*.log`. */
  base: string;
  /** The rest of the pattern, relative to `base`. */
  relative: string;
  /** The pattern names `.gz` files explicitly, so gzipped files it matches are read. */
  gzip: boolean;
}

/** Splits an absolute glob into its static directory and the dynamic rest. */
export function splitPattern(pattern: string): { base: string; relative: string } {
  const parts = pattern.split('/');
  let i = 0;
  while (i < parts.length - 1 && !isDynamicPattern(parts[i]!)) i++;
  const base = parts.slice(0, i).join('/') || '/';
  return { base, relative: parts.slice(i).join('/') };
}

/**
 * Finds the files of `include` minus `exclude` (tinyglobby, one crawl per static base directory). A file
 * ending in `.gz` is returned only for an include pattern that itself ends in `.gz`: rotated, compressed
 * copies of a log are ignored unless asked for.
 */
export class FileDiscovery {
  private readonly groups: PatternGroup[];
  private readonly exclude: string[];

  constructor(include: readonly string[], exclude: readonly string[], cwd = process.cwd()) {
    this.groups = include.map((p) => {
      const absolute = isAbsolute(p) ? p : resolve(cwd, p);
      const { base, relative } = splitPattern(absolute);
      return { base, relative, gzip: p.endsWith('.gz') };
    });
    this.exclude = exclude.map((p) => (isAbsolute(p) ? p : resolve(cwd, p)));
  }

  /** Static base directories of the include patterns (for watching). */
  get bases(): string[] {
    return [...new Set(this.groups.map((g) => g.base))];
  }

  /** Every matching file: absolute path → whether it is read as gzip. Missing directories match nothing. */
  async scan(): Promise<Map<string, boolean>> {
    const found = new Map<string, boolean>();
    for (const group of this.groups) {
      if (!existsSync(group.base)) continue;
      const paths = await glob(group.relative, {
        cwd: group.base,
        absolute: true,
        ignore: this.exclude,
        onlyFiles: true,
        followSymbolicLinks: true,
        expandDirectories: false,
      });
      for (const path of paths) {
        const gzip = path.endsWith('.gz');
        if (gzip && !group.gzip) continue;
        found.set(path, gzip);
      }
    }
    return found;
  }
}

export interface WatchHandlers {
  /** A file in a watched directory was written. */
  changed(path: string): void;
  /** Files appeared, disappeared or were renamed in a watched directory. */
  renamed(): void;
}

/**
 * fs.watch (inotify) on the base directories, as hints only: they make new lines and new files show up
 * at once instead of at the next poll or rescan. Nothing depends on them (events can be lost or coalesced,
 * network file systems send none), so errors just end the watch.
 */
export class DirectoryWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private closed = false;

  constructor(
    private readonly handlers: WatchHandlers,
    private readonly logger: Logger,
  ) {}

  /** Watches the directories that exist and are not watched yet (called again on each rescan). */
  watch(directories: readonly string[]): void {
    if (this.closed) return;
    for (const dir of directories) {
      if (this.watchers.has(dir) || this.watchers.size >= MAX_WATCHED_DIRECTORIES) continue;
      if (!existsSync(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (event, name) => {
          if (event === 'rename' || name === null) this.handlers.renamed();
          else this.handlers.changed(join(dir, name));
        });
        w.on('error', (error) => {
          this.logger.debug({ dir, err: error.message }, 'file source: directory watch ended; polling continues');
          w.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, w);
      } catch (error) {
        this.logger.debug({ dir, err: (error as Error).message }, 'file source: cannot watch directory; polling');
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
