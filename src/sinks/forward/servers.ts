import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Logger } from 'pino';
import { FluxoError } from '../../core/errors.ts';
import { type ConnectSettings, ForwardClientConnection, openSocket } from './connection.ts';

export type HeartbeatType = 'tcp' | 'udp' | 'none';

export interface ServerSpec {
  settings: ConnectSettings;
  weight: number;
  standby: boolean;
}

export interface PoolOptions {
  heartbeat: HeartbeatType;
  heartbeatIntervalMs: number;
  /** With `heartbeat: none`, how long a failed server is skipped before it is tried again. */
  recoverWaitMs: number;
}

/** One destination: its connection (opened on demand, kept), its health and its weighted round-robin state. */
export class ForwardServer {
  readonly name: string;
  healthy = true;
  /** Smooth weighted round-robin counter. */
  current = 0;
  downSince = 0;
  lastHeartbeatReply = 0;
  private connection: ForwardClientConnection | undefined;
  private opening: Promise<ForwardClientConnection> | undefined;
  udp: UdpSocket | undefined;

  constructor(
    readonly spec: ServerSpec,
    private readonly logger: Logger,
  ) {
    this.name = `${spec.settings.host}:${spec.settings.port}`;
  }

  get weight(): number {
    return this.spec.weight;
  }

  get standby(): boolean {
    return this.spec.standby;
  }

  /** The open connection, or a new one (authenticated when a shared key is set). */
  async connect(signal: AbortSignal): Promise<ForwardClientConnection> {
    if (this.connection?.alive) return this.connection;
    this.opening ??= ForwardClientConnection.open(this.spec.settings, signal).finally(() => {
      this.opening = undefined;
    });
    this.connection = await this.opening;
    return this.connection;
  }

  markDown(reason: string): void {
    this.connection?.close(new FluxoError('FLUXO_FORWARD_CONNECTION', reason));
    this.connection = undefined;
    if (!this.healthy) return;
    this.healthy = false;
    this.downSince = Date.now();
    this.logger.warn({ server: this.name, reason }, `forward sink: server ${this.name} is down`);
  }

  markUp(how: string): void {
    if (this.healthy) return;
    this.healthy = true;
    this.logger.info({ server: this.name }, `forward sink: server ${this.name} is back (${how})`);
  }

  close(): void {
    this.connection?.close(new FluxoError('FLUXO_SINK_STOPPED', 'sink stopped'));
    this.connection = undefined;
    this.udp?.close();
    this.udp = undefined;
  }
}

/**
 * The servers of a forward sink: picks where the next write goes (smooth weighted round robin over the healthy
 * primaries; standby servers only when no primary is healthy) and keeps health current with heartbeats
 * (TCP/TLS connect, or a UDP datagram answered by the server, Fluentd's `heartbeat_type`).
 */
export class ServerPool {
  readonly servers: ForwardServer[];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    specs: ServerSpec[],
    private readonly options: PoolOptions,
    private readonly logger: Logger,
  ) {
    this.servers = specs.map((s) => new ForwardServer(s, logger));
  }

  start(): void {
    if (this.options.heartbeat === 'udp') for (const s of this.servers) this.openUdp(s);
    if (this.options.heartbeat !== 'none') {
      this.timer = setInterval(() => this.beat(), this.options.heartbeatIntervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const s of this.servers) s.close();
  }

  /** The next server for a write, skipping `exclude` (tried already in this write); undefined when none is up. */
  pick(exclude: ReadonlySet<ForwardServer>): ForwardServer | undefined {
    if (this.options.heartbeat === 'none') {
      const now = Date.now();
      for (const s of this.servers) {
        if (!s.healthy && now - s.downSince >= this.options.recoverWaitMs) s.markUp('recover_wait elapsed');
      }
    }
    return (
      this.weightedRoundRobin((s) => !s.standby && s.healthy && !exclude.has(s)) ??
      this.weightedRoundRobin((s) => s.standby && s.healthy && !exclude.has(s))
    );
  }

  /** nginx's smooth weighted round robin: spreads picks in proportion to weight without bursts. */
  private weightedRoundRobin(eligible: (s: ForwardServer) => boolean): ForwardServer | undefined {
    let best: ForwardServer | undefined;
    let total = 0;
    for (const s of this.servers) {
      if (!eligible(s) || s.weight <= 0) continue;
      s.current += s.weight;
      total += s.weight;
      if (best === undefined || s.current > best.current) best = s;
    }
    if (best) best.current -= total;
    return best;
  }

  private beat(): void {
    if (this.stopped) return;
    const interval = this.options.heartbeatIntervalMs;
    for (const s of this.servers) {
      if (this.options.heartbeat === 'tcp') {
        openSocket({ ...s.spec.settings, connectTimeoutMs: Math.max(interval, 1000) }).then(
          (socket) => {
            socket.destroy();
            if (!this.stopped) s.markUp('heartbeat');
          },
          (error: Error) => {
            if (!this.stopped) s.markDown(`heartbeat failed: ${error.message}`);
          },
        );
      } else if (s.udp) {
        // Down after three intervals without a reply, up again with the next reply.
        if (s.healthy && s.lastHeartbeatReply > 0 && Date.now() - s.lastHeartbeatReply > 3 * interval) {
          s.markDown('no UDP heartbeat reply for 3 intervals');
        }
        s.udp.send(HEARTBEAT, (error) => {
          if (error && !this.stopped) s.markDown(`UDP heartbeat failed: ${error.message}`);
        });
      }
    }
  }

  private openUdp(s: ForwardServer): void {
    const { host, port } = s.spec.settings;
    const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    udp.on('error', (error) => this.logger.debug({ server: s.name, err: error.message }, 'forward sink: UDP error'));
    udp.on('message', () => {
      s.lastHeartbeatReply = Date.now();
      s.markUp('UDP heartbeat');
    });
    udp.connect(port, host);
    udp.unref();
    s.udp = udp;
    s.lastHeartbeatReply = Date.now();
  }
}

const HEARTBEAT = Buffer.from([0]);
