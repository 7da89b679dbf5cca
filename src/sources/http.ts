import { z } from 'zod';
import {
  DEFAULT_MAX_DECODED_BODY_BYTES,
  DEFAULT_MAX_EVENTS_PER_REQUEST,
  DEFAULT_MAX_NESTING_DEPTH,
} from '../codecs/body-limits.ts';
import { httpAuthOption } from '../codecs/http-auth.ts';
import { tlsServerOption } from '../codecs/tls.ts';
import { defineSource } from '../core/component.ts';
import { httpConnectionOptions } from '../core/net/http-connections.ts';
import { maxConnectionsOption } from '../core/net/options.ts';
import { address, duration, size } from '../core/units.ts';
import { HttpSource } from './http/server.ts';

const options = z.object({
  address: address()
    .default('127.0.0.1:8080')
    .describe('Address to listen on, `host:port`; port 0 picks a free port (see the start-up banner).'),
  path: z
    .string()
    .regex(/^\/[^?#\s]*$/, { message: 'expected a path starting with /, without query string, e.g. /logs' })
    .default('/')
    .describe('The URL path that accepts `POST`s (query strings ignored); other paths get 404.'),
  auth: httpAuthOption(),
  max_body_bytes: size()
    .default(10 * 1024 * 1024)
    .describe(
      'Largest accepted body as sent (compressed or not): 413 beyond it, before the rest is read. ' +
        'Bodies being read take at most `max_pending_requests` × this much memory.',
    ),
  max_decoded_body_bytes: size()
    .default(DEFAULT_MAX_DECODED_BODY_BYTES)
    .describe(
      'Largest body after gzip decompression (64 MiB by default: room for a 10 MiB body of logs compressed ' +
        '6:1): the inflater stops as soon as it passes this, and the request is answered 413, so a small ' +
        'gzip bomb costs at most this much memory. Counted as `decoded_body_too_large` errors.',
    ),
  max_events_per_request: z
    .number()
    .int()
    .positive()
    .default(DEFAULT_MAX_EVENTS_PER_REQUEST)
    .describe(
      'Most events (lines, array elements) in one request, 100,000 by default; a body with more is answered ' +
        '413 and nothing of it is taken (counted as `too_many_events`). Accepted requests enter the pipeline ' +
        'in batches of at most 1,000 events, in order, and are answered once every batch is delivered.',
    ),
  max_nesting_depth: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(DEFAULT_MAX_NESTING_DEPTH)
    .describe(
      'Deepest JSON nesting of one event (the event object is level 1), 100 by default as in protobuf: a ' +
        'deeper event is answered 400 and counted as `nesting_too_deep`, since no sink could encode it.',
    ),
  max_pending_requests: z
    .number()
    .int()
    .positive()
    .default(512)
    .describe(
      'Most requests being read or waiting for their acknowledgement at once; more are answered 429 with ' +
        '`Retry-After` (the sender is ahead of the sinks).',
    ),
  backpressure_threshold: duration()
    .default(200)
    .describe(
      'Once a batch has waited this long for room in a full pipeline (`when_full: block`), new requests are ' +
        'answered 503 with `Retry-After` instead of queueing, until the pipeline takes batches again.',
    ),
  retry_after: duration()
    .default(1000)
    .describe('The `Retry-After` given with 429 and 503 answers (rounded up to whole seconds).'),
  max_connections: maxConnectionsOption(
    'http',
    'No HTTP answer (no 503): the client sees the connection closed or reset before any response ("socket hang ' +
      'up", ECONNRESET) and nothing was acknowledged, so it retries; a client that does not retry a failed POST ' +
      'loses that request.',
  ),
  ...httpConnectionOptions(),
  tls: tlsServerOption(),
});

export type HttpSourceOptions = z.infer<typeof options>;

export const httpSource = defineSource({
  kind: 'source',
  type: 'http',
  description:
    'Receives events by HTTP POST (NDJSON, JSON, or text lines; gzip), answering only once every sink has them.',
  options,
  example: [
    '# POST /logs with Content-Type application/x-ndjson (one JSON event per line), application/json (an array of',
    '# events or one event) or text/plain (one event per line, in `message`); Content-Encoding: gzip accepted.',
    '# Fields the sender sets win; the source adds what is missing: `timestamp` (receipt), `host` (the client',
    '# address), `source_type: http`, `_id` (`<Idempotency-Key>:<index>` when the request has that header).',
    '# Answers: 200 {"accepted": n} once every sink has the events; 503 + Retry-After if they could not be',
    '# delivered, or while the pipeline is full; 429 + Retry-After over max_pending_requests; 400 with the reason',
    '# for a malformed body or one nested deeper than max_nesting_depth (nothing of it',
    '# is taken); 413 over max_body_bytes, max_decoded_body_bytes or max_events_per_request; 401, 404, 405, 415 as usual.',
    'sources:',
    '  web_http:',
    '    type: http',
    '    address: 0.0.0.0:8080',
    '    path: /logs',
    '    auth: { strategy: bearer, token: "${FLUXO_HTTP_TOKEN}" }',
    '    tls: { crt_file: /etc/fluxo/server.crt, key_file: /etc/fluxo/server.key }',
  ].join('\n'),
  build: (opts, ctx) => new HttpSource(opts, ctx),
});
