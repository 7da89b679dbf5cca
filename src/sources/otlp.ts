import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { z } from 'zod';
import {
  DEFAULT_MAX_EVENTS_PER_REQUEST,
  DEFAULT_MAX_NESTING_DEPTH,
  DecodedBodyTooLargeError,
  gunzipCapped,
  InvalidGzipError,
  MAX_BATCH_EVENTS,
  NestingTooDeepError,
  TooManyEventsError,
} from '../codecs/body-limits.ts';
import { HttpAuthenticator, httpAuthOption } from '../codecs/http-auth.ts';
import {
  decodeLogsRequest,
  encodeLogsResponse,
  encodeStatus,
  loadOtlpProtobuf,
  logsRequestToEvents,
  type OtlpEncoding,
  OtlpFormatError,
  otlpProtobufLoaded,
} from '../codecs/otlp.ts';
import { loadTlsServerOptions, tlsServerOption } from '../codecs/tls.ts';
import { type BatchedEmitTarget, emitInBatches, PendingEmits } from '../core/batched-emit.ts';
import { defineSource, type Source, type SourceContext } from '../core/component.ts';
import { EventIdGenerator } from '../core/event.ts';
import { nodeHttp, nodeHttps } from '../core/net/builtins.ts';
import { HttpConnectionGuard, httpConnectionOptions, httpServerOptions } from '../core/net/http-connections.ts';
import { boundHostPort, listenServer } from '../core/net/listen.ts';
import { maxConnectionsOption } from '../core/net/options.ts';
import { RateLimitedWarnings } from '../core/rate-limited-warnings.ts';
import { address, duration, size, splitAddress } from '../core/units.ts';

/** 20 MiB, the OpenTelemetry Collector's default `max_request_body_size`, which it also applies after gunzip. */
const DEFAULT_MAX_DECODED_BODY_BYTES = 20 * 1024 * 1024;

