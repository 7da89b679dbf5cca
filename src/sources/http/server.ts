import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  DecodedBodyTooLargeError,
  gunzipCapped,
  InvalidGzipError,
  MAX_BATCH_EVENTS,
  NestingTooDeepError,
  TooManyEventsError,
} from '../../codecs/body-limits.ts';
import { HttpAuthenticator } from '../../codecs/http-auth.ts';
import { loadTlsServerOptions } from '../../codecs/tls.ts';
import { type BatchedEmitTarget, emitInBatches, PendingEmits } from '../../core/batched-emit.ts';
import type { Source, SourceContext } from '../../core/component.ts';
import { type Event, EventIdGenerator } from '../../core/event.ts';
import { nodeHttp, nodeHttps } from '../../core/net/builtins.ts';
import { HttpConnectionGuard, httpServerOptions } from '../../core/net/http-connections.ts';
import { boundHostPort, listenServer, peerHost } from '../../core/net/listen.ts';
import { RateLimitedWarnings } from '../../core/rate-limited-warnings.ts';
import { splitAddress } from '../../core/units.ts';
import type { HttpSourceOptions } from '../http.ts';
import { type BodyFormat, bodyFormatOf, decodeBody, MalformedBodyError, SUPPORTED_CONTENT_TYPES } from './body.ts';

/** At most one warning of each kind per this interval: a misbehaving client must not flood the log. */
/** Rejected requests with a body up to this size are drained so the connection stays usable; larger ones close it. */
const DRAIN_REJECTED_BYTES = 64 * 1024;
/** After a 413 mid-body, how long the rest of the body is read and discarded so the client sees the answer. */
const LINGER_MS = 2000;
/** Idempotency-Key: visible ASCII, as the IETF draft's examples (UUIDs, hashes) use. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * The `http` source. Each accepted request becomes batches of at most MAX_BATCH_EVENTS events, emitted in order;
 * the response waits for all of them: 200 once every sink delivered (or durably buffered) each, 503 if one
 * failed. A body is decoded whole before anything is emitted, so a refused body (400, 413) leaves nothing in the
 * pipeline. Requests are
 * turned away before their body is read when the pipeline pushes back: 429 when `max_pending_requests` are
 * being read or awaiting acknowledgement, 503 when a batch has waited `backpressure_threshold` for room in a
 * full pipeline. Both carry `Retry-After`.
 */
export class HttpSource implements Source {
  private readonly server: Server;
  private readonly scheme: 'http' | 'https';
  private readonly host: string;
  private readonly port: number;
  private readonly ids = new EventIdGenerator();
  private readonly retryAfter: string;
  private readonly auth: HttpAuthenticator | undefined;
  private stopping = false;
  /** Requests accepted (body being read, decoded, or waiting for its acknowledgement) and not yet answered. */
  private pendingRequests = 0;
  /** Requests still reading their body, with what ends them: answered 503 at shutdown, never emitted. */
  private readonly reading = new Map<ServerResponse, () => void>();
  /** Start times of emits the pipeline has not taken yet, oldest first (Map keeps insertion order). */
  /** Batches waiting for the pipeline to take them: the backpressure signal, and what stop() waits for. */
  private readonly pending = new PendingEmits();
  private readonly emitTarget: BatchedEmitTarget = {
    emit: (events, options) => this.ctx.emit(events, options),
    stopping: () => this.stopping,
    rejected: (error) => this.ctx.logger.debug({ err: String(error) }, 'emit rejected'),
  };
  private readonly pendingGauge;
  private readonly backpressureRejections;
  private readonly decompressedBytes;
  private readonly warnings: RateLimitedWarnings;

