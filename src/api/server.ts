import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { splitAddress } from '../core/units.ts';

export interface ApiState {
  /** `starting`, `running`, `draining` or `stopped`; /health answers 200 only for `running`. */
  state(): string;
  metrics(): Promise<string>;
  /** Components and where they listen or write, for GET /. */
  describe(): unknown;
}

/** The HTTP API: GET /health, GET /metrics (Prometheus text format), GET / (what runs). */
export class ApiServer {
  private server: Server | undefined;

  constructor(
    private readonly address: string,
    private readonly state: ApiState,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
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
        reject(new Error(`API cannot listen on ${this.address}: ${error.code ?? error.message}${hint}`));
      });
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const bound = server.address() as AddressInfo;
    return `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
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
