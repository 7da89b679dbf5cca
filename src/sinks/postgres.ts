import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Pool, PoolClient } from 'pg';
import { loadTlsClientOptions } from '../codecs/tls.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { FluxoError, RetryableError } from '../core/errors.ts';
import { lazyImport } from '../core/lazy-import.ts';
import { abortable, settledWithin } from '../core/retry.ts';
import { type Encoding, redactUrl, type SendResult, type SinkRequest } from '../core/sink/index.ts';
import { copyLine, describePgError, isRowError, type PgError, rowReason } from './postgres/errors.ts';
import { options, type PostgresSinkOptions } from './postgres/options.ts';
import { type ColumnSource, type CopyRows, copyRows, quoteIdent, quoteTable } from './postgres/rows.ts';

/** pg and pg-copy-streams load when a postgres sink connects, not when Fluxo starts (see lazyImport). */
const pgClient = lazyImport(() => import('pg'));
const pgCopyStreams = lazyImport(() => import('pg-copy-streams'));

/** A write's COPY rows, and whether it met rows already in the table (then it goes through the stage). */
interface PreparedRows extends CopyRows {
  conflicted: boolean;
}

/** The stage of each pooled connection: a temporary table made once per connection, emptied at each commit. */
const STAGE = 'fluxo_stage';

/**
 * Each write is one transaction on one pooled connection. Its first try COPYs the rows straight into the table;
 * when that meets a row already there (a write replayed after a crash or a lost answer), the write — and any
 * retry of it — goes through a temporary stage table instead: `COPY` into the stage, then `INSERT INTO target
 * SELECT … FROM stage ON CONFLICT (id) DO NOTHING` and `COMMIT`, which inserts only the rows not there yet. A
 * row PostgreSQL refuses (class 22/23) rolls the transaction back; the write is then split — around the COPY
 * line PostgreSQL names, else in halves — until the refused rows stand alone and are dead-lettered, while every
 * other part commits. A connection or server error retries what is left.
 */
export class PostgresSink implements Sink {
  readonly encoding: Encoding | undefined;
  private pool: Pool | undefined;
  private readonly staged = new WeakSet<PoolClient>();
  private readonly listened = new WeakSet<PoolClient>();
  private copyFrom: typeof import('pg-copy-streams').from | undefined;
  private readonly table: string;
  private readonly sources: ColumnSource[];
  private readonly copySql: string;
  private readonly directCopySql: string;
  private readonly insertSql: string;
  private readonly stageSql: string;
  private readonly shown: string;

  constructor(
    private readonly opts: PostgresSinkOptions,
    private readonly context: ComponentContext,
  ) {
    this.shown = `${redactUrl(opts.endpoint)} table ${opts.table}`;
    try {
      this.table = quoteTable(opts.table);
    } catch (error) {
      throw new FluxoError('FLUXO_SINK_INVALID_OPTIONS', `sink ${context.id}: table: ${(error as Error).message}`);
    }
    const jsonb = opts.mode === 'jsonb';
    // The kit encodes each event as JSON once (or reuses a disk buffer's lines): that is the jsonb value.
    this.encoding = jsonb ? { codec: 'ndjson' } : undefined;
    this.sources = [
      { column: opts.id_column, path: ['_id'] },
      ...Object.entries(opts.columns).map(([name, spec]) => ({
        column: name,
        path: (typeof spec === 'string' ? spec : spec.field).split('.'),
      })),
      ...(jsonb ? [{ column: opts.jsonb_column, path: [], wholeEvent: true }] : []),
    ];
    const list = this.sources.map((s) => quoteIdent(s.column)).join(', ');
    const format = opts.copy_format === 'csv' ? ' WITH (FORMAT csv)' : '';
    this.copySql = `COPY ${STAGE} (${list}) FROM STDIN${format}`;
    this.directCopySql = `COPY ${this.table} (${list}) FROM STDIN${format}`;
    this.insertSql =
      `INSERT INTO ${this.table} (${list}) SELECT ${list} FROM ${STAGE} ` +
      `ON CONFLICT (${quoteIdent(opts.id_column)}) DO NOTHING`;
    // The target's types, none of its constraints: the COPY checks values, the INSERT checks constraints.
    this.stageSql =
      `CREATE TEMP TABLE IF NOT EXISTS ${STAGE} ON COMMIT DELETE ROWS AS ` +
      `SELECT ${list} FROM ${this.table} WITH NO DATA`;
  }

