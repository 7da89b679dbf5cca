import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HttpAuthenticator } from '../codecs/http-auth.ts';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { nodeHttp } from '../core/net/builtins.ts';
import { splitAddress } from '../core/units.ts';
import { DASHBOARD_CSS } from './dashboard/css.ts';
import { DASHBOARD_HTML, unauthorizedPage } from './dashboard/html.ts';
import { DASHBOARD_JS } from './dashboard/script.ts';
import type { PipelineTelemetry } from './telemetry.ts';

export interface ApiState {
  /** `starting`, `running`, `draining` or `stopped`; /health answers 200 only for `running`. */
  state(): string;
  metrics(): Promise<string>;
  /** Components and where they listen or write, for GET /. */
  describe(): unknown;
  /** Attaches a tap to a component (see Topology.tap); undefined for an unknown id. */
  tap?(id: string, listener: (events: readonly Event[], output: string) => void): (() => void) | undefined;
  /** Rates, buffers and history for the dashboard, /api/snapshot, /api/history and /api/events. */
  telemetry?: PipelineTelemetry;
  /** The running config with its secrets redacted, for GET /api/config. */
  config?(): unknown;
}

/** The cookie the dashboard keeps a bearer token in after `/?token=…` (HttpOnly: page scripts never see it). */
export const TOKEN_COOKIE = 'fluxo_token';

