import type { RemoteInfo } from 'node:dgram';
import { OVERLONG_PREFIX_BYTES } from '../../codecs/lines.ts';
import type { SourceContext } from '../../core/component.ts';
import type { Event } from '../../core/event.ts';
import { UdpBatchListener } from '../../core/net/udp-batch-listener.ts';
import type { SyslogSourceOptions } from '../syslog.ts';
import { peerHost, SyslogSourceBase } from './common.ts';

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;

/**
 * Syslog over UDP (RFC 5426): one message per datagram, trailing `\n`, `\r\n` or NUL removed. Best-effort:
 * what arrives while the previous batch waits for the pipeline is held up to 8 MiB, then dropped and counted.
 */
export class SyslogUdpSource extends SyslogSourceBase {
  protected readonly transport: UdpBatchListener;
  private readonly one: string[] = [''];

  constructor(opts: SyslogSourceOptions, ctx: SourceContext) {
    super(opts, ctx);
    this.transport = new UdpBatchListener(this, {
      receiveBufferBytes: opts.receive_buffer_bytes,
      metricPrefix: 'fluxo_syslog',
      decode: (msg, rinfo, out) => this.decode(msg, rinfo, out),
      onDropped: (heldBytes) =>
        this.warn('udp_drop', { held_bytes: heldBytes }, 'pipeline blocked: UDP datagrams dropped'),
    });
  }

  private decode(msg: Buffer, rinfo: RemoteInfo, out: Event[]): boolean {
    const host = peerHost(rinfo.address);
    let end = msg.length;
    while (end > 0 && (msg[end - 1] === LF || msg[end - 1] === CR || msg[end - 1] === NUL)) end--;
    if (end > this.opts.max_message_bytes) {
      this.deadLetterOverlong(msg.toString('utf8', 0, OVERLONG_PREFIX_BYTES), end, host);
      return false;
    }
    this.one[0] = msg.toString('utf8', 0, end);
    this.appendEvents(this.one, host, out);
    return true;
  }
}