  constructor(
    private readonly opts: HttpSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    this.warnings = new RateLimitedWarnings(ctx.logger);
    ({ host: this.host, port: this.port } = splitAddress(opts.address));
    this.retryAfter = String(Math.max(1, Math.ceil(opts.retry_after / 1000)));
    this.auth = HttpAuthenticator.of(opts.auth);
    const m = ctx.metrics;
    this.pendingGauge = m.gauge(
      'fluxo_http_pending_requests',
      'Requests being read or waiting for their acknowledgement (limit: max_pending_requests).',
    );
    this.backpressureRejections = m.counter(
      'fluxo_http_backpressure_rejections_total',
      'Requests answered 429 or 503 with Retry-After because the pipeline pushed back.',
    );
    this.decompressedBytes = m.counter(
      'fluxo_http_decompressed_bytes_total',
      'Bytes produced by inflating gzip bodies, refused ones included (each stops at max_decoded_body_bytes).',
    );
    const tls = loadTlsServerOptions(opts.tls, `source ${ctx.id}`);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, false);
    this.scheme = tls ? 'https' : 'http';
    const serverOptions = httpServerOptions(opts);
    this.server = tls
      ? nodeHttps().createServer({ ...tls, ...serverOptions }, handler)
      : nodeHttp().createServer(serverOptions, handler);
    // Expect: 100-continue lets a client learn about 401/413/429/503 before it sends the body.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    // Counts connections, evicts or refuses beyond max_connections, counts the header and request timeouts.
    new HttpConnectionGuard(this.server, opts, 'http', m, (kind, fields, message) =>
      this.warnings.warn(kind, fields, message),
    );
    this.server.on('tlsClientError', (error: Error) => {
      ctx.metrics.error('tls_handshake');
      this.warnings.warn('tls', { err: error.message }, 'TLS handshake failed');
    });
    this.server.on('error', (error) => ctx.logger.error({ err: error.message }, 'http source server error'));
  }

  start(): Promise<void> {
    return listenServer(this.server, this.host, this.port, this.ctx.id, this.opts.address);
  }

  endpoint(): string | undefined {
    const hostPort = boundHostPort(this.server);
    return hostPort === undefined ? undefined : `${this.scheme} ${hostPort} (POST ${this.opts.path})`;
  }

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.server.close();
      this.server.closeIdleConnections();
      // Bodies still arriving were never emitted: the client keeps them and retries elsewhere or later.
      for (const [res, done] of [...this.reading]) {
        done();
        this.answerBusy(res, 503, 'shutting down');
      }
    }
    await this.pending.idle();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    if (this.stopping) {
      this.answerBusy(res, 503, 'shutting down', req);
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== this.opts.path) {
      this.reject(req, res, 404, 'not_found', `no such path; POST to ${this.opts.path}`);
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      this.reject(req, res, 405, 'method_not_allowed', 'only POST is accepted');
      return;
    }
    if (this.auth !== undefined && !this.auth.authorized(req.headers.authorization)) {
      res.setHeader('WWW-Authenticate', this.auth.challenge);
      this.warnings.warn('auth', { host: req.socket.remoteAddress }, 'request refused: missing or wrong credentials');
      this.reject(req, res, 401, 'unauthorized', 'missing or wrong credentials');
      return;
    }
    const format = bodyFormatOf(req.headers['content-type']);
    if (format === undefined) {
      this.reject(
        req,
        res,
        415,
        'unsupported_media_type',
        `unsupported Content-Type "${req.headers['content-type']}"; use one of ${SUPPORTED_CONTENT_TYPES.join(', ')}`,
      );
      return;
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    const gzip = encoding === 'gzip' || encoding === 'x-gzip';
    if (!gzip && encoding !== 'identity' && encoding !== '') {
      this.reject(
        req,
        res,
        415,
        'unsupported_media_type',
        `unsupported Content-Encoding "${encoding}"; use gzip or none`,
      );
      return;
    }
    const key = req.headers['idempotency-key'];
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key as string)) {
      this.reject(req, res, 400, 'malformed_body', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
      return;
    }
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (declared > this.opts.max_body_bytes) {
      this.tooLarge(req, res, declared);
      return;
    }
    if (this.pendingRequests >= this.opts.max_pending_requests) {
      this.answerBusy(res, 429, `more than ${this.opts.max_pending_requests} requests pending`, req);
      return;
    }
    if (this.pending.size > 0 && this.pending.oldestWaitMs() >= this.opts.backpressure_threshold) {
      this.answerBusy(res, 503, 'the pipeline is full (sinks are behind)', req);
      return;
    }
    if (expectContinue) res.writeContinue();
    this.readBody(req, res, format, gzip, key as string | undefined);
  }

  private readBody(
    req: IncomingMessage,
    res: ServerResponse,
    format: BodyFormat,
    gzip: boolean,
    key: string | undefined,
  ): void {
    const receivedAt = Date.now();
    this.pendingRequests++;
    this.pendingGauge.inc();
    let answered = false;
    // Once per request, whatever ends it: the acknowledgement, a refusal, or the client going away.
    const done = () => {
      if (answered) return;
      answered = true;
      this.reading.delete(res);
      this.pendingRequests--;
      this.pendingGauge.dec();
    };
    this.reading.set(res, done);
    res.once('close', () => {
      // A client that leaves while its batch is in the pipeline still counts until the batch settles.
      if (this.reading.has(res)) done();
    });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (!this.reading.has(res)) return;
      size += chunk.length;
      if (size > this.opts.max_body_bytes) {
        done();
        this.tooLarge(req, res, size);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!this.reading.has(res)) return;
      this.reading.delete(res);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      if (!gzip) {
        this.decodeAndEmit(req, res, body, size, format, key, receivedAt, done);
        return;
      }
      gunzipCapped(body, this.opts.max_decoded_body_bytes).then(
        ({ body: plain, produced }) => {
          this.decompressedBytes.inc(produced);
          this.decodeAndEmit(req, res, plain, size, format, key, receivedAt, done);
        },
        (error: unknown) => {
          done();
          if (error instanceof DecodedBodyTooLargeError) {
            this.decompressedBytes.inc(error.produced);
            this.overLimit(req, res, 'decoded_body_too_large', error.message, {
              max_decoded_body_bytes: error.limit,
            });
            return;
          }
          const message = error instanceof InvalidGzipError ? error.message : `invalid gzip body: ${String(error)}`;
          this.reject(req, res, 400, 'malformed_body', message);
        },
      );
    });
  }

  private decodeAndEmit(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    wireBytes: number,
    format: BodyFormat,
    key: string | undefined,
    receivedAt: number,
    done: () => void,
  ): void {
    let events: Event[];
    try {
      events = decodeBody(format, body.toString('utf8'), {
        maxEvents: this.opts.max_events_per_request,
        maxDepth: this.opts.max_nesting_depth,
      });
    } catch (error) {
      done();
      if (error instanceof TooManyEventsError) {
        this.overLimit(req, res, 'too_many_events', error.message, { max_events_per_request: error.limit });
        return;
      }
      if (error instanceof NestingTooDeepError) {
        this.warnings.warn(
          'too_deep',
          { host: req.socket.remoteAddress, max_nesting_depth: error.limit },
          'request refused: JSON nested deeper than max_nesting_depth',
        );
        this.reject(req, res, 400, 'nesting_too_deep', error.message);
        return;
      }
      if (!(error instanceof MalformedBodyError)) {
        this.ctx.logger.error({ err: (error as Error).message }, 'cannot decode request body');
        this.reject(req, res, 500, 'internal', 'the body could not be decoded');
        return;
      }
      this.warnings.warn(
        'malformed',
        { host: req.socket.remoteAddress, reason: error.message },
        'malformed request body',
      );
      this.reject(req, res, 400, 'malformed_body', error.message);
      return;
    }
    if (events.length === 0) {
      done();
      this.answer(res, 200, { accepted: 0 });
      return;
    }
    if (this.stopping) {
      // stop() may already have resolved: emitting now would race the pipeline's shutdown.
      done();
      this.answerBusy(res, 503, 'shutting down');
      return;
    }
    this.stamp(events, peerHost(req.socket.remoteAddress), key, receivedAt);
    this.emitInBatches(res, events, wireBytes, receivedAt, done);
  }

  /**
   * Emits `events` as batches of at most MAX_BATCH_EVENTS, each once the pipeline took the one before (order and
   * backpressure kept), and answers once every emitted batch settled: 200 if all were delivered, else 503. A
   * batch the stopping pipeline refused, and those after it, are never emitted; the sender sends the request
   * again (with an Idempotency-Key its events keep their ids, so the copies can be dropped downstream).
   */
  private emitInBatches(
    res: ServerResponse,
    events: Event[],
    wireBytes: number,
    receivedAt: number,
    done: () => void,
  ): void {
    emitInBatches(
      this.emitTarget,
      this.pending,
      events,
      { wireBytes, receivedAt, maxEvents: MAX_BATCH_EVENTS },
      (outcome) => {
        if (outcome === 'not_emitted') {
          done();
          this.answerBusy(res, 503, 'shutting down');
          return;
        }
        if (outcome === 'delivered') {
          this.answer(res, 200, { accepted: events.length });
        } else {
          this.ctx.metrics.error('not_delivered');
          res.setHeader('Retry-After', this.retryAfter);
          this.answer(res, 503, { error: 'the events were not delivered (shutdown or failure); send them again' });
        }
        done();
      },
    );
  }

  /** Sets what the sender left out; a forwarded event keeps its own `timestamp`, `host`, `source_type`, `_id`. */
  private stamp(events: Event[], host: string, key: string | undefined, receivedAt: number): void {
    const received = new Date(receivedAt).toISOString();
    const ids = this.ids;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.timestamp === undefined) e.timestamp = received;
      if (e.host === undefined) e.host = host;
      if (e.source_type === undefined) e.source_type = 'http';
      // The same key and body sent again give the same ids, so the batch layer can drop the duplicates.
      if (key !== undefined) e._id = `${key}:${i}`;
      else if (typeof e._id !== 'string' || e._id === '') e._id = ids.next(receivedAt);
    }
  }

  /** 429/503 with Retry-After: the client should send the same request again later. */
  private answerBusy(res: ServerResponse, status: 429 | 503, reason: string, req?: IncomingMessage): void {
    this.backpressureRejections.inc();
    this.reading.delete(res);
    res.setHeader('Retry-After', this.retryAfter);
    if (req !== undefined) this.keepOrClose(req, res);
    this.answer(res, status, { error: reason });
  }

  /** 413 for a body within max_body_bytes on the wire that decodes to too much: counted and logged, rate-limited. */
  private overLimit(
    req: IncomingMessage,
    res: ServerResponse,
    type: string,
    reason: string,
    fields: Record<string, unknown>,
  ): void {
    this.ctx.metrics.error(type);
    this.warnings.warn(type, { host: req.socket.remoteAddress, ...fields }, `request refused: ${reason}`);
    this.keepOrClose(req, res);
    this.answer(res, 413, { error: reason });
  }

  private reject(req: IncomingMessage, res: ServerResponse, status: number, type: string, reason: string): void {
    this.ctx.metrics.error(type);
    this.keepOrClose(req, res);
    this.answer(res, status, { error: reason });
  }

  private tooLarge(req: IncomingMessage, res: ServerResponse, bytes: number, what = 'body'): void {
    this.ctx.metrics.error('body_too_large');
    this.warnings.warn(
      'too_large',
      { host: req.socket.remoteAddress, bytes, max_body_bytes: this.opts.max_body_bytes },
      'request refused: body over max_body_bytes',
    );
    res.setHeader('Connection', 'close');
    this.answer(res, 413, { error: `${what} larger than max_body_bytes (${this.opts.max_body_bytes} bytes)` });
    // Read and discard the rest for a moment so the client gets to read the answer rather than a reset.
    if (!req.complete) {
      req.resume();
      setTimeout(() => req.socket.destroy(), LINGER_MS).unref();
    }
  }

  /**
   * A request refused before its body was read: a small body is drained (Node does it after the answer) so
   * the connection can carry the next request; a large or unknown-length one closes the connection instead.
   */
  private keepOrClose(req: IncomingMessage, res: ServerResponse): void {
    if (req.complete) return;
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    // After `Expect: 100-continue` answered without a 100, whether the body follows is up to the client.
    const unsure = req.headers.expect !== undefined || !(declared <= DRAIN_REJECTED_BYTES);
    if (unsure || this.stopping) res.setHeader('Connection', 'close');
  }

  private answer(res: ServerResponse, status: number, body: Record<string, unknown>): void {
    if (res.headersSent || res.destroyed) return;
    if (this.stopping) res.setHeader('Connection', 'close');
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }
}
