import { mkdir, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { PathTemplate, templateString } from '../codecs/path-template.ts';
import { type ComponentContext, defineSink, type Sink, type SinkDefinition } from '../core/component.ts';
import type { Encoding, SendResult, SinkRequest } from '../core/sink/index.ts';
import { duration, size } from '../core/units.ts';
import { S3Committer, type SealedObjectFile } from './s3/committer.ts';
import {
  checkObjectStoreOptions,
  ObjectStore,
  type ObjectStoreOptions,
  objectStoreOptionsShape,
} from './s3/objects.ts';

/**
 * What the s3 sink takes from the file sink: its options, and its staging → seal → commit machinery built with
 * another committer. The registry hands it in (`s3Sink(fileStaging)`), because components never import each
 * other; the s3 sink is the file sink's staging under `<data_dir>/sinks/<id>/` plus an S3 committer.
 */
export interface FileStaging {
  /** The file sink's option fields (`path`, `encoding`, `compression`, schema and roll options…). */
  readonly shape: Readonly<Record<string, z.ZodType>>;
  /** The file sink's whole schema, for its cross-field checks. */
  readonly schema: z.ZodType;
  build(options: never, context: ComponentContext, seam: StagingSeamLike): StagingSink;
}

interface StagingSeamLike {
  readonly root: string;
  readonly committer: { commit(file: SealedObjectFile, signal: AbortSignal): Promise<void> };
  readonly metricPrefix?: string;
  readonly recoverInBackground?: boolean;
}

/** The file sink as the s3 sink uses it: a Sink that says when a staging file was committed. */
interface StagingSink extends Sink {
  on(event: 'file-closed' | 'file-recovered', listener: () => void): unknown;
}

/** File sink options the s3 sink sets itself: the staging path is its `key`, and staging is always fsync'd. */
const NOT_FROM_FILE = new Set(['path', 'sync']);

const s3Only = {
  key: templateString().describe(
    'The object key: a template with strftime fields from the event `timestamp` and event fields, hive style, e.g. ' +
      '`logs/dt=%Y-%m-%d/hour=%H/part.parquet`. Each object gets a deterministic ' +
      '`-<staging id>-<first>-<last>` suffix before its extensions (Parquet), from what it holds, so an upload ' +
      'redone after a crash writes the same key.',
  ),
  max_staged_size: size()
    .default(1024 * 1024 * 1024)
    .describe(
      'Most bytes staged on local disk (`<data_dir>/sinks/<id>/`) and not yet uploaded. Past it writes wait, so ' +
        'the source is pushed back only once the store has been unreachable for that long.',
    ),
  stale_upload_age: duration()
    .default(3_600_000)
    .describe(
      'At start, multipart uploads under the static prefix of `key` started longer ago than this are aborted: ' +
        'the leftovers of a crashed run (their parts are billed until aborted).',
    ),
  shutdown_upload_timeout: duration()
    .default(10_000)
    .describe(
      'At shutdown, how long uploads still retrying may go on; then they stop, and their staged files are ' +
        'uploaded at the next start (nothing acknowledged is lost).',
    ),
};

/** The s3 sink's definition, built from the file sink's staging. */
export function s3Sink(staging: FileStaging): SinkDefinition {
  const fileShape = Object.fromEntries(Object.entries(staging.shape).filter(([name]) => !NOT_FROM_FILE.has(name)));
  const options = z.object({ ...s3Only, ...fileShape, ...objectStoreOptionsShape }).superRefine((o, ctx) => {
    checkObjectStoreOptions(o as unknown as ObjectStoreOptions, ctx);
    if (isAbsolute(o.key)) {
      ctx.addIssue({ code: 'custom', path: ['key'], message: 'an object key is relative: drop the leading /' });
    }
    // The file sink's own cross-field checks (encoding and compression, schema and schema_mode).
    const file = staging.schema.safeParse(fileOptionsOf(o as Record<string, unknown>));
    if (!file.success) {
      for (const issue of file.error.issues) {
        if (issue.code !== 'custom') continue;
        const path = issue.path.map((p) => (p === 'path' ? 'key' : p));
        ctx.addIssue({ code: 'custom', path: path as (string | number)[], message: issue.message });
      }
    }
  });
  return defineSink({
    kind: 'sink',
    type: 's3',
    description:
      'Writes events to S3 or an S3-compatible store as partitioned Parquet or NDJSON objects, staged on local ' +
      'disk (fsync’d before the ack) and uploaded once sealed, under deterministic keys: effectively once per object.',
    options,
    example: `sinks:
  master:
    type: s3
    inputs: [web_syslog, app_files]
    bucket: master-dataset
    region: eu-west-1
    key: "logs/dt=%Y-%m-%d/hour=%H/part.parquet"
    encoding: parquet
    compression: zstd
    max_file_size: 128MiB       # per object
    max_file_age: 5m
    max_staged_size: 4GiB       # local disk used while the store is unreachable
    # endpoint: http://127.0.0.1:9000, force_path_style: true   for MinIO, Ceph, Swift s3api`,
    defaultBatchTimeoutMs: 50,
    describeEndpoint: (o) =>
      `s3://${String(o.bucket)}/${String(o.key)}${o.endpoint ? ` at ${String(o.endpoint)}` : ''}`,
    build: (o, context) => new S3Sink(o as unknown as S3SinkOptions, context, staging),
  });
}

type S3SinkOptions = z.infer<z.ZodObject<typeof s3Only>> & ObjectStoreOptions & Record<string, unknown>;

/** The file sink's options within the s3 sink's: its own fields, `path` = `key`, always fsync'd. */
function fileOptionsOf(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(o)) {
    if (!(name in s3Only) && !(name in objectStoreOptionsShape)) out[name] = value;
  }
  out.path = o.key;
  out.sync = true;
  return out;
}