  async connect(signal: AbortSignal): Promise<void> {
    if (this.pool === undefined) {
      const url = new URL(this.opts.endpoint);
      const ssl = loadTlsClientOptions(this.opts.tls, `sink ${this.context.id}`);
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
      const [{ default: pg }, copyStreams] = await Promise.all([pgClient(), pgCopyStreams()]);
      this.copyFrom = copyStreams.from;
      const pool = new pg.Pool({
        host: host || undefined,
        port: url.port === '' ? undefined : Number(url.port),
        database: database || undefined,
        user: this.opts.username ?? (url.username === '' ? undefined : decodeURIComponent(url.username)),
        password:
          (this.opts.password || undefined) ?? (url.password === '' ? undefined : decodeURIComponent(url.password)),
        // pg sends the host name as SNI itself (not an IP address); identity is checked against `host`.
        ssl,
        max: this.opts.pool_size,
        connectionTimeoutMillis: this.opts.connect_timeout,
        idleTimeoutMillis: 30_000,
        application_name: `fluxo ${this.context.id}`,
      });
      // An idle connection the server dropped (a restart) is taken out of the pool; the next write opens another.
      pool.on('error', (error) => {
        this.context.logger.debug({ sink: this.context.id, err: describePgError(error) }, 'postgres connection lost');
      });
      this.pool = pool;
    }
    const client = await this.acquire(signal);
    try {
      // A server that stops answering mid-connect must not hold a stop: the abort ends the wait and the
      // connection (released broken below).
      await abortable(this.checkTable(client), signal);
      client.release();
    } catch (error) {
      client.release(true);
      if (signal.aborted) throw signal.reason;
      if (error instanceof RetryableError) throw error;
      // The runner retries connect() with backoff and logs this: a missing table or column is named.
      const hint = (error as { code?: string }).code === '42P01' ? ' (create it, or set create_table: true)' : '';
      throw new RetryableError(`${this.shown}: ${describePgError(error)}${hint}`, { cause: error });
    }
  }

