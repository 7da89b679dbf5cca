import type { ComponentContext } from '../../core/component.ts';
import { RateLimitedWarnings } from '../../core/rate-limited-warnings.ts';
import { backoffDelay, type RetryPolicy, sleep } from '../../core/retry.ts';
import type { ObjectStore } from './objects.ts';

/** A sealed staging file as the file sink's staging hands it to a committer (its SealedFile). */
export interface SealedObjectFile {
  readonly localPath: string;
  /** Deterministic relative name: the rendered key + staging id + first..last record + extension. */
  readonly name: string;
  readonly bytes: number;
  readonly events: number;
  readonly format?: string;
  readonly gzip?: boolean;
}

const CONTENT_TYPES: Record<string, string> = {
  parquet: 'application/vnd.apache.parquet',
  ndjson: 'application/x-ndjson',
  text: 'text/plain; charset=utf-8',
};

/** Uploads retry for as long as the store is unreachable (at least every 5 s, so a store back is soon used). */
const UPLOAD_RETRY: RetryPolicy = { initialBackoffMs: 200, maxBackoffMs: 5_000, maxAttempts: 0 };

/**
 * Commits a sealed file by uploading it under its name as the object key, once (ObjectStore.putFileOnce): a
 * key already there with this content is success, so a commit redone after a crash adds no second object.
 * Retries with backoff until the store confirms it; the staging keeps the file until then. At shutdown the
 * retries go on for `shutdownTimeoutMs`, then stop: the staged file is uploaded at the next start.
 */
export class S3Committer {
  private readonly shutdown = new AbortController();
  private readonly warnings: RateLimitedWarnings;
  private readonly created;
  private readonly existed;
  private readonly failures;

  constructor(
    private readonly store: ObjectStore,
    private readonly context: ComponentContext,
    private readonly shutdownTimeoutMs: number,
    /** Told the bytes of a sealed file that sits beside its staging file until uploaded (Parquet). */
    private readonly onSealed: (bytes: number) => void = () => {},
  ) {
    this.warnings = new RateLimitedWarnings(context.logger, 10_000);
    const m = context.metrics;
    this.created = m.counter('fluxo_s3_sink_objects_uploaded_total', 'Objects the s3 sink uploaded.');
    this.existed = m.counter(
      'fluxo_s3_sink_objects_existing_total',
      'Sealed files the s3 sink found already uploaded (a commit redone after a crash): not uploaded again.',
    );
    this.failures = m.counter('fluxo_s3_sink_upload_failures_total', 'Failed upload attempts (each is retried).');
  }

  async commit(file: SealedObjectFile, signal: AbortSignal): Promise<void> {
    const both = AbortSignal.any([signal, this.shutdown.signal]);
    const format = file.format ?? 'ndjson';
    // NDJSON uploads the staging file itself; a Parquet file is a second file on disk until it is uploaded.
    if (format === 'parquet') this.onSealed(file.bytes);
    const headers = {
      contentType: file.gzip ? 'application/gzip' : (CONTENT_TYPES[format] ?? 'application/octet-stream'),
    };
    for (let attempt = 0; ; attempt++) {
      both.throwIfAborted();
      try {
        const outcome = await this.store.putFileOnce(file.name, file.localPath, both, headers);
        (outcome === 'created' ? this.created : this.existed).inc();
        this.context.logger.debug(
          { sink: this.context.id, key: file.name, bytes: file.bytes, events: file.events, outcome },
          's3 sink: object committed',
        );
        return;
      } catch (error) {
        if (both.aborted) throw error;
        this.failures.inc();
        const delay = Math.max(
          backoffDelay(UPLOAD_RETRY, attempt),
          (error as { retryAfterMs?: number }).retryAfterMs ?? 0,
        );
        this.warnings.warn(
          'upload',
          {
            sink: this.context.id,
            key: file.name,
            attempt: attempt + 1,
            retry_in_ms: delay,
            err: (error as Error).message,
          },
          's3 sink: upload failed, retrying; the staged file is kept until it is uploaded',
        );
        await sleep(delay, both);
      }
    }
  }

  /** Runs `stop` (the staging's: it commits what is open); uploads still retrying after the timeout stop. */
  async stopping(stop: () => Promise<void>): Promise<void> {
    const timer = setTimeout(
      () => this.shutdown.abort(new Error('s3 sink: shutdown upload timeout')),
      this.shutdownTimeoutMs,
    );
    try {
      await stop();
    } finally {
      clearTimeout(timer);
    }
  }
}
