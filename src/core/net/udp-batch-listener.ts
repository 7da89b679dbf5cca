import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { Event } from '../event.ts';
import type { LocalCounter } from '../metrics.ts';
import { formatEndpoint, type NetSourceBase, type NetTransport } from './net-source-base.ts';

/**
 * Datagrams held while the pipeline is blocked. UDP has no way to push back: past this, datagrams are dropped
 * and counted, exactly as the kernel would drop them from a full receive buffer.
 */
const UDP_BACKLOG_BYTES = 8 * 1024 * 1024;

export interface UdpBatchListenerOptions {
  receiveBufferBytes: number | undefined;
  /** Names the counters: `<prefix>_udp_datagrams_while_blocked_total`, `<prefix>_udp_datagrams_dropped_total`. */
  metricPrefix: string;
  /** Turns one datagram into events appended to `out`; false when it was set aside (dead-lettered) instead. */
  decode: (msg: Buffer, rinfo: RemoteInfo, out: Event[]) => boolean;
  /** Told of every datagram dropped because the backlog was full, with the bytes held. */
  onDropped?: (heldBytes: number) => void;
}

/**
 * The UDP side of a listening source, one idea: one batch in flight at a time, everything that arrives in one
 * event-loop turn goes out as one batch, and what arrives while a batch waits for the pipeline is held up to
 * 8 MiB, then dropped and counted. Shared by the socket and syslog sources, which differ only in how a datagram
 * becomes events.
 */
export class UdpBatchListener implements NetTransport {
  private readonly socket: Socket;
  private batch: Event[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private readonly whileBlocked: LocalCounter;
  private readonly dropped: LocalCounter;
  private readonly flushBound = () => this.flush();
  /** One batch in flight at a time; what arrives meanwhile waits in `batch`. */
  private emitting = false;
  private readonly onEmitSettled = () => {
    this.emitting = false;
    this.flush();
    this.source.settled();
  };

  constructor(
    private readonly source: NetSourceBase,
    private readonly options: UdpBatchListenerOptions,
  ) {
    const metrics = source.ctx.metrics;
    this.whileBlocked = metrics.counter(
      `${options.metricPrefix}_udp_datagrams_while_blocked_total`,
      'UDP datagrams that arrived while the previous batch waited for the pipeline (held, up to 8 MiB).',
    );
    this.dropped = metrics.counter(
      `${options.metricPrefix}_udp_datagrams_dropped_total`,
      'UDP datagrams dropped because the pipeline was blocked and 8 MiB were already held.',
    );
    this.socket = createSocket({
      type: source.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: options.receiveBufferBytes,
    });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(this.source.listenError(error));
      this.socket.once('error', onError);
      this.socket.bind({ address: this.source.host, port: this.source.port }, () => {
        this.socket.off('error', onError);
        this.socket.on('error', (error) => this.source.ctx.logger.error({ err: error.message }, 'udp socket error'));
        resolve();
      });
    });
  }

  endpoint(): string | undefined {
    try {
      return formatEndpoint('udp', this.socket.address());
    } catch {
      return undefined; // not bound
    }
  }

  /** Closes the socket, then emits what it held; the source waits for that emit with its idle(). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // never bound or already closed
      }
    });
    this.flush();
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.source.stopping) return;
    if (this.emitting) {
      this.whileBlocked.inc();
      if (this.batchBytes + msg.length > UDP_BACKLOG_BYTES) {
        this.dropped.inc();
        this.options.onDropped?.(this.batchBytes);
        return;
      }
    }
    if (!this.options.decode(msg, rinfo, this.batch)) return;
    this.batchBytes += msg.length;
    if (!this.flushScheduled && !this.emitting) {
      this.flushScheduled = true;
      // Everything that arrives in this event-loop turn goes out as one batch.
      setImmediate(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.emitting || this.batch.length === 0) return;
    const events = this.batch;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.emitting = true;
    this.source.emitTracked(events, bytes, this.onEmitSettled);
  }
}