  /** The table exists, has the columns written, and a unique key on the id column (which ON CONFLICT needs). */
  private async checkTable(client: PoolClient): Promise<void> {
    if (this.opts.create_table) await client.query(this.createSql());
    const list = this.sources.map((s) => quoteIdent(s.column)).join(', ');
    await client.query(`SELECT ${list} FROM ${this.table} WHERE false`);
    const unique = await client.query(
      `SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnatts = 1 AND a.attname = $2`,
      [this.table, this.opts.id_column],
    );
    if (unique.rowCount === 0) {
      throw new RetryableError(
        `${this.shown}: ${this.opts.id_column} has no primary key or unique index, which ON CONFLICT needs ` +
          `(ALTER TABLE ${this.table} ADD PRIMARY KEY (${quoteIdent(this.opts.id_column)}))`,
      );
    }
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    const client = await this.acquire(signal);
    try {
      await abortable(client.query('SELECT 1'), signal);
      client.release();
    } catch (error) {
      client.release(true);
      throw error;
    }
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    const prepared = request.memo(() => this.prepare(request));
    const rejected = [...prepared.rejected];
    const first: number[] = [];
    for (let i = 0; i < prepared.rows.length; i++) if (prepared.rows[i] !== undefined) first.push(i);
    if (first.length === 0) return { rejected };
    const pending: number[][] = [first];
    // The first try of a write COPYs straight into the table, twice as fast on the server as the stage; a
    // key conflict there (a replay, or the same event twice) sends that write, and its retries, through the stage.
    let direct = request.attempt === 0 && !prepared.conflicted;
    let delivered = 0;
    let client: PoolClient | undefined;
    let released = false;
    const release = (destroy: boolean) => {
      if (client === undefined || released) return;
      released = true;
      client.release(destroy);
    };
    // An abort (shutdown, the attempt's timeout) closes the connection: the server rolls the transaction back.
    const onAbort = () => release(true);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      client = await this.acquire(signal);
      while (pending.length > 0) {
        const part = pending.shift()!;
        const viaStage = !direct;
        direct = false;
        try {
          await abortable(this.writePart(client, part, prepared, viaStage), signal);
          delivered += part.length;
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          if (!isRowError(error)) {
            release(true);
            const retryable = new RetryableError(`${this.shown}: ${describePgError(error)}`, { cause: error });
            if (delivered === 0 && rejected.length === 0) throw retryable;
            return { rejected, retry: [part, ...pending].flat(), error: retryable };
          }
          if (!viaStage && (error as PgError).code === '23505') {
            prepared.conflicted = true;
            pending.unshift(part);
            continue;
          }
          if (part.length === 1) {
            rejected.push({ index: part[0]!, reason: rowReason(error) });
            continue;
          }
          // The row the COPY names is tried alone (a row refused once is not always bad: a trigger, a lock);
          // without a line, halves.
          const line = copyLine(error);
          if (line !== undefined && line >= 1 && line <= part.length) {
            const pieces = [part.slice(0, line - 1), part.slice(line - 1, line), part.slice(line)];
            pending.unshift(...pieces.filter((piece) => piece.length > 0));
          } else {
            const half = part.length >> 1;
            pending.unshift(part.slice(0, half), part.slice(half));
          }
        }
      }
      release(false);
    } catch (error) {
      release(true);
      if (signal.aborted) throw signal.reason;
      if (error instanceof RetryableError) throw error;
      throw new RetryableError(`${this.shown}: ${describePgError(error)}`, { cause: error });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return rejected.length > 0 ? { rejected } : undefined;
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool === undefined) return;
    // The runner settled every send before stop(): a connection still busy belongs to an aborted attempt.
    await settledWithin(pool.end(), 1_000);
  }

  /** A pooled connection; one that arrives after an abort goes straight back. */
  private async acquire(signal: AbortSignal): Promise<PoolClient> {
    const pool = this.pool;
    if (pool === undefined) throw new RetryableError(`${this.shown}: not connected`);
    if (signal.aborted) throw signal.reason;
    const connecting = pool.connect();
    return new Promise<PoolClient>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      connecting.then(
        (client) => {
          signal.removeEventListener('abort', onAbort);
          if (!this.listened.has(client)) {
            // A checked-out connection that breaks between queries emits 'error'; unheard it would crash the
            // process. The query in flight (if any) fails with it, and the connection is released as broken.
            this.listened.add(client);
            client.on('error', (error) => {
              this.context.logger.debug(
                { sink: this.context.id, err: describePgError(error) },
                'postgres connection error',
              );
            });
          }
          if (signal.aborted) {
            client.release();
            return;
          }
          resolve(client);
        },
        (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(new RetryableError(`${this.shown}: ${describePgError(error)}`, { cause: error }));
        },
      );
    });
  }

  /**
   * One transaction: COPY the rows at `part` into the table; or, `viaStage`, into the stage, then the rows whose
   * id is not in the table yet into the table; then commit.
   */
  private async writePart(
    client: PoolClient,
    part: readonly number[],
    prepared: PreparedRows,
    viaStage: boolean,
  ): Promise<void> {
    if (viaStage && !this.staged.has(client)) {
      await client.query(this.stageSql);
      this.staged.add(client);
    }
    let body = '';
    for (const i of part) body += prepared.rows[i]!;
    if (!viaStage) {
      // A COPY on its own is a transaction (autocommit): all its rows or none, in one round trip instead of
      // three with BEGIN and COMMIT around it.
      await pipeline(Readable.from([Buffer.from(body)]), client.query(this.copyFrom!(this.directCopySql)));
      return;
    }
    await client.query('BEGIN');
    try {
      await pipeline(Readable.from([Buffer.from(body)]), client.query(this.copyFrom!(this.copySql)));
      // One round trip: after an error in the INSERT the COMMIT of the same string is not run.
      await client.query(`${this.insertSql}; COMMIT`);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  }

  private prepare(request: SinkRequest): PreparedRows {
    let json: ((i: number) => string) | undefined;
    if (this.encoding !== undefined) {
      const lines = request.lines();
      json = (i) => lines.bytes.toString('utf8', lines.offsets[i]!, lines.offsets[i + 1]! - 1);
    }
    return { ...copyRows(request.events, this.sources, this.opts.copy_format, json), conflicted: false };
  }

  private createSql(): string {
    const defs = [`${quoteIdent(this.opts.id_column)} text PRIMARY KEY`];
    for (const [name, spec] of Object.entries(this.opts.columns)) {
      defs.push(`${quoteIdent(name)} ${typeof spec === 'string' ? 'text' : spec.type}`);
    }
    if (this.opts.mode === 'jsonb') defs.push(`${quoteIdent(this.opts.jsonb_column)} jsonb`);
    return `CREATE TABLE IF NOT EXISTS ${this.table} (${defs.join(', ')})`;
  }
}

export const postgresSink = defineSink({
  kind: 'sink',
  type: 'postgres',
  description:
    'Inserts events into a PostgreSQL table with COPY; a replayed write goes through a stage and INSERT … ON CONFLICT DO NOTHING on `_id`, adding no duplicate.',
  options,
  example: `sinks:
  serving:
    type: postgres
    inputs: [web_syslog]
    endpoint: postgres://fluxo@127.0.0.1:5432/logs
    password: "\${PGPASSWORD}"
    table: public.access_log
    create_table: true
    columns:
      ts: { field: timestamp, type: timestamptz }
      host: host
      status: { field: status, type: integer }
      message: message`,
  defaultBatchTimeoutMs: 50,
  describeEndpoint: (o) => `${o.table} at ${redactUrl(o.endpoint)}`,
  build: (o, ctx) => new PostgresSink(o, ctx),
});
