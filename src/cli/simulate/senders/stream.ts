import { connect, type Socket } from 'node:net';
import { nodeTls } from '../../../core/net/builtins.ts';
import type { LineBatch, SenderOptions, SimulatedServer } from '../sender.ts';
import type { SimulationStats } from '../stats.ts';
import { tlsClientOptions } from './common.ts';

/** How long a server waits before reconnecting after its connection failed or closed. */
const RECONNECT_MS = 500;

/** Turns one batch of lines into the bytes of one write (framing, syslog header…). */
export type StreamEncoder = (batch: LineBatch, server: string) => string;

/**
 * A web server's log shipper over one TCP (or TLS, with --tls) connection without acknowledgements (plain lines,
 * syslog): writes in order, waits for `drain` when the target stops reading, reconnects after a failure. "Sent" means handed
 * to the kernel; what a connection reset loses at that point is invisible to the sender, as with rsyslog's
 * plain TCP forwarding, which is what --verify is for.
 */
export class StreamServer implements SimulatedServer {
  private socket: Socket | undefined;
  private connected = false;
  private blocked = false;
  private closing = false;
  private readonly queue: LineBatch[] = [];
  private queued = 0;
  /** Writes handed to the socket whose callback has not run yet. */
  private unflushed = 0;
  private idleWaiters: (() => void)[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Names the transport in error counts: `tcp ECONNREFUSED`, `tls DEPTH_ZERO_SELF_SIGNED_CERT`. */
  private readonly transport: string;

  constructor(
    private readonly options: SenderOptions,
    private readonly stats: SimulationStats,
    readonly name: string,
    private readonly encode: StreamEncoder,
  ) {
    this.transport = options.tls ? 'tls' : 'tcp';
  }

  get backlog(): number {
    return this.queued;
  }

  /** Resolves once connected, or once the first attempt failed (it then retries in the background). */
  connect(): Promise<void> {
    return new Promise((resolve) => {
      const tls = this.options.tls !== undefined;
      const socket = tls
        ? nodeTls().connect(tlsClientOptions(this.options))
        : connect({ host: this.options.host, port: this.options.port });
      this.socket = socket;
      socket.setNoDelay(true);
      // Over TLS, what is written before the handshake completes would wait in the TLS layer, not in our queue.
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        this.connected = true;
        this.blocked = false;
        resolve();
        this.pump();
      });
      socket.on('drain', () => {
        this.blocked = false;
        this.pump();
      });
      socket.on('error', (error: NodeJS.ErrnoException) => {
        this.stats.error(`${this.transport} ${error.code ?? error.message}`);
      });
      socket.once('close', () => {
        const wasConnected = this.connected;
        this.connected = false;
        resolve();
        if (wasConnected && !this.closing) this.stats.error(`${this.transport} connection closed by the target`);
        if (this.closing && this.queued === 0) return this.wakeIdle();
        this.reconnectTimer = setTimeout(() => {
          this.reconnectTimer = undefined;
          void this.connect();
        }, RECONNECT_MS);
      });
    });
  }

  send(batch: LineBatch): void {
    if (batch.lines.length === 0) return;
    this.queue.push(batch);
    this.queued += batch.lines.length;
    this.pump();
  }

  private pump(): void {
    const socket = this.socket;
    while (this.connected && !this.blocked && this.queue.length > 0 && socket !== undefined) {
      const batch = this.queue.shift()!;
      const n = batch.lines.length;
      this.queued -= n;
      this.unflushed++;
      const ok = socket.write(this.encode(batch, this.name), (error) => {
        if (!error) this.stats.sent(n, batch.at);
        if (--this.unflushed === 0 && this.queued === 0) this.wakeIdle();
      });
      if (!ok) this.blocked = true;
    }
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    this.pump();
    if (this.queued > 0 || this.unflushed > 0) {
      await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), sleepUntil(deadline)]);
    }
    clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return;
    await Promise.race([
      new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.end();
      }),
      sleepUntil(deadline),
    ]);
    socket.destroy();
  }

  private wakeIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function sleepUntil(deadline: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref());
}
