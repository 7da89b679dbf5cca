import { EventEmitter } from 'node:events';
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { PathTemplate, templateString } from '../codecs/path-template.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { backoffDelay, type RetryPolicy, sleep } from '../core/retry.ts';
import {
  type EncodedLines,
  type Encoding,
  encodingOf,
  encodingOptions,
  pickLines,
  Semaphore,
  type SendResult,
  type SinkRequest,
} from '../core/sink/index.ts';
import { duration, size } from '../core/units.ts';
import { type Committer, LocalCommitter } from './file/commit.ts';
import { liveTempFiles, OpenFile, type OpenFileOptions, ownerToken, type StagedFile } from './file/open-file.ts';
import {
  type ColumnSpec,
  declaredColumns,
  schemaModeOption,
  schemaOption,
  strictMisfit,
} from './file/parquet-schema.ts';
import type { ParquetFileOptions } from './file/parquet-writer.ts';
import { finalizeStagingFile, type RecoveryReport, recoverInProgressFiles } from './file/recovery.ts';
import { Sealer } from './file/sealer.ts';

/**
 * Staged bytes per Parquet row group: 8 MiB against 32 gave the seal 13 % fewer CPU-seconds and 30 % less peak
 * RSS for 3.5 % more bytes per event (docs/benchmarks.md, "Parquet row group size").
 */
const DEFAULT_ROW_GROUP_BYTES = 8 * 1024 * 1024;

const FILE_ENCODINGS = ['ndjson', 'text', 'parquet'] as const;

/** The options of the file sink; the s3 sink builds on the same (its `path` is the object key template). */
export const fileSinkOptionsShape = {
  path: templateString().describe(
    'Where events go: a template with strftime fields from the event `timestamp` (%Y %m %d %H %M %S %j %F %T %s %y %%) ' +
      'and event fields (`{{ host }}`, `{{ kubernetes.pod }}`; `/`, `..` and NUL in values become `_`). Each file gets ' +
      'a unique `-<UTC time>-<random>` suffix before its extensions: `part.ndjson.gz` → `part-20261124T074501Z-1a2b3c4d.ndjson.gz`; ' +
      'a sealed Parquet file adds its record range: `part-20261124T074501Z-1a2b3c4d-1-48211.parquet`.',
  ),
  ...encodingOptions(['ndjson', 'text'], { codec: 'ndjson', aliases: { json: 'ndjson' } }),
  encoding: z
    .enum([...FILE_ENCODINGS, 'json'])
    .transform((value) => (value === 'json' ? 'ndjson' : value) as (typeof FILE_ENCODINGS)[number])
    .default('ndjson')
    .describe(
      '`ndjson`, one JSON object per line; `text`, the `text_field` of each event (`message` by default), one per ' +
        "line; `parquet`, columnar files (events are staged as NDJSON, fsync'd before the acknowledgement, and each " +
        'staging file is sealed into one Parquet file when it rolls). `json` is the old spelling of `ndjson`.',
    ) as unknown as z.ZodDefault<z.ZodType<(typeof FILE_ENCODINGS)[number], string | undefined>>,
  compression: z
    .enum(['none', 'gzip', 'auto', 'zstd', 'snappy'])
    .default('auto')
    .describe(
      'NDJSON/text: `gzip`, `none`, or `auto` (gzip when the path ends in `.gz`). Parquet: the page compression, ' +
        '`zstd` (`auto`), `snappy`, `gzip` or `none`.',
    ),
  schema: schemaOption,
  schema_mode: schemaModeOption,
  row_group_size: size()
    .optional()
    .describe(
      'With `encoding: parquet`: staged (NDJSON) bytes per row group, default 8MiB (about 12,000 access-log ' +
        'events); a seal holds one row group in memory at a time. Larger groups compress a little better and ' +
        'cost the seal more memory: an aggregator with RAM to spare may raise it.',
    ),
  row_group_max_rows: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('With `encoding: parquet`: most rows in one row group, whatever their size; default 1,000,000.'),
  timezone: z.enum(['utc', 'local']).default('utc').describe('Time zone of the strftime fields in `path`.'),
  max_file_size: size()
    .default(128 * 1024 * 1024)
    .describe('Close a file once it holds this many bytes on disk (it can pass it by one write).'),
  max_file_age: duration()
    .default(5 * 60_000)
    .describe('Close a file this long after it was opened, so readers see data at least this often; 0: never.'),
  idle_timeout: duration()
    .default(30_000)
    .describe('Close a file not written for this long (e.g. a past hour partition); 0: never.'),
  max_open_files: z
    .number()
    .int()
    .positive()
    .default(64)
    .describe('Most files open at once; opening another closes the least recently written one.'),
  sync: z
    .boolean()
    .default(true)
    .describe(
      'fdatasync each write before acknowledging it. `false` is for benchmarks only: a crash can lose acknowledged events.',
    ),
};

