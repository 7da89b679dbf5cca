import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { FluxoError } from '../../core/errors.ts';
import type { ParquetFileOptions, WrittenParquet } from './parquet-writer.ts';

/*
 * Parquet seals run in one worker thread per process: encoding a row group takes seconds of synchronous
 * CPU, which on the main thread would stall every source and sink. The thread starts with the first seal,
 * stays while seals are queued, is unref'd when idle (it never keeps the process alive) and ends after
 * IDLE_MS without work. If it dies mid-seal, that seal fails with FLUXO_PARQUET_SEAL_WORKER_EXITED (the
 * sealer retries it in a new thread) and nothing else is affected: the staging file is only read.
 */

export interface SealRequest {
  readonly id: number;
  readonly stagingPath: string;
  readonly outPath: string;
  readonly options: ParquetFileOptions;
}

export interface SealReply {
  readonly id: number;
  readonly written?: WrittenParquet;
  readonly error?: { message: string; code?: string; stack?: string };
}

interface Job {
  readonly request: SealRequest;
  resolve(written: WrittenParquet): void;
  reject(error: Error): void;
}

/**
 * How long an idle thread is kept for the next seal: a new one costs tens of ms from dist/, seconds from
 * src/ under tsx on a loaded machine (long enough to eat a shutdown's upload timeout).
 */
const IDLE_MS = 30_000;

/** The worker's entry: compiled JavaScript beside this file in dist/, or the TypeScript source under tsx. */
function startWorker(): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  if (!fromSource) return new Worker(new URL('./seal-worker.js', import.meta.url));
  // bin/fluxo.js registers tsx in the main thread only; a worker needs it registered in its own loader.
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./seal-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true });
}

export class SealThread extends EventEmitter<{ sealing: [SealRequest] }> {
  private worker: Worker | undefined;
  private readonly queue: Job[] = [];
  private current: Job | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** Threads started so far (a new one after each crash). */
  started = 0;

  constructor(private readonly idleMs = IDLE_MS) {
    super();
  }

  /** Whether a thread is up (sealing, or idle and not yet ended). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Writes `stagingPath` as Parquet at `outPath`, fsync'd, in the worker thread. */
  seal(stagingPath: string, outPath: string, options: ParquetFileOptions): Promise<WrittenParquet> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request: { id: this.nextId++, stagingPath, outPath, options }, resolve, reject });
      this.pump();
    });
  }

  /**
   * Starts the thread ahead of the first seal (a Parquet sink calls it when built), so that seal does not
   * wait for the thread to load; unref'd and ended after the idle time like a thread that has sealed.
   */
  warm(): void {
    if (this.worker !== undefined) return;
    this.spawn();
    if (this.current === undefined) this.idle();
  }

  /** Ends the thread now; a seal in progress fails (and is retried by its sealer). */
  async terminate(): Promise<void> {
    await this.worker?.terminate();
  }

  private pump(): void {
    if (this.current !== undefined) return;
    const job = this.queue.shift();
    if (job === undefined) {
      this.idle();
      return;
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const worker = this.worker ?? this.spawn();
    worker.ref();
    this.current = job;
    worker.postMessage(job.request);
    this.emit('sealing', job.request);
  }

  private idle(): void {
    const worker = this.worker;
    if (worker === undefined) return;
    worker.unref();
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.worker === worker && this.current === undefined) void this.terminate();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  private spawn(): Worker {
    const worker = startWorker();
    this.worker = worker;
    this.started++;
    let failure: Error | undefined;
    worker.on('message', (reply: SealReply) => {
      const job = this.current;
      if (job === undefined || job.request.id !== reply.id) return;
      this.current = undefined;
      if (reply.written !== undefined) job.resolve(reply.written);
      else job.reject(rebuild(reply.error));
      this.pump();
    });
    worker.on('error', (error) => {
      failure = error;
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined;
      const job = this.current;
      this.current = undefined;
      if (job !== undefined) {
        const why = failure === undefined ? `exit code ${code}` : failure.message;
        job.reject(
          new FluxoError(
            'FLUXO_PARQUET_SEAL_WORKER_EXITED',
            `the Parquet seal thread ended while sealing ${job.request.stagingPath} (${why}); the staging file is kept`,
            { cause: failure },
          ),
        );
      }
      this.pump();
    });
    return worker;
  }
}

/** An error thrown in the worker, as an Error with its message, code and stack. */
function rebuild(error: SealReply['error']): Error {
  const e = new Error(error?.message ?? 'the Parquet seal failed') as NodeJS.ErrnoException;
  if (error?.code !== undefined) e.code = error.code;
  if (error?.stack !== undefined) e.stack = error.stack;
  return e;
}

/** The process's seal thread, shared by every file and s3 sink. */
export const sealThread = new SealThread();