/**
 * The file sink's staging under `<data_dir>/sinks/<id>/` plus an S3 committer. A write is acknowledged once its
 * lines are fsync'd into a staging file; a staging file that rolls (size, age, idle, shutdown) is sealed
 * (Parquet, or the NDJSON as it is) and uploaded under its deterministic key, and removed only once the store
 * confirmed it. Uploads retry with backoff for as long as the store is unreachable, while writes go on into new
 * staging files up to `max_staged_size`.
 */
export class S3Sink implements Sink {
  readonly encoding: Encoding | undefined;
  private readonly store: ObjectStore;
  private readonly staged: StagingSink;
  private readonly committer: S3Committer;
  private readonly root: string;
  private readonly prefix: string;
  /** Bytes under root at the last scan, plus what writes added since. */
  private stagedBytes = 0;
  private addedSinceScan = 0;
  private scanning: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  private blockedSince: number | undefined;
  /** The start-up look for stale multipart uploads, run in the background; stop() aborts it. */
  private staleSweep: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private readonly stagedGauge;

  constructor(
    private readonly options: S3SinkOptions,
    private readonly context: ComponentContext,
    staging: FileStaging,
  ) {
    const who = `s3 sink ${context.id}`;
    this.store = new ObjectStore(options, context.logger, who);
    this.root = join(context.dataDir, 'sinks', context.id);
    this.prefix = new PathTemplate(options.key).staticDir;
    // A sealed file counts toward max_staged_size at once, not only at the next measure of the staging.
    this.committer = new S3Committer(this.store, context, options.shutdown_upload_timeout, (bytes) => {
      this.addedSinceScan += bytes;
    });
    const fileOptions = staging.schema.parse(fileOptionsOf(options));
    this.staged = staging.build(fileOptions as never, context, {
      root: this.root,
      committer: this.committer,
      metricPrefix: 's3_sink',
      recoverInBackground: true,
    });
    this.encoding = this.staged.encoding;
    this.staged.on('file-closed', () => this.rescan());
    this.staged.on('file-recovered', () => this.rescan());
    this.stagedGauge = context.metrics.gauge(
      'fluxo_s3_sink_staged_bytes',
      'Bytes the s3 sink holds on local disk that are not uploaded yet.',
    );
  }

