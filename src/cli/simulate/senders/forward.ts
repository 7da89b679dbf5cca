import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import {
  decodeServerMessage,
  EventTime,
  encodePackedForward,
  MsgpackScanner,
  packEntries,
} from '../../../codecs/forward.ts';
import type { LineBatch, SenderFactory, SenderOptions, SimulatedServer } from '../sender.ts';
import type { SimulationStats } from '../stats.ts';

/** Lines per chunk at most (~2.5 MB of access-log records). */
const MAX_LINES_PER_CHUNK = 10_000;
const RECONNECT_MS = 1000;
/** Fluent Bit waits this long for an ack before it considers the chunk lost and resends it. */
const ACK_TIMEOUT_MS = 30_000;

/**
 * A Fluent Bit `forward` output per web server (`Require_ack_response On`): it buffers lines and sends them every
 * flush interval as one PackedForward chunk with a `chunk` id, on its own connection, one chunk at a time. A chunk
 * is done when its ack comes; a closed connection or an ack timeout resends the same chunk (same id, so the
 * target derives the same event ids) after reconnecting.
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

class ForwardServer implements SimulatedServer {
  private readonly queue: LineBatch[] = [];
  private queued = 0;
  private inFlight: InFlight | undefined;
  private socket: Socket | undefined;
  private connecting = false;
  private ackTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private destroyed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: SenderOptions,
    private readonly stats: SimulationStats,
    index: number,
    private readonly name: string,
  ) {
    const phase = Math.floor((index / options.servers) * options.flushIntervalMs);
    this.timer = setTimeout(() => this.tick(), phase);
  }

  get backlog(): number {
    return this.queued;
  }

  send(batch: LineBatch): void {
    if (batch.lines.length === 0) return;
    this.queue.push(batch);
    this.queued += batch.lines.length;
  }

  private tick(): void {
    this.flush();
    if (!this.closing) this.timer = setTimeout(() => this.tick(), this.options.flushIntervalMs);
  }

  private flush(): void {
    if (this.inFlight !== undefined) return;
    if (this.queue.length === 0) {
      if (this.closing) this.wakeIdle();
      return;
    }
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
    const frame = encodePackedForward('web.access', packEntries(entries), entries.length, chunk, false);
    this.inFlight = { frame, chunk, lines, firstSentAt: Date.now() };
    this.attempt();
  }

  private attempt(): void {
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
    const socket = connect({ host: this.options.host, port: this.options.port });
    const scanner = new MsgpackScanner(64 * 1024, 'any');
    let pending: Buffer | undefined;
    socket.setNoDelay(true);
    socket.once('connect', () => {
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
    this.inFlight = undefined;
    if (this.closing || this.queued >= MAX_LINES_PER_CHUNK) this.flush();
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    this.flush();
    if (this.inFlight !== undefined || this.queue.length > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
      ]);
    }
    this.destroyed = true;
    clearTimeout(this.ackTimer);
    this.socket?.destroy();
  }

  private wakeIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