const fileSinkOptions = z.object(fileSinkOptionsShape).superRefine((options, ctx) => {
  if (options.encoding !== 'parquet' && (options.compression === 'zstd' || options.compression === 'snappy')) {
    ctx.addIssue({
      code: 'custom',
      path: ['compression'],
      message: `compression ${options.compression} is for encoding: parquet; NDJSON/text files take gzip, none or auto`,
    });
  }
  if (options.encoding === 'parquet' && (options.schema_mode ?? 'infer') !== 'infer' && options.schema === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['schema_mode'],
      message: `schema_mode: ${options.schema_mode} needs a schema (field → type)`,
    });
  }
});

export type FileSinkOptions = z.infer<typeof fileSinkOptions>;

export type CloseReason = 'max_file_size' | 'max_file_age' | 'idle_timeout' | 'max_open_files' | 'stop';
export interface FileClosed {
  /** Where the file became visible (with the local committer, a local path; otherwise its name). */
  path: string;
  reason: CloseReason;
  /** Bytes of the staging file. */
  bytes: number;
  /** Its name relative to the committer's root, and the size and events of the sealed file. */
  name?: string;
  sealedBytes?: number;
  events?: number;
}

/**
 * How another sink reuses the file sink's staging: `root` is the local directory the staging files go under
 * (the rendered `path` is relative to it) and `committer` makes each sealed file durable at the destination.
 * The plain file sink has root '' and the LocalCommitter.
 */
export interface StagingSeam {
  readonly root: string;
  readonly committer: Committer;
  /** Metric names start with this (`fluxo_<prefix>_files_opened_total`); `file_sink` by default. */
  readonly metricPrefix?: string;
  /**
   * start() returns at once and the files of a previous run are finalized in the background (stop() waits for
   * that): a committer that may wait for a remote store must not keep the pipeline from starting.
   */
  readonly recoverInBackground?: boolean;
}

/**
 * A file that failed to close (its seal or commit failed: a full disk, a path taken, the store down) is tried
 * again in the running process; the cap keeps a long outage to one attempt every half minute at most.
 */
const CLOSE_RETRY: RetryPolicy = { initialBackoffMs: 100, maxBackoffMs: 30_000, maxAttempts: 0 };

/** The events of one write going to one file: their positions in the write. */
type Group = number[];

/**
 * The batch layer's writer. Each send() groups its events by rendered path, and appends each group's lines
 * (encoded once by the kit) to its file as one buffer with one fdatasync (group commit). A group that fails
 * is answered as to be retried, so the retry writes only it and never duplicates the partitions that made it.
 * Files become visible, complete, by rename when they roll. Emits `file-closed` with the final path each time
 * a file becomes visible.
 */