const options = z.object({
  address: address()
    .default('127.0.0.1:4318')
    .describe('Address to listen on, `host:port` (OTLP/HTTP); port 0 picks a free port.'),
  path: z
    .string()
    .regex(/^\//, { message: 'expected a path starting with /' })
    .default('/v1/logs')
    .describe('The logs endpoint. Other paths answer 404.'),
  auth: httpAuthOption(),
  max_body_bytes: size()
    .default(16 * 1024 * 1024)
    .describe('Largest request body as sent (compressed or not); larger ones are answered 413.'),
  max_decoded_body_bytes: size()
    .default(DEFAULT_MAX_DECODED_BODY_BYTES)
    .describe(
      'Largest body after gzip decompression, 20 MiB by default as in the OpenTelemetry Collector: the inflater ' +
        'stops as soon as it passes this and the request is answered 413 (RESOURCE_EXHAUSTED), counted as ' +
        '`decoded_body_too_large` errors. Decoded protobuf takes several times its size in memory while it is ' +
        'converted, so raise it with care.',
    ),
  max_events_per_request: z
    .number()
    .int()
    .positive()
    .default(DEFAULT_MAX_EVENTS_PER_REQUEST)
    .describe(
      'Most log records in one request, 100,000 by default (SDK exporters send 512; a Collector batch 8,192), ' +
        'counted on the wire before they are decoded: more is answered 413 and nothing of it is taken ' +
        '(`too_many_events`). Accepted records enter the pipeline in batches of at most 1,000, in order, and ' +
        'the request is answered once every batch is delivered.',
    ),
  max_nesting_depth: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(DEFAULT_MAX_NESTING_DEPTH)
    .describe(
      'Deepest nesting of one event (the event is level 1; `body` and `attributes` level 2; each array or ' +
        'key-value list AnyValue one more), 100 by default as in protobuf: a deeper request is answered 400 ' +
        '(INVALID_ARGUMENT) and counted as `nesting_too_deep`, since no sink could encode it.',
    ),
  retry_after: duration()
    .default(1_000)
    .describe('The `Retry-After` of 429 (pipeline full) and 503 (stopping, or not delivered) answers.'),
  max_connections: maxConnectionsOption(
    'otlp',
    'No HTTP answer (no 503): the exporter sees the connection closed or reset, counts the export as failed and ' +
      'retries it with backoff (OpenTelemetry SDKs and the Collector do), so nothing is acknowledged or lost.',
  ),
  ...httpConnectionOptions(),
  tls: tlsServerOption(),
});

export type OtlpSourceOptions = z.infer<typeof options>;

export const otlpSource = defineSource({
  kind: 'source',
  type: 'otlp',
  description:
    'Receives OpenTelemetry logs over OTLP/HTTP (protobuf or JSON, gzip); answers once the records are delivered.',
  options,
  example: [
    '# Each log record becomes one event: `message` (a string body; any other body goes to `body` as JSON),',
    '# `severity_text`, `severity_number`, `event_name`, `attributes` and `resource` (objects keyed by the attribute',
    '# names as sent, e.g. "http.method"; AnyValues unwrapped: int64 as numbers, or strings beyond 2^53; bytes as base64),',
    '# `scope` ({name, version, attributes}), `trace_id`/`span_id` (hex), `trace_flags`, `timestamp` (time, else observed',
    '# time, else receipt; ISO-8601 ms), `observed_timestamp`, `host` (resource host.name, else the client address).',
    '# With `auth`, exporters send the header, e.g. OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <token>"; a',
    '# request without it is answered 401 (not retried by exporters).',
    'sources:',
    '  otel:',
    '    type: otlp',
    '    address: 0.0.0.0:4318',
    '    auth: { strategy: bearer, token: "${FLUXO_OTLP_TOKEN}" }',
    '    tls: { crt_file: /etc/fluxo/server.crt, key_file: /etc/fluxo/server.key }',
  ].join('\n'),
  build: (opts, ctx) => new OtlpSource(opts, ctx),
});

// google.rpc.Code values for the error bodies.
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const UNAVAILABLE = 14;
const UNIMPLEMENTED = 12;
const UNAUTHENTICATED = 16;

/**
 * `POST /v1/logs`: each request becomes one batch, and the response waits for its acknowledgement: 200 (with a
 * partial success naming the records that could not be read) once every sink delivered it, 503 when it was not.
 * While an earlier request still waits for room in the pipeline, new ones are answered 429 with Retry-After, which
 * OTLP exporters honour; malformed bodies are answered 400.
 */
export class OtlpSource implements Source {
  private readonly server: Server;
  private readonly host: string;
  private readonly port: number;
  private readonly ids = new EventIdGenerator();
  private stopping = false;
  /** Emits not yet accepted by the pipeline: while there is one, the pipeline is full. */
  /** Batches waiting for the pipeline to take them: while one waits, new requests get 429; stop() waits for none. */
  private readonly pending = new PendingEmits();
  private readonly emitTarget: BatchedEmitTarget = {
    emit: (events, options) => this.ctx.emit(events, options),
    stopping: () => this.stopping,
    rejected: (error) => this.ctx.logger.debug({ err: String(error) }, 'otlp: emit rejected'),
  };
  private readonly retryAfterSeconds: string;
  private readonly auth: HttpAuthenticator | undefined;
  private readonly warnings: RateLimitedWarnings;
  private readonly metrics;

  constructor(
    private readonly opts: OtlpSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    ({ host: this.host, port: this.port } = splitAddress(opts.address));
    this.retryAfterSeconds = String(Math.max(1, Math.ceil(opts.retry_after / 1000)));
    this.auth = HttpAuthenticator.of(opts.auth);
    this.warnings = new RateLimitedWarnings(ctx.logger);
    const m = ctx.metrics;
    this.metrics = {
      requests: m.counter('fluxo_otlp_requests_total', 'OTLP export requests answered 200.'),
      rejectedRequests: m.counter(
        'fluxo_otlp_requests_rejected_total',
        'OTLP export requests answered with an error (4xx, 5xx).',
      ),
      rejectedRecords: m.counter(
        'fluxo_otlp_log_records_rejected_total',
        'Log records refused for wrong field values, reported to the client as partial success.',
      ),
      throttled: m.counter(
        'fluxo_otlp_requests_throttled_total',
        'Requests answered 429 because the pipeline was full.',
      ),
      decompressedBytes: m.counter(
        'fluxo_otlp_decompressed_bytes_total',
        'Bytes produced by inflating gzip bodies, refused ones included (each stops at max_decoded_body_bytes).',
      ),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        ctx.metrics.error('internal');
        ctx.logger.error({ err: String(error) }, 'otlp: request failed');
        this.reply(res, 500, 'json', encodeStatus('json', 13, 'internal error'));
      });
    };
    const tls = loadTlsServerOptions(opts.tls, `source ${ctx.id}`);
    const serverOptions = httpServerOptions(opts);
    this.server = tls
      ? nodeHttps().createServer({ ...tls, ...serverOptions }, handler)
      : nodeHttp().createServer(serverOptions, handler);
    // Counts connections, evicts or refuses beyond max_connections, counts the header and request timeouts.
    new HttpConnectionGuard(this.server, opts, 'otlp', ctx.metrics, (kind, fields, message) =>
      this.warnings.warn(kind, fields, `otlp: ${message}`),
    );
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, 'otlp source server error'));
  }

  start(): Promise<void> {
    return listenServer(this.server, this.host, this.port, this.ctx.id, this.opts.address);
  }

  endpoint(): string | undefined {
    const hostPort = boundHostPort(this.server);
    return hostPort === undefined
      ? undefined
      : `${this.opts.tls?.enabled ? 'https' : 'http'} ${hostPort}${this.opts.path}`;
  }

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      // New requests get 503; those waiting for their acknowledgement still get their answer.
      this.server.close();
      this.server.closeIdleConnections();
    }
    await this.pending.idle();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
    const encoding = encodingOf(req.headers['content-type']);
    // protobufjs and the schema load with the first protobuf request, not at start.
    if (encoding === 'protobuf' && !otlpProtobufLoaded()) await loadOtlpProtobuf();
    const answerAs = encoding ?? 'json';
    if (path !== this.opts.path) return this.fail(res, 404, answerAs, NOT_FOUND, `no OTLP endpoint at ${path}`);
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return this.fail(res, 405, answerAs, UNIMPLEMENTED, `${req.method} is not supported: POST logs`);
    }
    if (this.auth !== undefined && !this.auth.authorized(req.headers.authorization)) {
      this.ctx.metrics.error('unauthorized');
      this.warnings.warn('auth', { host: req.socket.remoteAddress }, 'request refused: missing or wrong credentials');
      res.setHeader('WWW-Authenticate', this.auth.challenge);
      return this.fail(res, 401, answerAs, UNAUTHENTICATED, 'missing or wrong credentials');
    }
    if (encoding === undefined) {
      return this.fail(
        res,
        415,
        'json',
        INVALID_ARGUMENT,
        `unsupported Content-Type ${req.headers['content-type'] ?? '(none)'}: use application/x-protobuf or application/json`,
      );
    }
    if (this.stopping) return this.unavailable(res, encoding, 'Fluxo is stopping');
    if (this.pending.size > 0) {
      this.metrics.throttled.inc();
      res.setHeader('Retry-After', this.retryAfterSeconds);
      return this.fail(res, 429, encoding, UNAVAILABLE, 'the pipeline is full: retry later');
    }
    const contentEncoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (contentEncoding !== 'gzip' && contentEncoding !== 'identity') {
      return this.fail(
        res,
        415,
        encoding,
        INVALID_ARGUMENT,
        `unsupported Content-Encoding ${contentEncoding}: use gzip`,
      );
    }
    const max = this.opts.max_body_bytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return this.fail(res, 413, encoding, RESOURCE_EXHAUSTED, `body larger than ${max} bytes`);
    let body = await readBody(req, max);
    if (body === undefined) return this.fail(res, 413, encoding, RESOURCE_EXHAUSTED, `body larger than ${max} bytes`);
    const wireBytes = body.length;
    if (contentEncoding === 'gzip') {
      try {
        const inflated = await gunzipCapped(body, this.opts.max_decoded_body_bytes);
        this.metrics.decompressedBytes.inc(inflated.produced);
        body = inflated.body;
      } catch (error) {
        if (error instanceof DecodedBodyTooLargeError) {
          this.metrics.decompressedBytes.inc(error.produced);
          return this.refuse(req, res, 413, encoding, RESOURCE_EXHAUSTED, 'decoded_body_too_large', error.message);
        }
        const message = error instanceof InvalidGzipError ? error.message : `invalid gzip body: ${String(error)}`;
        return this.refuse(req, res, 400, encoding, INVALID_ARGUMENT, 'malformed', message);
      }
    }
    let converted: ReturnType<typeof logsRequestToEvents>;
    try {
      const maxDepth = this.opts.max_nesting_depth;
      const request = decodeLogsRequest(body, encoding, { maxRecords: this.opts.max_events_per_request, maxDepth });
      body = undefined;
      converted = logsRequestToEvents(request, req.socket.remoteAddress ?? '', this.ids, maxDepth);
    } catch (error) {
      if (error instanceof TooManyEventsError) {
        return this.refuse(req, res, 413, encoding, RESOURCE_EXHAUSTED, 'too_many_events', error.message);
      }
      if (error instanceof NestingTooDeepError) {
        return this.refuse(req, res, 400, encoding, INVALID_ARGUMENT, 'nesting_too_deep', error.message);
      }
      // Whatever else a hostile body provokes (a RangeError from a too deep recursion, a bad field) is the
      // client's fault: 400, never a 500 that exporters retry forever.
      const message =
        error instanceof OtlpFormatError ? error.message : `the request cannot be decoded: ${(error as Error).message}`;
      return this.refuse(req, res, 400, encoding, INVALID_ARGUMENT, 'malformed', message);
    }
    const { events, rejected, firstError } = converted;
    if (rejected > 0) {
      this.metrics.rejectedRecords.inc(rejected);
      this.ctx.logger.debug({ rejected, reason: firstError }, 'otlp: log records rejected');
    }
    const ok = () => {
      this.metrics.requests.inc();
      this.reply(res, 200, encoding, encodeLogsResponse(encoding, rejected, firstError));
    };
    if (events.length === 0) return ok();
    // Batches of at most MAX_BATCH_EVENTS, each once the pipeline took the one before (see emitInBatches).
    emitInBatches(this.emitTarget, this.pending, events, { wireBytes, maxEvents: MAX_BATCH_EVENTS }, (outcome) => {
      if (outcome === 'delivered') ok();
      else this.unavailable(res, encoding, 'the records were not delivered (Fluxo stopping): retry');
    });
  }

  private unavailable(res: ServerResponse, encoding: OtlpEncoding, message: string): void {
    res.setHeader('Retry-After', this.retryAfterSeconds);
    this.fail(res, 503, encoding, UNAVAILABLE, message);
  }

  /** A request refused for what it holds: counted per reason, logged rate-limited, answered with the reason. */
  private refuse(
    req: IncomingMessage,
    res: ServerResponse,
    status: 400 | 413,
    encoding: OtlpEncoding,
    code: number,
    type: string,
    message: string,
  ): void {
    this.ctx.metrics.error(type);
    this.warnings.warn(type, { host: req.socket.remoteAddress, reason: message }, `otlp: request refused: ${message}`);
    this.fail(res, status, encoding, code, message);
  }

  private fail(res: ServerResponse, status: number, encoding: OtlpEncoding, code: number, message: string): void {
    this.metrics.rejectedRequests.inc();
    if (status < 500) this.ctx.logger.debug({ status, reason: message }, 'otlp: request refused');
    this.reply(res, status, encoding, encodeStatus(encoding, code, message));
  }

  private reply(res: ServerResponse, status: number, encoding: OtlpEncoding, body: Buffer): void {
    if (res.headersSent || res.destroyed) return;
    res.statusCode = status;
    res.setHeader('Content-Type', encoding === 'protobuf' ? 'application/x-protobuf' : 'application/json');
    res.setHeader('Content-Length', body.length);
    res.end(body);
  }
}

function encodingOf(contentType: string | undefined): OtlpEncoding | undefined {
  const type = (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return 'protobuf';
  if (type === 'application/json') return 'json';
  return undefined;
}

/** The whole body, or undefined as soon as it passes `max` bytes. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > max) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, total)));
    req.on('error', reject);
  });
}