const SECURITY_HEADERS = {
  // Events shown by the tap view are untrusted text: no inline script, nothing from elsewhere.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/**
 * The HTTP API (with api.auth, every request but /health needs its credentials): GET /health, GET /metrics
 * (Prometheus text format), GET / (the dashboard for a browser, what runs as JSON otherwise; also at
 * /api/topology), GET /api/snapshot, /api/history, /api/config (secrets redacted), GET /api/events (Server-Sent
 * Events: one snapshot per second), and GET /tap?component=ID[&limit=N][&sample=K]: a live NDJSON stream of the
 * component's events, every K-th event up to N (default 100, at most 10,000). A tap never slows the pipeline:
 * while the client is not reading, events are skipped and the count of skipped events is reported at the end.
 *
 * With a bearer token, a browser opens `/?token=TOKEN` once: the answer sets an HttpOnly cookie and redirects to
 * `/`, so the token leaves the address bar and every later request (the page's fetches, its event stream) carries
 * the cookie. With basic auth the browser asks for the user and password itself.
 */
export class ApiServer {
  private server: Server | undefined;

  constructor(
    private readonly address: string,
    private readonly state: ApiState,
    private readonly logger: Logger,
    /** Credentials every request but GET /health must carry (api.auth); undefined: none (loopback). */
    private readonly auth?: HttpAuthenticator,
  ) {}

  async start(): Promise<string> {
    const server = nodeHttp().createServer((req, res) => {
      const [url, query] = (req.url ?? '/').split('?') as [string, string | undefined];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      const params = new URLSearchParams(query ?? '');
      if (this.auth && url !== '/health' && !this.authorized(req)) {
        const token = params.get('token');
        if (token !== null && this.auth.authorized(`Bearer ${token}`)) {
          params.delete('token');
          const rest = params.toString();
          res
            .writeHead(303, {
              location: `${url}${rest ? `?${rest}` : ''}`,
              'set-cookie': `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
              'cache-control': 'no-store',
            })
            .end();
          return;
        }
        if (wantsHtml(req) && url === '/') {
          res
            .writeHead(401, { 'www-authenticate': this.auth.challenge, 'content-type': 'text/html; charset=utf-8' })
            .end(unauthorizedPage(this.auth.challenge.startsWith('Bearer')));
          return;
        }
        res
          .writeHead(401, { 'www-authenticate': this.auth.challenge, 'content-type': 'text/plain' })
          .end('unauthorized: this API needs the credentials of api.auth\n');
        return;
      }
      if (url === '/health') {
        const state = this.state.state();
        res
          .writeHead(state === 'running' ? 200 : 503, { 'content-type': 'application/json' })
          .end(`${JSON.stringify({ status: state })}\n`);
      } else if (url === '/metrics') {
        this.state.metrics().then(
          (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
          (error: Error) => {
            this.logger.error({ err: error.message }, 'metrics collection failed');
            res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
          },
        );
      } else if (url === '/tap') {
        this.serveTap(params, req, res);
      } else if (url === '/' && wantsHtml(req)) {
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' }).end(DASHBOARD_HTML);
      } else if (url === '/' || url === '/api/topology') {
        json(res, this.state.describe());
      } else if (url === '/dashboard.js') {
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/javascript; charset=utf-8' }).end(DASHBOARD_JS);
      } else if (url === '/dashboard.css') {
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/css; charset=utf-8' }).end(DASHBOARD_CSS);
      } else if (url === '/api/config' && this.state.config) {
        json(res, this.state.config());
      } else if (url === '/api/history' && this.state.telemetry) {
        json(res, { interval_ms: this.state.telemetry.intervalMs, ...this.state.telemetry.history.dump() });
      } else if (url === '/api/snapshot' && this.state.telemetry) {
        this.state.telemetry.latest().then(
          (snapshot) => json(res, snapshot),
          (error: Error) => {
            this.logger.error({ err: error.message }, 'snapshot failed');
            res.writeHead(500, { 'content-type': 'text/plain' }).end('snapshot failed\n');
          },
        );
      } else if (url === '/api/events' && this.state.telemetry) {
        this.serveEvents(this.state.telemetry, req, res);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /health or /metrics\n');
      }
    });
    server.keepAliveTimeout = 5_000;
    const { host, port } = splitAddress(this.address);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        const hint =
          error.code === 'EADDRINUSE' ? ' (another Fluxo running? set api.address or api.enabled: false)' : '';
        reject(
          new FluxoError(
            'FLUXO_API_LISTEN',
            `API cannot listen on ${this.address}: ${error.code ?? error.message}${hint}`,
            { cause: error },
          ),
        );
      });
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.state.telemetry?.start();
    const bound = server.address() as AddressInfo;
    return `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  }

  private authorized(req: IncomingMessage): boolean {
    const auth = this.auth!;
    if (auth.authorized(req.headers.authorization)) return true;
    const token = cookie(req.headers.cookie, TOKEN_COOKIE);
    return token !== undefined && auth.authorized(`Bearer ${token}`);
  }

  /** One `snapshot` event now and one per sample; a viewer that does not read skips samples, never queues them. */
  private serveEvents(telemetry: PipelineTelemetry, req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n\n`);
    const send = (json: string) => {
      if (!res.writableNeedDrain) res.write(`event: snapshot\ndata: ${json}\n\n`);
    };
    telemetry.latest().then(
      (snapshot) => {
        if (!res.writableEnded) send(JSON.stringify(snapshot));
      },
      () => {},
    );
    const remove = telemetry.subscribe((_snapshot, json) => send(json));
    req.on('close', remove);
  }

  private serveTap(params: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const id = params.get('component') ?? '';
    const limit = clampInt(params.get('limit'), 100, 1, 10_000);
    const sample = clampInt(params.get('sample'), 1, 1, 1_000_000);
    let seen = 0;
    let sent = 0;
    let skipped = 0;
    let remove: (() => void) | undefined;
    const finish = () => {
      remove?.();
      remove = undefined;
      if (!res.writableEnded) res.end(`${JSON.stringify({ tap_end: true, component: id, sent, skipped })}\n`);
    };
    remove = this.state.tap?.(id, (events, output) => {
      for (const event of events) {
        if (sent >= limit) break;
        if (seen++ % sample !== 0) continue;
        if (res.writableNeedDrain) {
          skipped++;
          continue;
        }
        res.write(`${JSON.stringify({ component: id, output, event })}\n`);
        sent++;
      }
      // Not synchronously: removing a tap while the outlet iterates its taps would skip the next viewer's turn.
      if (sent >= limit) queueMicrotask(finish);
    });
    if (!remove) {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(`no component "${id}": see GET / for the running components\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    req.on('close', finish);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.state.telemetry?.stop();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

function clampInt(value: string | null, fallback: number, min: number, max: number): number {
  const n = value === null ? fallback : Number.parseInt(value, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function json(res: ServerResponse, value: unknown): void {
  res
    .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(`${JSON.stringify(value, null, 2)}\n`);
}

/** A browser asking for a page (Accept: text/html), not a client asking for JSON or anything (curl, fetch). */
function wantsHtml(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('text/html') && !accept.startsWith('application/json');
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