export class FileSink
  extends EventEmitter<{ 'file-closed': [FileClosed]; 'file-recovered': [{ path: string }] }>
  implements Sink
{
  private readonly template: PathTemplate;
  private readonly fileOptions: OpenFileOptions;
  private readonly root: string;
  private readonly sealer: Sealer;
  /** strict mode: the columns an event must fit, checked in send(). */
  private readonly strictColumns: ReadonlyMap<string, ColumnSpec> | undefined;
  /** Aborted by stop() once everything is closed, for a commit still retrying. */
  private readonly abort = new AbortController();
  /** Open files by rendered path, least recently written first. */
  private readonly files = new Map<string, OpenFile>();
  private readonly opening = new Map<string, Promise<OpenFile>>();
  private readonly closing = new Set<Promise<void>>();
  private readonly writes = new Set<Promise<unknown>>();
  /** Staging files that failed to close, each with the loop that tries again; stop() ends the loops. */
  private readonly retrying = new Map<string, Promise<void>>();
  private readonly retryAbort = new AbortController();
  private readonly recoverInBackground: boolean;
  /** The start-up recovery when it runs in the background. */
  private recovering: Promise<void> | undefined;
  private readonly warnings: RateLimitedWarnings;
  readonly encoding: Encoding;
  /** Groups written at once, so files in use never outnumber max_open_files. */
  private readonly slots: Semaphore;
  private readonly sweepEveryMs: number | undefined;
  private readonly staleForeignMs: number;
  private sweeper: NodeJS.Timeout | undefined;
  private stopped = false;
  private closeFailures = 0;
  private readonly opened;
  private readonly closed;
  private readonly recovered;
  private readonly openFiles;
  private readonly closeRetries;
  private readonly pendingClose;

  constructor(
    private readonly options: FileSinkOptions,
    private readonly context: ComponentContext,
    seam?: StagingSeam,
  ) {
    super();
    const parquet = options.encoding === 'parquet';
    // Parquet stages NDJSON: the kit encodes each write once into the lines appended to the staging file.
    this.encoding = parquet
      ? { codec: 'ndjson' }
      : encodingOf(options as FileSinkOptions & { encoding: 'ndjson' | 'text' });
    this.template = new PathTemplate(options.path, { timezone: options.timezone });
    this.root = seam?.root ?? '';
    this.recoverInBackground = seam?.recoverInBackground ?? false;
    const gzip =
      !parquet && (options.compression === 'gzip' || (options.compression === 'auto' && options.path.endsWith('.gz')));
    this.fileOptions = { gzip, sync: options.sync, owner: ownerToken(context.dataDir, context.id) };
    let parquetOptions: ParquetFileOptions | undefined;
    if (parquet) {
      const columns = declaredColumns(options.schema, pathFields(options.path));
      parquetOptions = {
        columns,
        mode: options.schema_mode ?? 'infer',
        compression: options.compression === 'auto' ? 'zstd' : options.compression,
        rowGroupBytes: options.row_group_size ?? DEFAULT_ROW_GROUP_BYTES,
        rowGroupMaxRows: options.row_group_max_rows ?? 1_000_000,
      };
      if (options.schema_mode === 'strict') this.strictColumns = new Map(columns.map((c) => [c.name, c]));
    }
    this.sealer = new Sealer({
      root: this.root,
      committer: seam?.committer ?? new LocalCommitter(this.root),
      parquet: parquetOptions,
      gzip,
      format: options.encoding,
      owner: this.fileOptions.owner,
    });
    this.slots = new Semaphore(options.max_open_files);
    const limits = [options.max_file_age, options.idle_timeout].filter((ms) => ms > 0);
    this.sweepEveryMs =
      limits.length > 0 ? Math.min(1000, Math.max(10, Math.floor(Math.min(...limits) / 4))) : undefined;
    // A live writer closes a file untouched for idle_timeout or older than max_file_age; three times that (an
    // hour at least) untouched means its writer is gone. Without either limit a live file may sit untouched.
    this.staleForeignMs = limits.length > 0 ? Math.max(3 * Math.max(...limits), 3_600_000) : Number.POSITIVE_INFINITY;
    const m = context.metrics;
    const prefix = `fluxo_${seam?.metricPrefix ?? 'file_sink'}`;
    this.opened = m.counter(`${prefix}_files_opened_total`, 'Files the file sink started writing.');
    this.closed = m.counter(`${prefix}_files_closed_total`, 'Files the file sink finished and made visible.');
    this.recovered = m.counter(
      `${prefix}_files_recovered_total`,
      'In-progress files of a crashed run the file sink finalized at start.',
    );
    this.openFiles = m.gauge(`${prefix}_open_files`, 'Files the file sink has open.');
    this.closeRetries = m.counter(
      `${prefix}_close_retries_total`,
      'Attempts to finish again (seal and commit) a file that had failed to close.',
    );
    this.pendingClose = m.gauge(
      `${prefix}_close_pending_files`,
      'Files that failed to close and are being tried again; they keep their events on disk meanwhile.',
    );
    this.warnings = new RateLimitedWarnings(context.logger, 10_000);
  }

  /** Finalizes the in-progress files a crash (kill -9, power loss) left: they hold acknowledged events. */
  async start(): Promise<void> {
    if (this.recoverInBackground) {
      this.recovering = this.recover().then(
        (report) => this.reportRecovery(report),
        (error) => this.context.logger.error({ err: error, path: this.options.path }, 'file sink: recovery failed'),
      );
      return;
    }
    this.reportRecovery(await this.recover());
  }

  private reportRecovery(report: RecoveryReport): void {
    const { logger } = this.context;
    const { failedFiles, ...counts } = report;
    if (report.files + report.empty + report.damaged + report.failed > 0) {
      logger.info({ path: this.options.path, ...counts }, 'file sink: finalized in-progress files of a previous run');
    }
    // A file a start could not finish (a full disk, the store down, a seal that failed) holds acknowledged
    // events: it is tried again in this process, as a file that failed to close is, not left for the next start.
    for (const file of failedFiles) this.retryClose(file, 'recovered');
    if (report.foreign > 0) {
      logger.warn(
        { path: this.options.path, files: report.foreign },
        'file sink: in-progress files of another fluxo instance (other host, data_dir or sink id) left alone; ' +
          'a later start adopts them once untouched for 3 × max(max_file_age, idle_timeout), at least 1h',
      );
    }
  }

  /** The directory the partitions go under can be created and written to. */
  async healthcheck(): Promise<void> {
    const dir = this.staticDir;
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  }

  send(request: SinkRequest): Promise<SendResult | undefined> {
    const writing = this.writeEvents(request.events, request.lines());
    this.writes.add(writing);
    const forget = () => this.writes.delete(writing);
    writing.then(forget, forget);
    return writing;
  }

  /** Closes every file; afterwards every acknowledged event is in a complete, visible file. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.writes]);
    await Promise.allSettled([...this.opening.values()]);
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const [path, file] of this.files) this.retire(path, file, 'stop');
    while (this.closing.size > 0) await Promise.all([...this.closing]);
    // Retries end here (an attempt under way runs to its end); what they did not finish, recover() tries once more.
    this.retryAbort.abort();
    await Promise.allSettled([...this.retrying.values()]);
    await this.recovering;
    if (this.closeFailures === 0) {
      this.abort.abort();
      return;
    }
    // A file that failed to close still holds its acknowledged events; finalize it the way a restart would.
    const report = await this.recover();
    this.abort.abort();
    if (report.failed > 0) {
      throw new FluxoError(
        'FLUXO_FILE_SINK_CLOSE_FAILED',
        `file sink ${this.context.id}: ${report.failed} in-progress file(s) could not be finalized; they keep their events and are recovered at the next start`,
      );
    }
  }

  private async recover(): Promise<RecoveryReport> {
    const report = await recoverInProgressFiles({
      root: this.staticDir,
      depth: this.template.depth,
      owner: this.fileOptions.owner,
      staleForeignMs: this.staleForeignMs,
      finish: (staged) => this.finish(staged, 'recovered'),
      logger: this.context.logger,
      now: Date.now(),
    });
    this.recovered.inc(report.files);
    return report;
  }

  private get staticDir(): string {
    return this.root === '' ? this.template.staticDir : join(this.root, this.template.staticDir);
  }

  /** Seals a staging file and commits it; returns where it became visible. */
  private async finish(staged: StagedFile, reason: CloseReason | 'recovered'): Promise<string | undefined> {
    const sealed = await this.sealer.finish(staged, this.abort.signal);
    if (sealed === undefined) return undefined;
    const path = this.sealer.visiblePath(sealed);
    if (reason === 'recovered') this.emit('file-recovered', { path });
    else {
      this.emit('file-closed', {
        path,
        reason,
        bytes: staged.bytes,
        name: sealed.name,
        sealedBytes: sealed.bytes,
        events: sealed.events,
      });
    }
    return path;
  }

  private async writeEvents(events: readonly Event[], lines: EncodedLines): Promise<SendResult | undefined> {
    if (this.stopped) throw new FluxoError('FLUXO_SINK_STOPPED', `file sink ${this.context.id} is stopped`);
    const now = Date.now();
    const groups = new Map<string, Group>();
    const unplaceable: number[] = [];
    const misfits: { index: number; reason: string }[] = [];
    let missingField: string | undefined;
    let lastPath: string | undefined;
    let lastGroup: Group | undefined;
    const strict = this.strictColumns;
    for (let i = 0; i < events.length; i++) {
      if (strict !== undefined) {
        const misfit = strictMisfit(events[i]!, strict);
        if (misfit !== undefined) {
          misfits.push({ index: i, reason: `file sink: ${misfit}` });
          continue;
        }
      }
      const rendered = this.template.render(events[i]!, now);
      const path = rendered === undefined || this.root === '' ? rendered : join(this.root, rendered);
      if (path === undefined) {
        unplaceable.push(i);
        missingField ??= this.template.missingField;
        continue;
      }
      if (path !== lastPath || lastGroup === undefined) {
        lastPath = path;
        let group = groups.get(path);
        if (group === undefined) {
          group = [];
          groups.set(path, group);
        }
        lastGroup = group;
      }
      lastGroup.push(i);
    }
    const all = groups.size === 1 && unplaceable.length === 0 && misfits.length === 0;
    const entries = [...groups];
    const results = await Promise.allSettled(
      entries.map(([path, group]) =>
        this.appendGroup(path, all ? lines.bytes : pickLines(lines, group).bytes, group.length),
      ),
    );
    let failure: unknown;
    const retry: number[] = [];
    for (let g = 0; g < results.length; g++) {
      const r = results[g]!;
      if (r.status === 'rejected') {
        failure ??= r.reason;
        retry.push(...entries[g]![1]);
      }
    }
    if (unplaceable.length === 0 && misfits.length === 0 && retry.length === 0) return undefined;
    if (unplaceable.length === 0 && misfits.length === 0 && retry.length === events.length) throw failure;
    const reason =
      `file sink: ${unplaceable.length} event(s) lack path field {{ ${missingField} }} ` +
      '(missing, null, empty or not a string/number/boolean)';
    retry.sort((a, b) => a - b);
    return {
      rejected: [...misfits, ...unplaceable.map((index) => ({ index, reason }))],
      retry,
      error: failure,
    };
  }

  /** Appends one group's lines to its file, with one fdatasync. */
  private async appendGroup(path: string, data: Buffer, events: number): Promise<void> {
    if (data.length === 0) return;
    await this.slots.acquire();
    try {
      for (;;) {
        const file = this.files.get(path) ?? (await this.openFile(path));
        if (this.files.get(path) === file) {
          this.files.delete(path);
          this.files.set(path, file);
        }
        const appended = await file.exclusive(async () => {
          if (file.closed) return false;
          await file.append(data, Date.now(), events);
          return true;
        });
        // A timer or the open-files limit closed it just before: the events go to a new file.
        if (!appended) continue;
        if (file.committed >= this.options.max_file_size) this.retire(path, file, 'max_file_size');
        return;
      }
    } finally {
      this.slots.release();
    }
  }

  private openFile(path: string): Promise<OpenFile> {
    let opening = this.opening.get(path);
    if (opening === undefined) {
      opening = this.createFile(path).finally(() => this.opening.delete(path));
      this.opening.set(path, opening);
    }
    return opening;
  }

  private async createFile(path: string): Promise<OpenFile> {
    // Close the least recently written idle files to stay within the limit. Files in use are at most the
    // number of slots, so one is idle unless several write() calls run at once (sink concurrency > 1).
    for (const [p, f] of this.files) {
      if (this.files.size + this.opening.size < this.options.max_open_files) break;
      if (f.pending === 0) this.retire(p, f, 'max_open_files');
    }
    const file = await OpenFile.create(path, this.fileOptions, Date.now());
    this.sealer.warm();
    this.files.set(path, file);
    this.opened.inc();
    this.openFiles.set(this.files.size);
    if (this.sweeper === undefined && this.sweepEveryMs !== undefined) {
      this.sweeper = setInterval(() => this.sweep(), this.sweepEveryMs);
      this.sweeper.unref();
    }
    return file;
  }

  private sweep(): void {
    const now = Date.now();
    const { max_file_age: maxAge, idle_timeout: idle } = this.options;
    for (const [path, file] of this.files) {
      if (maxAge > 0 && now - file.openedAt >= maxAge) this.retire(path, file, 'max_file_age');
      else if (idle > 0 && file.pending === 0 && now - file.lastWriteAt >= idle)
        this.retire(path, file, 'idle_timeout');
    }
    if (this.files.size === 0 && this.opening.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** Takes `file` out of use and closes it after whatever is queued on it; never throws. */
  private retire(path: string, file: OpenFile, reason: CloseReason): void {
    if (this.files.get(path) === file) this.files.delete(path);
    this.openFiles.set(this.files.size);
    const closing = file
      .exclusive(() => file.close((staged) => this.finish(staged, reason)))
      .then(
        (finalPath) => {
          if (finalPath === undefined) return;
          this.closed.inc();
          this.context.logger.debug({ file: finalPath, reason, bytes: file.committed }, 'file sink: file closed');
        },
        (error) => {
          this.context.metrics.error('close_failed');
          const retrying = !this.stopped;
          this.context.logger.error(
            { err: error, file: file.tempPath, reason, retrying },
            retrying
              ? 'file sink: could not close a file; it keeps its events and is tried again with backoff'
              : 'file sink: could not close a file',
          );
          if (retrying) this.retryClose(file.tempPath, reason);
          else this.closeFailures++;
        },
      );
    this.closing.add(closing);
    closing.finally(() => this.closing.delete(closing));
  }

  /**
   * Tries again, with capped and jittered backoff, to finish a staging file that failed to close, until it is
   * committed or the sink stops (then stop()'s recovery, or the next start's, takes it). The file stays marked
   * live meanwhile, so a recovery scan of another instance (a reload) leaves it to this loop.
   */
  private retryClose(tempPath: string, reason: CloseReason | 'recovered'): void {
    if (this.retrying.has(tempPath)) return;
    // Counted as a failure until finished: stop() then knows to recover it.
    this.closeFailures++;
    liveTempFiles.add(tempPath);
    const signal = this.retryAbort.signal;
    const loop = (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await sleep(backoffDelay(CLOSE_RETRY, attempt), signal);
        } catch {
          return;
        }
        this.closeRetries.inc();
        try {
          const kept = await finalizeStagingFile(tempPath, this.fileOptions.owner, (staged) =>
            this.finish(staged, reason),
          );
          this.closeFailures--;
          if (kept > 0) (reason === 'recovered' ? this.recovered : this.closed).inc();
          this.context.logger.info(
            { file: tempPath, reason, attempts: attempt + 1, bytes: kept },
            'file sink: finished a file that had failed to close',
          );
          return;
        } catch (error) {
          this.warnings.warn(
            'close-retry',
            { file: tempPath, attempt: attempt + 1, err: (error as Error).message },
            'file sink: a file that failed to close failed again; trying again with backoff',
          );
        }
      }
    })().finally(() => {
      liveTempFiles.delete(tempPath);
      this.retrying.delete(tempPath);
      this.pendingClose.set(this.retrying.size);
    });
    this.retrying.set(tempPath, loop);
    this.pendingClose.set(this.retrying.size);
  }
}

