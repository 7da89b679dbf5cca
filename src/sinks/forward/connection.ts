import { randomBytes } from 'node:crypto';
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import {
  decodeServerMessage,
  digestsEqual,
  encodePing,
  ForwardProtocolError,
  MsgpackScanner,
  passwordDigest,
  type ServerMessage,
  sharedKeyDigest,
} from '../../codecs/forward.ts';
import { FluxoError, RetryableError } from '../../core/errors.ts';
import { nodeTls } from '../../core/net/builtins.ts';

export interface ClientAuth {
  sharedKey: string;
  /** Our name in PING (Fluentd's self_hostname). */
  hostname: string;
  username: string;
  password: string;
}

export interface ConnectSettings {
  host: string;
  port: number;
  /** TLS client options, or undefined for plain TCP. */
  tls: ConnectionOptions | undefined;
  auth: ClientAuth | undefined;
  connectTimeoutMs: number;
}

/** Server replies are small (acks, HELO, PONG); anything larger is not a forward server. */
const MAX_REPLY_BYTES = 64 * 1024;

/** Opens a TCP or TLS socket; resolves once connected (TLS: handshake done), rejects after the timeout. */
export function openSocket(settings: ConnectSettings, signal?: AbortSignal): Promise<Socket> {
  const { host, port, tls, connectTimeoutMs } = settings;
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? nodeTls().connect({ ...tls, host, port, servername: isIP(host) ? undefined : host })
      : tcpConnect({ host, port });
    const done = (error?: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', done);
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        resolve(socket);
      }
    };
    const onAbort = () =>
      done(signal!.reason instanceof Error ? signal!.reason : new FluxoError('FLUXO_FORWARD_CONNECTION', 'aborted'));
    const timer = setTimeout(
      () => done(new FluxoError('FLUXO_FORWARD_CONNECTION', `connect timed out after ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', done);
    socket.once(tls ? 'secureConnect' : 'connect', () => done());
  });
}

interface AckWaiter {
  onAck: () => void;
}

/**
 * A connection to one forward server: authenticates when a shared key is set (HELO → PING → PONG), sends
 * messages, and matches the server's `{ack: chunk}` replies to what is waiting for them.
 */
export class ForwardClientConnection {
  private readonly waiters = new Map<string, AckWaiter>();
  private readonly failures = new Set<(error: Error) => void>();
  private readonly scanner = new MsgpackScanner(MAX_REPLY_BYTES, 'any');
  private pending: Buffer | undefined;
  private handshake: ((message: ServerMessage) => void) | undefined;
  private closedError: Error | undefined;

  private constructor(
    readonly socket: Socket,
    readonly name: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.close(error));
    socket.on('close', () => this.close(new FluxoError('FLUXO_FORWARD_CONNECTION', 'connection closed by the server')));
    socket.on('end', () => this.close(new FluxoError('FLUXO_FORWARD_CONNECTION', 'connection closed by the server')));
  }

  static async open(settings: ConnectSettings, signal?: AbortSignal): Promise<ForwardClientConnection> {
    const name = `${settings.host}:${settings.port}`;
    let socket: Socket;
    try {
      socket = await openSocket(settings, signal);
    } catch (error) {
      throw new RetryableError(`cannot connect to forward server ${name}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const conn = new ForwardClientConnection(socket, name);
    if (settings.auth) {
      try {
        await conn.authenticate(settings.auth, settings.connectTimeoutMs);
      } catch (error) {
        conn.close(error as Error);
        throw error;
      }
    }
    return conn;
  }

  get alive(): boolean {
    return this.closedError === undefined;
  }

  /**
   * Writes `frames` and resolves once every chunk in `chunks` was acknowledged; `onAck(i)` runs as chunk i is.
   * Rejects with a RetryableError on timeout or when the connection closes; the caller then drops this connection.
   */
  send(
    frames: Buffer[],
    chunks: string[],
    onAck: (index: number) => void,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      let left = chunks.length;
      const finish = (error?: Error) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.failures.delete(finish);
        for (const chunk of chunks) this.waiters.delete(chunk);
        if (error) reject(error);
        else resolve();
      };
      const onAbort = () =>
        finish(signal.reason instanceof Error ? signal.reason : new FluxoError('FLUXO_FORWARD_CONNECTION', 'aborted'));
      const timer = setTimeout(
        () => finish(new RetryableError(`no ack from forward server ${this.name} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      signal.addEventListener('abort', onAbort, { once: true });
      this.failures.add(finish);
      chunks.forEach((chunk, i) => {
        this.waiters.set(chunk, {
          onAck: () => {
            onAck(i);
            if (--left === 0) finish();
          },
        });
      });
      this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    });
  }

  close(error: Error = new FluxoError('FLUXO_FORWARD_CONNECTION', 'connection closed')): void {
    if (this.closedError) return;
    this.closedError =
      error instanceof RetryableError
        ? error
        : new RetryableError(`forward server ${this.name}: ${error.message}`, { cause: error });
    this.socket.destroy();
    for (const fail of [...this.failures]) fail(this.closedError);
    this.handshake = undefined;
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    if (this.pending) {
      data = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let start = 0;
    try {
      for (;;) {
        const end = this.scanner.scan(data, start, data.length);
        if (end < 0) break;
        this.onMessage(decodeServerMessage(data.subarray(start, end)));
        start = end;
      }
    } catch (error) {
      this.close(error as Error);
      return;
    }
    if (start < data.length) this.pending = data.subarray(start);
  }

  private onMessage(message: ServerMessage): void {
    if (this.handshake) {
      this.handshake(message);
      return;
    }
    if (message.kind === 'ack') {
      this.waiters.get(message.chunk)?.onAck();
      return;
    }
    if (message.kind === 'helo') {
      throw new ForwardProtocolError('the server requires shared-key authentication: set auth.shared_key');
    }
    throw new ForwardProtocolError(`unexpected ${message.kind.toUpperCase()} from the server`);
  }

  private authenticate(auth: ClientAuth, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let nonce: Uint8Array | string | undefined;
      const salt = randomBytes(16);
      const fail = (reason: string) => {
        clearTimeout(timer);
        this.failures.delete(onClose);
        reject(new RetryableError(`forward server ${this.name}: ${reason}`));
      };
      const onClose = (error: Error) => fail(`closed during authentication: ${error.message}`);
      const timer = setTimeout(
        () => fail(nonce === undefined ? `no HELO within ${timeoutMs} ms (does it have a shared key?)` : 'no PONG'),
        timeoutMs,
      );
      this.failures.add(onClose);
      this.handshake = (message) => {
        if (message.kind === 'helo' && nonce === undefined) {
          nonce = message.nonce;
          const digest = sharedKeyDigest(salt, auth.hostname, nonce, auth.sharedKey);
          const pw = auth.username === '' ? '' : passwordDigest(message.authSalt, auth.username, auth.password);
          this.socket.write(encodePing(auth.hostname, salt, digest, auth.username, pw));
          return;
        }
        this.handshake = undefined;
        if (message.kind !== 'pong' || nonce === undefined)
          return fail(`unexpected ${message.kind} during authentication`);
        if (!message.ok) return fail(`authentication rejected: ${message.reason}`);
        if (!digestsEqual(sharedKeyDigest(salt, message.hostname, nonce, auth.sharedKey), message.digest)) {
          return fail('the server does not know the shared key (PONG digest mismatch)');
        }
        clearTimeout(timer);
        this.failures.delete(onClose);
        resolve();
      };
    });
  }
}
