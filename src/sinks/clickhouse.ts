import { createHash } from 'node:crypto';
import type { Agent, request as undiciRequest } from 'undici';
import { z } from 'zod';
import { loadTlsClientOptions, tlsClientOption } from '../codecs/tls.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { FluxoError, RetryableError } from '../core/errors.ts';
import { lazyImport } from '../core/lazy-import.ts';
import {
  type Compression,
  compress,
  compressionOption,
  contentEncoding,
  type Encoding,
  pickLines,
  redactUrl,
  type SendResult,
  type SinkRequest,
} from '../core/sink/index.ts';
import { duration, urlString } from '../core/units.ts';
import {
  type ClickHouseAnswer,
  errorRow,
  FEATURE_QUERY,
  isAuthFailure,
  isRowError,
  quoteName,
  quoteString,
  readAnswer,
  readFeatures,
  type ServerFeatures,
} from './clickhouse/server.ts';

const options = z.object({
  endpoint: urlString(['http', 'https']).describe(
    'The HTTP interface, `http://host:8123` (or `https://host:8443`). A user and password in the URL work, but ' +
      '`username`/`password` keep them out of logs.',
  ),
  username: z.string().min(1).default('default').describe('The ClickHouse user.'),
  password: z.string().optional().describe('Its password; use `${CLICKHOUSE_PASSWORD}` to keep it out of the file.'),
  tls: tlsClientOption(),
  database: z.string().min(1).default('default').describe('The database of `table`.'),
  table: z
    .string()
    .min(1)
    .describe(
      'The target table. For exactly-once rows on any server version use `ENGINE = ReplacingMergeTree ORDER BY ' +
        '_id` (and read with `FINAL`): a replayed row with the same `_id` collapses into one.',
    ),
  compression: compressionOption(['gzip', 'none'], { default: 'gzip' }),
  skip_unknown_fields: z
    .boolean()
    .default(true)
    .describe(
      'Ignore event fields the table has no column for (`input_format_skip_unknown_fields`); off: a row with ' +
        'one is dead-lettered.',
    ),
  date_time_best_effort: z
    .boolean()
    .default(true)
    .describe(
      'Parse DateTime columns from ISO 8601 and other common forms, as Fluxo writes `timestamp` ' +
        '(`date_time_input_format=best_effort`); off: only `YYYY-MM-DD hh:mm:ss` and epoch seconds.',
    ),
  deduplication_token: z
    .boolean()
    .default(true)
    .describe(
      'Send `insert_deduplication_token` (a hash of the write’s `_id`s) where the server has it (22.2+): a ' +
        'retried write is dropped by a table that deduplicates inserts (Replicated*, or ' +
        '`non_replicated_deduplication_window`). Older servers: detected at connect and not sent.',
    ),
  async_insert: z
    .boolean()
    .default(false)
    .describe(
      'Let the server buffer small inserts (`async_insert=1`), with `wait_for_async_insert=1` so a write is ' +
        'acknowledged only once flushed. A server without it (before 21.11) gets ordinary inserts (logged).',
    ),
  connect_timeout: duration().default(5_000).describe('How long to wait for a connection (and its TLS).'),
  create_table: z
    .boolean()
    .default(false)
    .describe(
      'Create the table at start when it does not exist, in the documented layout: `_id String` first, then ' +
        'each of `columns`, `ENGINE = ReplacingMergeTree ORDER BY _id`. A server without `DateTime64` (before ' +
        '20.1, e.g. 18.16) gets `DateTime` in its place (seconds), with a warning.',
    ),
  columns: z
    .record(z.string().min(1), z.string().min(1))
    .default({ timestamp: 'DateTime64(3)', host: 'String', message: 'String' })
    .describe(
      'With `create_table`: the columns besides `_id`, `{ name: ClickHouse type }`. Rows are JSONEachRow, so a ' +
        'column is filled from the top-level event field of its name (a missing one gets the type’s default).',
    ),
  partition_by: z
    .string()
    .min(1)
    .optional()
    .describe(
      'With `create_table`: a `PARTITION BY` expression, e.g. `toYYYYMMDD(timestamp)` (rows of a replay land in ' +
        'the partition of their own timestamp, so FINAL still collapses them). Absent: one partition.',
    ),
});