export const fileSink = defineSink({
  kind: 'sink',
  type: 'file',
  description:
    'Writes events to partitioned NDJSON, text or Parquet files (the master dataset); files appear complete, ' +
    "by rename, when they roll. Parquet is staged as NDJSON (fsync'd before the ack) and sealed when a file rolls.",
  options: fileSinkOptions,
  example: `sinks:
  master:                       # batch layer: immutable, partitioned, readable by Spark/Hive/DuckDB
    type: file
    inputs: [web_syslog, app_files]
    path: "data/master/dt=%Y-%m-%d/hour=%H/part.parquet"
    encoding: parquet             # or ndjson with path …/part.ndjson.gz
    compression: zstd
    schema:
      status: int64
      bytes: int64
      timestamp: { type: timestamp, unit: ms }
    schema_mode: relaxed          # fields not in the schema go to the _extra JSON column
    max_file_size: 128MiB
    idle_timeout: 30s`,
  defaultBatchTimeoutMs: 50,
  describeEndpoint: (options) => options.path,
  build: (options, context) => new FileSink(options, context),
});

/** The top-level `{{ field }}`s of a path template: always columns, so a partition's value is in its files too. */
function pathFields(path: string): string[] {
  const names: string[] = [];
  for (const m of path.matchAll(/\{\{\s*([^}\s]+)\s*\}\}/g)) {
    if (!m[1]!.includes('.') && !names.includes(m[1]!)) names.push(m[1]!);
  }
  return names;
}

/**
 * The file sink's staging, seal and recovery with another destination: the s3 sink is this with its staging
 * under data_dir and an S3 committer. `options` are parsed file sink options (`path` relative to `root`).
 */
export function stagedFileSink(options: FileSinkOptions, context: ComponentContext, seam: StagingSeam): FileSink {
  return new FileSink(options, context, seam);
}

export { fileSinkOptions };