  /**
   * Returns once the staging is measured: what a previous run staged counts toward max_staged_size at once,
   * while its files are sealed and uploaded in the background (retrying while the store is down), so a store
   * that is down at start holds back nothing but the uploads. Stale multipart uploads of a crashed run are
   * aborted in the background too (best effort).
   */
  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await this.store.open();
    this.staleSweep = this.abortStaleUploads();
    await this.staged.start?.();
    await this.rescan();
    if (this.stagedBytes > 0) {
      this.context.logger.info(
        { sink: this.context.id, staged_bytes: this.stagedBytes },
        's3 sink: staged files of a previous run are uploaded in the background',
      );
    }
  }

  private async abortStaleUploads(): Promise<void> {
    try {
      const aborted = await this.store.abortStaleUploads(
        this.prefix,
        this.options.stale_upload_age,
        AbortSignal.any([this.stopping.signal, AbortSignal.timeout(30_000)]),
      );
      if (aborted > 0) {
        this.context.logger.info({ sink: this.context.id, aborted }, 's3 sink: aborted stale multipart uploads');
      }
    } catch (error) {
      if (this.stopping.signal.aborted) return;
      this.context.logger.warn(
        { sink: this.context.id, err: (error as Error).message },
        's3 sink: could not look for stale multipart uploads; trying again at the next start',
      );
    }
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    await this.store.check(signal);
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    await this.room(signal);
    const result = await this.staged.send(request, signal);
    // The bytes the staging took (the NDJSON lines appended), not the source's estimate of the batch, which
    // some sources leave at 0; a part answered as to be retried is overcounted until the next measure.
    this.addedSinceScan += request.lines().bytes.length;
    return result;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    try {
      await this.staleSweep;
      await this.committer.stopping(() => this.staged.stop());
    } finally {
      for (const w of this.waiters.splice(0)) w();
      this.store.close();
    }
  }

  /** Waits while the staging holds max_staged_size or more: the store is behind, the source must slow down. */
  private async room(signal: AbortSignal): Promise<void> {
    const max = this.options.max_staged_size;
    while (this.stagedBytes + this.addedSinceScan >= max) {
      signal.throwIfAborted();
      if (this.blockedSince === undefined) {
        this.blockedSince = Date.now();
        this.context.logger.warn(
          { sink: this.context.id, staged_bytes: this.stagedBytes + this.addedSinceScan, max_staged_size: max },
          's3 sink: staging is full; writes wait for uploads (the store is slow or unreachable)',
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 1_000);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
        this.waiters.push(done);
      });
      await this.rescan();
    }
    if (this.blockedSince !== undefined) {
      this.context.logger.info(
        { sink: this.context.id, waited_ms: Date.now() - this.blockedSince },
        's3 sink: staging has room again',
      );
      this.blockedSince = undefined;
    }
  }

  /** Measures the staging on disk again (one scan at a time) and wakes the writes that wait for room. */
  private rescan(): Promise<void> {
    this.scanning ??= (async () => {
      const added = this.addedSinceScan;
      try {
        this.stagedBytes = await bytesUnder(this.root);
        this.addedSinceScan -= added;
        this.stagedGauge.set(this.stagedBytes + this.addedSinceScan);
      } finally {
        this.scanning = undefined;
        for (const w of this.waiters.splice(0)) w();
      }
    })();
    return this.scanning;
  }
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try {
    names = await readdir(dir, { recursive: true });
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      const s = await stat(join(dir, name));
      if (s.isFile()) total += s.size;
    } catch {
      // committed and removed meanwhile
    }
  }
  return total;
}