export type ClickHouseSinkOptions = z.infer<typeof options>;

/** undici loads when a clickhouse sink connects, not when Fluxo starts (see lazyImport). */
const undici = lazyImport(() => import('undici'));

/**
 * Inserts each write as `JSONEachRow` over the HTTP interface, the kit's encoded and gzip-compressed body as it
 * is (a retry sends the same bytes). ClickHouse accepts or refuses an insert as a whole; when it refuses one for
 * a row (a parse or type error) the write is split — around the row the error names, else in halves — until the
 * refused rows stand alone and are dead-lettered, the rest inserted. Rows are not skipped with
 * `input_format_allow_errors_num`: the server would drop them without saying which.
 *
 * Plain HTTP through undici rather than @clickhouse/client: the client (1.23) talks to 18.16, but reads none of
 * its error answers (`Code: 27, e.displayText() = …`) into a code, which the split needs, and compresses
 * each attempt itself.
 */
export class ClickHouseSink implements Sink {
  readonly encoding: Encoding = { codec: 'ndjson' };
  readonly compression: Compression;
  private agent: Agent | undefined;
  private request: typeof undiciRequest | undefined;
  private features: ServerFeatures | undefined;
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly insert: string;
  private readonly shown: string;
  private readonly user: string;

  constructor(
    private readonly opts: ClickHouseSinkOptions,
    private readonly context: ComponentContext,
  ) {
    this.compression = opts.compression;
    this.shown = `${redactUrl(opts.endpoint)} table ${opts.database}.${opts.table}`;
    const url = new URL(opts.endpoint);
    if (opts.tls?.enabled && url.protocol === 'http:') {
      throw new FluxoError(
        'FLUXO_SINK_INVALID_OPTIONS',
        `sink ${context.id}: tls is set but endpoint ${redactUrl(opts.endpoint)} is http://; use https://`,
      );
    }
    const user = url.username === '' ? opts.username : decodeURIComponent(url.username);
    this.user = user;
    const password = opts.password ?? (url.password === '' ? '' : decodeURIComponent(url.password));
    url.username = '';
    url.password = '';
    url.search = '';
    this.base = url.toString().replace(/\/?$/, '/');
    this.headers = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
    this.insert = `INSERT INTO ${quoteName(opts.database)}.${quoteName(opts.table)} FORMAT JSONEachRow`;
  }

  async connect(signal: AbortSignal): Promise<void> {
    if (this.agent === undefined) {
      const { Agent, request } = await undici();
      this.request = request;
      const tls = loadTlsClientOptions(
        this.base.startsWith('https:') ? (this.opts.tls ?? { enabled: true }) : undefined,
        `sink ${this.context.id}`,
      );
      this.agent = new Agent({ connectTimeout: this.opts.connect_timeout, connect: tls ?? {} });
    }
    const features = readFeatures(await this.query(FEATURE_QUERY, signal));
    if (this.opts.create_table) await this.createTable(features.version, signal);
    const engine = await this.query(
      `SELECT engine FROM system.tables WHERE database = ${quoteString(this.opts.database)} AND name = ` +
        `${quoteString(this.opts.table)} FORMAT TabSeparated`,
      signal,
    );
    if (engine.trim() === '') {
      throw new RetryableError(
        `${this.shown}: the table does not exist; create it, e.g. CREATE TABLE ${this.opts.database}.${this.opts.table} ` +
          '(_id String, timestamp DateTime, message String) ENGINE = ReplacingMergeTree ORDER BY _id, or set ' +
          'create_table: true',
      );
    }
    if (this.features === undefined) {
      const missing = [
        features.deduplicationToken ? undefined : 'insert_deduplication_token',
        features.asyncInsert ? undefined : 'async_insert',
      ].filter((x) => x !== undefined);
      this.context.logger.info(
        { sink: this.context.id, version: features.version, engine: engine.trim(), missing },
        'clickhouse server features',
      );
      if (this.opts.async_insert && !features.asyncInsert) {
        this.context.logger.warn(
          { sink: this.context.id, version: features.version },
          'async_insert is not supported by this server: inserting synchronously',
        );
      }
      if (!/Replacing|Collapsing|Replicated/.test(engine)) {
        this.context.logger.warn(
          { sink: this.context.id, engine: engine.trim() },
          'the table does not deduplicate: a retried or replayed write can add rows twice (use ReplacingMergeTree ORDER BY _id)',
        );
      }
    }
    this.features = features;
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    await this.query('SELECT 1', signal);
  }

