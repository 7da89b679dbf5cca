import type { Agent } from 'undici';
import { z } from 'zod';
import { loadTlsClientOptions, tlsClientOption } from '../codecs/tls.ts';
import { type ComponentContext, defineSink, type Sink } from '../core/component.ts';
import { FluxoError, PermanentError, RetryableError } from '../core/errors.ts';
import { lazyImport } from '../core/lazy-import.ts';
import {
  authorizationHeader,
  type Compression,
  clientAuthOption,
  compressionOption,
  contentEncoding,
  type Encoding,
  encodingOf,
  encodingOptions,
  redactUrl,
  type SinkRequest,
} from '../core/sink/index.ts';
import { duration, urlString } from '../core/units.ts';

const httpSinkOptions = z.object({
  uri: urlString(['http', 'https']).describe('Where each batch is sent, e.g. `https://collector.example.com/ingest`.'),
  method: z.enum(['post', 'put']).default('post').describe('HTTP method of the requests.'),
  ...encodingOptions(['json', 'ndjson', 'text'], { codec: 'json' }),
  compression: compressionOption(['none', 'gzip', 'zstd'], {
    default: 'none',
    describe: '`gzip` or `zstd` compresses the body (Content-Encoding); `none` sends it as it is.',
  }),
  headers: z
    .record(z.string(), z.string())
    .default({})
    .describe('Extra request headers, e.g. `{ X-Tenant: web }`. Content-Type and Content-Encoding are set by Fluxo.'),
  auth: clientAuthOption(),
  tls: tlsClientOption(),
  request_timeout: duration()
    .default(30_000)
    .describe(
      'How long one request may take (connect, send, answer); past it the write is retried. The common `timeout` ' +
        'bounds a whole attempt as for every sink.',
    ),
});

export type HttpSinkOptions = z.infer<typeof httpSinkOptions>;

/** undici is loaded when an http sink starts, not when Fluxo starts (see lazyImport). */
const undici = lazyImport(() => import('undici'));

const CONTENT_TYPES = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  text: 'text/plain; charset=utf-8',
} as const;

/** Retry-After beyond this is capped: a misconfigured server must not park a sink for days. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * Sends each write as one HTTP request, its body encoded and compressed once by the kit (a retry sends the
 * same bytes). 2xx: delivered. 429, 408, 5xx and network errors (refused, reset, timeout): retried by the sink
 * runner with backoff, no sooner than the server's Retry-After. Other statuses (400, 401, 404, 413, redirects):
 * the destination rejects these events; they go to the dead letter output with the status and the start of
 * the answer.
 */
export class HttpSink implements Sink {
  readonly encoding: Encoding;
  readonly compression: Compression;
  /** Made by start(), once undici is loaded. */
  private agent: Agent | undefined;
  private request: typeof import('undici').request | undefined;
  private readonly tls: ReturnType<typeof loadTlsClientOptions>;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly shownUri: string;

  constructor(
    private readonly options: HttpSinkOptions,
    context: ComponentContext,
  ) {
    this.encoding = encodingOf(options);
    this.compression = options.compression;
    const tls = loadTlsClientOptions(options.tls, `sink ${context.id}`);
    this.tls = tls;
    const url = new URL(options.uri);
    if (tls && url.protocol === 'http:') {
      throw new FluxoError(
        'FLUXO_SINK_INVALID_OPTIONS',
        `sink ${context.id}: tls is set but uri ${redactUrl(options.uri)} is http://; use https://`,
      );
    }
    this.url = url.toString();
    this.shownUri = redactUrl(options.uri);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.headers)) headers[k.toLowerCase()] = v;
    headers['content-type'] = CONTENT_TYPES[options.encoding];
    const encoding = contentEncoding(options.compression);
    if (encoding !== undefined) headers['content-encoding'] = encoding;
    if (options.auth) headers.authorization = authorizationHeader(options.auth);
    this.headers = headers;
  }

  async start(): Promise<void> {
    const { Agent, request } = await undici();
    this.request = request;
    this.agent = new Agent({
      connect: { ...(this.tls ?? {}), timeout: this.options.request_timeout },
      headersTimeout: this.options.request_timeout,
      bodyTimeout: this.options.request_timeout,
    });
  }

  async send(req: SinkRequest, signal: AbortSignal): Promise<undefined> {
    const request = this.request;
    if (request === undefined) throw new Error('internal: send() before start()');
    const timeout = AbortSignal.timeout(this.options.request_timeout);
    let status: number;
    let retryAfter: string | string[] | undefined;
    let answer: string;
    try {
      const res = await request(this.url, {
        method: this.options.method === 'put' ? 'PUT' : 'POST',
        headers: this.headers,
        body: req.payload(),
        dispatcher: this.agent,
        signal: AbortSignal.any([signal, timeout]),
      });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      // Read (and so free) the connection for keep-alive; only the start is kept for messages.
      answer = (await res.body.text()).slice(0, 512);
    } catch (error) {
      if (signal.aborted) throw error;
      const reason = timeout.aborted ? `no answer within ${this.options.request_timeout} ms` : describeError(error);
      throw new RetryableError(`${this.shownUri}: ${reason}`, { cause: error });
    }
    if (status >= 200 && status < 300) return undefined;
    const what = `${this.shownUri} answered ${status}${answer ? `: ${answer.trim()}` : ''}`;
    if (status === 429 || status === 408 || status >= 500) {
      throw new RetryableError(what, { retryAfterMs: parseRetryAfter(retryAfter) });
    }
    throw new PermanentError(what);
  }

  async stop(): Promise<void> {
    await this.agent?.close();
  }
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  const trimmed = v.trim();
  let ms: number;
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

function describeError(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code;
  const message = e.cause?.message ?? e.message ?? String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

export const httpSink = defineSink({
  kind: 'sink',
  type: 'http',
  description:
    'Sends batches of events to an HTTP endpoint (JSON array, NDJSON or text; gzip; bearer or basic auth; TLS).',
  options: httpSinkOptions,
  example: `sinks:
  collector:
    type: http
    inputs: [web_syslog]
    uri: https://collector.example.com/ingest
    encoding: ndjson
    compression: gzip
    auth: { strategy: bearer, token: "\${COLLECTOR_TOKEN}" }
    buffer: { type: disk, max_size: 1GiB }`,
  defaultBatchTimeoutMs: 50,
  describeEndpoint: (options) => `${options.method.toUpperCase()} ${redactUrl(options.uri)}`,
  build: (options, context) => new HttpSink(options, context),
});
