import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

/**
 * How a protocol-aware test tells the requests in a client's byte stream apart: a chunk that begins a write
 * (`attempt`), one that begins anything else (`other`), or one that continues the request before it (undefined).
 */
export type RequestKind = (chunk: Buffer) => 'attempt' | 'other' | undefined;

export interface TcpProxyOptions {
  /** Connect upstream as soon as a client connects, for protocols where the server speaks first (NATS's INFO). */
  serverSpeaksFirst?: boolean;
  /** Records the writes (see `writes()`) and lets `dropNextAttempt()` cut one, on any connection. */
  requestKind?: RequestKind;
  /**
   * Each chunk of the server's answers waits for this before it goes on to the client, in order: e.g. a round
   * trip on another connection of the test, which then has seen what the server sent it before that answer.
   */
  answerAfter?: () => Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, to put faults between a client and it: hold the
 * server's answers (stall), drop a connection after it sent its request (a failed attempt), close a client
 * once the server answered the first time, or stop listening (down) and listen again on the same port (up).
 * Records the bytes each client connection sent.
 */
export class TcpProxy {
  /** Bytes each client connection sent, in connection order (connections that sent nothing are left out). */
  readonly sent: Buffer[][] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private held: (() => void)[] = [];
  private stalled = false;
  private stallTrigger: ((chunk: Buffer) => boolean) | undefined;
  private dropNext = false;
  private closeAfterFirstAnswer: number | undefined;
  private readonly attemptParts: Buffer[][] = [];
  private dropAttempt = false;
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly options: TcpProxyOptions = {},
  ) {}

  /** With `requestKind`: the bytes of each write, in the order they began, whichever connection carried it. */
  writes(): Buffer[] {
    return this.attemptParts.map((parts) => Buffer.concat(parts));
  }

  /** With `requestKind`: the next write gets no answer and its connection is closed once its bytes arrived. */
  dropNextAttempt(): void {
    this.dropAttempt = true;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Byte streams of the connections that sent something, each joined. */
  attempts(): Buffer[] {
    return this.sent.filter((parts) => parts.length > 0).map((parts) => Buffer.concat(parts));
  }

  async up(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Holds every answer of the server until resume(). */
  stall(): void {
    this.stalled = true;
  }

  /** True while the server's answers are held. */
  get stalling(): boolean {
    return this.stalled;
  }

  /** Stalls (as stall()) from the first client chunk that `match` accepts on; resume() ends it. */
  stallWhenClientSends(match: (chunk: Buffer) => boolean): void {
    this.stallTrigger = match;
  }

  resume(): void {
    this.stallTrigger = undefined;
    this.stalled = false;
    for (const release of this.held.splice(0)) release();
  }

  /** The next connection that sends something gets no answer: it is closed once its bytes stop arriving. */
  dropNextRequest(): void {
    this.dropNext = true;
  }

  /** The next connection is closed once `bytes` bytes of the server's answers passed through (the rest is cut). */
  closeAfterServerBytes(bytes: number): void {
    this.closeAfterFirstAnswer = bytes;
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    const parts: Buffer[] = [];
    this.sent.push(parts);
    client.on('error', () => {});
    client.on('close', () => this.sockets.delete(client));
    let dropping = false;
    let upstream: Socket | undefined;
    let answerBudget: number | undefined;
    // With answerAfter: the server's chunks to this client, one after the other.
    let answers: Promise<void> = Promise.resolve();
    const open = () => {
      if (this.closeAfterFirstAnswer !== undefined) {
        answerBudget = this.closeAfterFirstAnswer;
        this.closeAfterFirstAnswer = undefined;
      }
      const up = connect(this.target.port, this.target.host);
      this.sockets.add(up);
      up.on('error', () => client.destroy());
      up.on('close', () => client.destroy());
      client.on('close', () => up.destroy());
      up.on('data', (data: Buffer) => {
        const pass = () => {
          if (client.destroyed) return;
          if (answerBudget === undefined) {
            client.write(data);
            return;
          }
          client.write(data.subarray(0, answerBudget));
          answerBudget -= Math.min(answerBudget, data.length);
          if (answerBudget === 0) {
            client.destroy();
            up.destroy();
          }
        };
        const forward = () => {
          if (this.stalled) this.held.push(pass);
          else pass();
        };
        const barrier = this.options.answerAfter;
        if (barrier === undefined) forward();
        else answers = answers.then(barrier).then(forward, forward);
      });
      return up;
    };
    if (this.options.serverSpeaksFirst) upstream = open();
    let write: Buffer[] | undefined;
    client.on('data', (data: Buffer) => {
      parts.push(data);
      if (this.stallTrigger?.(data)) {
        this.stallTrigger = undefined;
        this.stalled = true;
      }
      if (parts.length === 1 && this.dropNext) {
        this.dropNext = false;
        dropping = true;
      }
      const kind = this.options.requestKind?.(data);
      if (kind === 'attempt') {
        write = [];
        this.attemptParts.push(write);
        if (this.dropAttempt) {
          this.dropAttempt = false;
          dropping = true;
        }
      } else if (kind === 'other') {
        write = undefined;
      }
      write?.push(Buffer.from(data));
      if (dropping) {
        // Let the whole request arrive, then hang up without an answer.
        setTimeout(() => client.destroy(), 50);
        return;
      }
      upstream ??= open();
      upstream.write(data);
    });
  }
}

/** Starts a proxy listening in front of `target`. */
export async function startProxy(
  t: { after: (fn: () => Promise<void>) => void },
  target: { host: string; port: number },
  options: TcpProxyOptions = {},
): Promise<TcpProxy> {
  const proxy = new TcpProxy(target, options);
  await proxy.up();
  t.after(() => proxy.down());
  return proxy;
}