  async send(request: SinkRequest, signal: AbortSignal): Promise<SendResult | undefined> {
    const lines = request.lines();
    const all = Array.from({ length: request.events.length }, (_, i) => i);
    const pending: number[][] = [all];
    const rejected: { index: number; reason: string }[] = [];
    let delivered = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      const body =
        part === all ? request.payload() : await compress(pickLines(lines, part).bytes, this.opts.compression);
      let answer: ClickHouseAnswer;
      try {
        answer = await this.post(body, this.token(request, part), signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const retryable = new RetryableError(`${this.shown}: ${describeError(error)}`, { cause: error });
        if (delivered === 0 && rejected.length === 0) throw retryable;
        return { rejected, retry: [part, ...pending].flat(), error: retryable };
      }
      if (answer.status === 200) {
        delivered += part.length;
        continue;
      }
      if (!isRowError(answer)) {
        const retryable = new RetryableError(
          `${this.shown}: HTTP ${answer.status}${answer.code === undefined ? '' : ` code ${answer.code}`}: ${answer.message}`,
        );
        if (delivered === 0 && rejected.length === 0) throw retryable;
        return { rejected, retry: [part, ...pending].flat(), error: retryable };
      }
      if (part.length === 1) {
        rejected.push({ index: part[0]!, reason: `clickhouse code ${answer.code}: ${answer.message}` });
        continue;
      }
      // The named row goes alone first: if the hint was wrong it is inserted, and the split goes on.
      const row = errorRow(answer);
      if (row !== undefined && row >= 1 && row <= part.length) {
        const pieces = [part.slice(row - 1, row), part.slice(0, row - 1), part.slice(row)];
        pending.unshift(...pieces.filter((p) => p.length > 0));
      } else {
        const half = part.length >> 1;
        pending.unshift(part.slice(0, half), part.slice(half));
      }
    }
    return rejected.length > 0 ? { rejected } : undefined;
  }

  async stop(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    await agent?.destroy().catch(() => {});
  }

  /** The token of a part: the same `_id`s in the same order give the same token, on any retry. */
  private token(request: SinkRequest, part: readonly number[]): string | undefined {
    if (!this.opts.deduplication_token || !this.features?.deduplicationToken) return undefined;
    const hash = createHash('sha256');
    for (const i of part) hash.update(`${String(request.events[i]!._id ?? '')}\n`);
    return hash.digest('hex').slice(0, 32);
  }

  private async post(body: Buffer, token: string | undefined, signal: AbortSignal): Promise<ClickHouseAnswer> {
    const params = new URLSearchParams({ query: this.insert });
    if (this.opts.skip_unknown_fields) params.set('input_format_skip_unknown_fields', '1');
    if (this.opts.date_time_best_effort) params.set('date_time_input_format', 'best_effort');
    if (token !== undefined) params.set('insert_deduplication_token', token);
    if (this.opts.async_insert && this.features?.asyncInsert) {
      params.set('async_insert', '1');
      params.set('wait_for_async_insert', '1');
    }
    const encoding = contentEncoding(this.opts.compression);
    const res = await this.request!(`${this.base}?${params}`, {
      method: 'POST',
      body,
      headers: {
        ...this.headers,
        'content-type': 'application/x-ndjson',
        ...(encoding === undefined ? {} : { 'content-encoding': encoding }),
      },
      dispatcher: this.requireAgent(),
      signal,
    });
    const text = await res.body.text();
    return readAnswer(res.statusCode, res.headers['x-clickhouse-exception-code'], text);
  }

