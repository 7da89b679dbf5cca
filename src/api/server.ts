import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HttpAuthenticator } from '../codecs/http-auth.ts';
import { FluxoError } from '../core/errors.ts';
import type { Event } from '../core/event.ts';
import { splitAddress } from '../core/units.ts';

export interface ApiState {
  /** `starting`, `running`, `draining` or `stopped`; /health answers 200 only for `running`. */
  state(): string;
  metrics(): Promise<string>;
  /** Components and where they listen or write, for GET /. */
  describe(): unknown;
  /** Attaches a tap to a component (see Topology.tap); undefined for an unknown id. */
  tap?(id: string, listener: (events: readonly Event[], output: string) => void): (() => void) | undefined;
}

/**
 * The HTTP API (with api.auth, every request but /health needs its credentials): GET /health, GET /metrics (Prometheus text format), GET / (what runs), and
 * GET /tap?component=ID[&limit=N][&sample=K]: a live NDJSON stream of the component's events, every K-th
 * event up to N (default 100, at most 10,000). A tap never slows the pipeline: while the client is not
 * reading, events are skipped and the count of skipped events is reported at the end.
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
    const server = createServer((req, res) => {
      const [url, query] = (req.url ?? '/').split('?') as [string, string | undefined];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      if (this.auth && url !== '/health' && !this.auth.authorized(req.headers.authorization)) {
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
        this.serveTap(new URLSearchParams(query ?? ''), req, res);
      } else if (url === '/') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(`${JSON.stringify(this.state.describe(), null, 2)}\n`);
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
    const bound = server.address() as AddressInfo;
    return `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
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
      if (sent >= limit) finish();
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
