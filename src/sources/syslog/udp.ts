import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { OVERLONG_PREFIX_BYTES } from '../../codecs/lines.ts';
import type { SourceContext } from '../../core/component.ts';
import type { Event } from '../../core/event.ts';
import type { SyslogSourceOptions } from '../syslog.ts';
import { formatEndpoint, peerHost, SyslogSourceBase } from './common.ts';

/**
 * Datagrams held while the pipeline is blocked. UDP has no way to push back: past this, datagrams are dropped
 * and counted, exactly as the kernel would drop them from a full receive buffer.
 */
const UDP_BACKLOG_BYTES = 8 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;

/**
 * Syslog over UDP (RFC 5426): one message per datagram, trailing `\n`, `\r\n` or NUL removed. Best-effort:
 * what arrives while the previous batch waits for the pipeline is held up to 8 MiB, then dropped and counted.
 */
export class SyslogUdpSource extends SyslogSourceBase {
  private readonly socket: Socket;
  private batch: Event[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private readonly whileBlocked;
  private readonly dropped;
  private readonly flushBound = () => this.flush();
  /** One batch in flight at a time; what arrives meanwhile waits in `batch`. */
  private emitting = false;
  private readonly onEmitSettled = () => {
    this.emitting = false;
    this.flush();
    this.settled();
  };
  private readonly one: string[] = [''];

  constructor(opts: SyslogSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    this.whileBlocked = ctx.metrics.counter(
      'fluxo_syslog_udp_datagrams_while_blocked_total',
      'UDP datagrams that arrived while the previous batch waited for the pipeline (held, up to 8 MiB).',
    );
    this.dropped = ctx.metrics.counter(
      'fluxo_syslog_udp_datagrams_dropped_total',
      'UDP datagrams dropped because the pipeline was blocked and 8 MiB were already held.',
    );
    this.socket = createSocket({
      type: this.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: opts.receive_buffer_bytes,
    });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(this.listenError(error));
      this.socket.once('error', onError);
      this.socket.bind({ address: this.host, port: this.port }, () => {
        this.socket.off('error', onError);
        this.socket.on('error', (error) => this.ctx.logger.error({ err: error.message }, 'udp socket error'));
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

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      await new Promise<void>((resolve) => {
        try {
          this.socket.close(() => resolve());
        } catch {
          resolve(); // never bound or already closed
        }
      });
      this.flush();
    }
    await this.idle();
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.stopping) return;
    if (this.emitting) {
      this.whileBlocked.inc();
      if (this.batchBytes + msg.length > UDP_BACKLOG_BYTES) {
        this.dropped.inc();
        this.warn('udp_drop', { held_bytes: this.batchBytes }, 'pipeline blocked: UDP datagrams dropped');
        return;
      }
    }
    const host = peerHost(rinfo.address);
    let end = msg.length;
    while (end > 0 && (msg[end - 1] === LF || msg[end - 1] === CR || msg[end - 1] === NUL)) end--;
    if (end > this.opts.max_message_bytes) {
      this.deadLetterOverlong(msg.toString('utf8', 0, OVERLONG_PREFIX_BYTES), end, host);
      return;
    }
    this.one[0] = msg.toString('utf8', 0, end);
    this.appendEvents(this.one, host, this.batch);
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
    this.emitTracked(events, bytes, this.onEmitSettled);
  }
}