  /** A read-only statement; its body, or a RetryableError with the server's answer. */
  private async query(sql: string, signal: AbortSignal): Promise<string> {
    let res: Awaited<ReturnType<typeof undiciRequest>>;
    try {
      res = await this.request!(this.base, {
        method: 'POST',
        body: sql,
        headers: this.headers,
        dispatcher: this.requireAgent(),
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new RetryableError(`${this.shown}: ${describeError(error)}`, { cause: error });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      const answer = readAnswer(res.statusCode, res.headers['x-clickhouse-exception-code'], text);
      const code = answer.code === undefined ? '' : ` code ${answer.code}`;
      // A refused login is the setup's fault, not the events': retried with backoff (and logged) until the
      // credentials are fixed, like any other connect error; never dead-lettered.
      const hint = isAuthFailure(answer)
        ? ` (authentication failed for user ${this.user}: check username and password)`
        : '';
      throw new RetryableError(`${this.shown}: HTTP ${answer.status}${code}: ${answer.message}${hint}`);
    }
    return text;
  }

  /**
   * CREATE TABLE IF NOT EXISTS in the layout the dedup guarantee needs. Whether the server has DateTime64 is
   * learnt from its answer (code 50, unknown type) rather than its version: a fork or backport may differ.
   */
  private async createTable(version: string, signal: AbortSignal): Promise<void> {
    const name = `${quoteName(this.opts.database)}.${quoteName(this.opts.table)}`;
    const partition = this.opts.partition_by === undefined ? '' : ` PARTITION BY ${this.opts.partition_by}`;
    const sql = (columns: [string, string][]) =>
      `CREATE TABLE IF NOT EXISTS ${name} (${[['_id', 'String'], ...columns]
        .map(([column, type]) => `${quoteName(column)} ${type}`)
        .join(', ')}) ENGINE = ReplacingMergeTree${partition} ORDER BY ${quoteName('_id')}`;
    const columns = Object.entries(this.opts.columns).filter(([column]) => column !== '_id');
    try {
      await this.query(sql(columns), signal);
    } catch (error) {
      const withoutDateTime64 = columns.map(([c, t]): [string, string] => [
        c,
        t.replace(/\bDateTime64\(\d+\)/g, 'DateTime'),
      ]);
      if (
        !/\bcode 50\b/.test(String((error as Error).message)) ||
        withoutDateTime64.every(([, t], i) => t === columns[i]![1])
      ) {
        throw error;
      }
      await this.query(sql(withoutDateTime64), signal);
      this.context.logger.warn(
        { sink: this.context.id, version },
        'this server has no DateTime64: the table was created with DateTime (whole seconds) instead',
      );
    }
  }

  private requireAgent(): Agent {
    if (this.agent === undefined) throw new RetryableError(`${this.shown}: not connected`);
    return this.agent;
  }
}

function describeError(error: unknown): string {
  type Failure = NodeJS.ErrnoException & { errors?: Error[] };
  const e = error as Failure & { cause?: Failure };
  const inner = (e?.cause?.errors?.[0] as Failure | undefined) ?? e?.cause ?? e;
  const message = inner?.message || e?.code || String(error);
  const code = inner?.code ?? e?.code;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

export const clickhouseSink = defineSink({
  kind: 'sink',
  type: 'clickhouse',
  description:
    'Inserts events into a ClickHouse table over HTTP (JSONEachRow, gzip); with ReplacingMergeTree on `_id` a replay adds no duplicate.',
  options,
  example: `# CREATE TABLE logs.access (_id String, timestamp DateTime, host String, message String)
#   ENGINE = ReplacingMergeTree ORDER BY _id   -- read with SELECT … FINAL for one row per _id
sinks:
  columnar:
    type: clickhouse
    inputs: [web_syslog]
    endpoint: http://127.0.0.1:8123
    password: "\${CLICKHOUSE_PASSWORD}"
    database: logs
    table: access`,
  defaultBatchTimeoutMs: 200,
  describeEndpoint: (o) => `${o.database}.${o.table} at ${redactUrl(o.endpoint)}`,
  build: (o, ctx) => new ClickHouseSink(o, ctx),
});
