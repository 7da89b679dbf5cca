import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import {
  decodeServerMessage,
  EventTime,
  encodePackedForward,
  MsgpackScanner,
  packEntries,
} from '../../../codecs/forward.ts';
import { nodeTls } from '../../../core/net/builtins.ts';
import type { SenderFactory, SenderOptions } from '../sender.ts';
import type { SimulationStats } from '../stats.ts';
import { BatchingSender, tlsClientOptions } from './common.ts';

/** Lines per chunk at most (~2.5 MB of access-log records). */
const MAX_LINES_PER_CHUNK = 10_000;
const RECONNECT_MS = 1000;
/** Fluent Bit waits this long for an ack before it considers the chunk lost and resends it. */
const ACK_TIMEOUT_MS = 30_000;

/**
 * A Fluent Bit `forward` output per web server (`Require_ack_response On`): it buffers lines and sends them every
 * flush interval as one PackedForward chunk with a `chunk` id, on its own connection, one chunk at a time. A chunk
 * is done when its ack comes; a closed connection or an ack timeout resends the same chunk (same id, so the
 * target derives the same event ids) after reconnecting. --gzip sends CompressedPackedForward chunks (Fluent Bit's
 * `Compress gzip`), --tls connects with TLS.
 */
export const forwardSender: SenderFactory = (options, stats) => ({
  acknowledgement: 'forward ack',
  async connect(index, name) {
    return new ForwardServer(options, stats, index, name);
  },
});

interface InFlight {
  frame: Buffer;
  chunk: string;
  lines: number;
  firstSentAt: number;
}

class ForwardServer extends BatchingSender<InFlight> {
  private socket: Socket | undefined;
  private connecting = false;
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(
    options: SenderOptions,
    stats: SimulationStats,
    index: number,
    private readonly name: string,
  ) {
    super(options, stats, index, MAX_LINES_PER_CHUNK);
  }

  protected take(): InFlight {
    const entries: unknown[] = [];
    let lines = 0;
    while (this.queue.length > 0 && lines < MAX_LINES_PER_CHUNK) {
      const batch = this.queue[0]!;
      const take = batch.lines.length <= MAX_LINES_PER_CHUNK - lines ? batch.lines.length : MAX_LINES_PER_CHUNK - lines;
      const time = EventTime.fromMs(batch.at);
      for (const line of take === batch.lines.length ? batch.lines : batch.lines.slice(0, take)) {
        entries.push([time, { message: line, host: this.name }]);
      }
      if (take === batch.lines.length) this.queue.shift();
      else batch.lines.splice(0, take);
      lines += take;
      this.stats.sent(take, batch.at);
    }
    this.queued -= lines;
    const chunk = randomBytes(16).toString('base64');
    const packed = packEntries(entries);
    const gzip = this.options.gzip === true;
    const frame = encodePackedForward('web.access', gzip ? gzipSync(packed) : packed, entries.length, chunk, gzip);
    return { frame, chunk, lines, firstSentAt: Date.now() };
  }

  protected attempt(): void {
    if (this.destroyed || this.inFlight === undefined) return;
    if (this.socket === undefined) {
      this.open();
      return;
    }
    this.socket.write(this.inFlight.frame);
    clearTimeout(this.ackTimer);
    this.ackTimer = setTimeout(() => {
      this.stats.error('no forward ack within 30 s (resent)');
      this.socket?.destroy();
    }, ACK_TIMEOUT_MS);
  }

  private open(): void {
    if (this.connecting || this.destroyed) return;
    this.connecting = true;
    const tls = this.options.tls !== undefined;
    const socket = tls
      ? nodeTls().connect(tlsClientOptions(this.options))
      : connect({ host: this.options.host, port: this.options.port });
    const scanner = new MsgpackScanner(64 * 1024, 'any');
    let pending: Buffer | undefined;
    socket.setNoDelay(true);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      this.connecting = false;
      this.socket = socket;
      this.attempt();
    });
    socket.on('data', (d: Buffer) => {
      const data = pending ? Buffer.concat([pending, d]) : d;
      let start = 0;
      try {
        for (let end = scanner.scan(data, 0, data.length); end >= 0; end = scanner.scan(data, start, data.length)) {
          const reply = decodeServerMessage(data.subarray(start, end));
          start = end;
          if (reply.kind === 'ack') this.onAck(reply.chunk);
        }
      } catch (error) {
        this.stats.error(`forward ${(error as Error).message}`);
        socket.destroy();
        return;
      }
      pending = start < data.length ? data.subarray(start) : undefined;
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (!this.destroyed) this.stats.error(`forward ${error.code ?? error.message} (retried)`);
    });
    socket.on('close', () => {
      this.connecting = false;
      if (this.socket === socket) this.socket = undefined;
      clearTimeout(this.ackTimer);
      if (!this.destroyed && this.inFlight !== undefined) {
        this.stats.error('connection closed before the ack (resent)');
        setTimeout(() => this.attempt(), RECONNECT_MS);
      }
    });
  }

  private onAck(chunk: string): void {
    const r = this.inFlight;
    if (r === undefined || r.chunk !== chunk) return;
    clearTimeout(this.ackTimer);
    this.stats.acknowledged(r.lines, r.firstSentAt);
    this.done();
  }

  protected release(): void {
    clearTimeout(this.ackTimer);
    this.socket?.destroy();
  }
}
