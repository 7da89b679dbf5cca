import { connect, type Socket } from 'node:net';
import { encodeRelpFrame, RelpDecoder, type RelpFrame } from '../../src/codecs/relp.ts';

/** A hand-written RELP client, as librelp speaks it: `open` first, then numbered commands. */
export class RelpTestClient {
  readonly frames: RelpFrame[] = [];
  closed = false;
  private txnr = 0;
  private readonly decoder = new RelpDecoder({ maxDataBytes: 1 << 20 });
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      const error = this.decoder.push(chunk, this.frames);
      if (error) throw new Error(`server sent a malformed frame: ${error}`);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RelpTestClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RelpTestClient(socket);
  }

  /** Sends `open` and waits for its answer. */
  async open(): Promise<RelpFrame> {
    const txnr = this.send('open', 'relp_version=0\nrelp_software=test\ncommands=syslog');
    return this.response(txnr);
  }

  /** The bytes of the next frame (its txnr taken), without sending it. */
  frame(command: string, data = ''): { txnr: number; bytes: Buffer } {
    this.txnr++;
    return { txnr: this.txnr, bytes: encodeRelpFrame(this.txnr, command, data) };
  }

  send(command: string, data = ''): number {
    const { txnr, bytes } = this.frame(command, data);
    this.socket.write(bytes);
    return txnr;
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** The answer to `txnr`; rejects when the connection closes first. */
  async response(txnr: number, timeoutMs = 10_000): Promise<RelpFrame> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find((f) => f.command === 'rsp' && f.txnr === txnr);
      if (found) return found;
      if (this.closed) throw new Error(`connection closed before the answer to ${txnr}`);
      if (Date.now() > end) throw new Error(`no answer to ${txnr} within ${timeoutMs} ms`);
      await this.next(end - Date.now());
    }
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > end) throw new Error(`connection still open after ${timeoutMs} ms`);
      await this.next(end - Date.now());
    }
  }

  answers(): { txnr: number; text: string }[] {
    return this.frames.filter((f) => f.command === 'rsp').map((f) => ({ txnr: f.txnr, text: f.data.toString() }));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, ms));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
