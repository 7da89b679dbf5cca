import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';

// JetStream publishes without the client's request machinery. jetstream().publish() is one nc.request() per
// message, which builds two Error objects (stack traces for a timeout that rarely comes) and a timer each: at
// tens of thousands of messages per second that was most of the sink's CPU. Here every message is a plain
// publish whose reply subject is a token under one inbox this sink subscribes to; one timer sweeps the
// deadlines. The PubAck is the same JSON the client would parse.

export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

/** A publish that failed; `name` and `code` as the client's own errors have them (see the sink's checks). */
export class PublishError extends Error {
  constructor(
    name: 'JetStreamApiError' | 'JetStreamNotEnabled' | 'TimeoutError' | 'ClosedConnectionError',
    message: string,
    readonly code?: number,
  ) {
    super(message);
    this.name = name;
  }
}

/** Told how each publish ended, by its index in the caller's batch: one object per batch, not a promise per message. */
export interface PublishListener {
  acked(index: number, ack: PubAck): void;
  failed(index: number, error: Error): void;
}

interface Waiting {
  listener: PublishListener;
  index: number;
  deadline: number;
}

export class JetStreamPublisher {
  /** In publish order, so deadlines (all `ackTimeout` after their publish) come in order too. */
  private readonly waiting = new Map<string, Waiting>();
  private readonly prefix: string;
  private readonly sub: Subscription;
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private roomWaiters: (() => void)[] = [];

  constructor(
    private readonly nc: NatsConnection,
    inbox: string,
    private readonly ackTimeout: number,
    private readonly maxInflight: number,
  ) {
    this.prefix = `${inbox}.`;
    this.sub = nc.subscribe(`${inbox}.*`, { callback: (error, msg) => this.answer(error, msg) });
  }

  /** max_inflight publishes await their PubAck. */
  get full(): boolean {
    return this.waiting.size >= this.maxInflight;
  }

  /** Resolves once fewer than max_inflight wait. */
  room(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /**
   * Queued on the connection now (written with the others of this turn); `listener` hears of its PubAck or
   * failure later, never during this call.
   */
  publish(subject: string, payload: Uint8Array, headers: MsgHdrs, listener: PublishListener, index: number): void {
    const token = (this.next++).toString(36);
    this.waiting.set(token, { listener, index, deadline: Date.now() + this.ackTimeout });
    try {
      this.nc.publish(subject, payload, { reply: this.prefix + token, headers });
    } catch (error) {
      // max_payload exceeded, a closed connection: thrown at once, told in a microtask like every answer.
      const waiting = this.settle(token)!;
      queueMicrotask(() => waiting.listener.failed(waiting.index, error as Error));
    }
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.expire(), Math.max(20, Math.min(1_000, this.ackTimeout / 4)));
      this.timer.unref();
    }
  }

  /** Fails every publish still waiting and stops listening. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const token of [...this.waiting.keys()]) {
      const waiting = this.settle(token)!;
      waiting.listener.failed(
        waiting.index,
        new PublishError('ClosedConnectionError', 'the sink closed its connection'),
      );
    }
    this.sub.unsubscribe();
  }

  private answer(error: Error | null, msg: Msg): void {
    if (error !== null) return;
    const waiting = this.settle(msg.subject.slice(this.prefix.length));
    if (waiting === undefined) return; // answered after its deadline: it was retried already
    // No stream captures the subject: the server answers with a 503 status and no payload.
    const { listener, index } = waiting;
    if (msg.headers?.code === 503) {
      listener.failed(index, new PublishError('JetStreamNotEnabled', 'no responders: no stream captures the subject'));
      return;
    }
    let reply: {
      stream?: string;
      seq?: number;
      duplicate?: boolean;
      error?: { err_code?: number; description?: string };
    };
    try {
      reply = msg.json();
    } catch {
      listener.failed(
        index,
        new PublishError('JetStreamApiError', `a PubAck that is not JSON: ${msg.string().slice(0, 200)}`),
      );
      return;
    }
    if (reply.error !== undefined) {
      const { err_code: code, description } = reply.error;
      listener.failed(index, new PublishError('JetStreamApiError', description ?? 'JetStream error', code));
      return;
    }
    listener.acked(index, { stream: reply.stream ?? '', seq: reply.seq ?? 0, duplicate: reply.duplicate === true });
  }

  private expire(): void {
    const now = Date.now();
    for (const [token, waiting] of this.waiting) {
      if (waiting.deadline > now) break;
      this.settle(token);
      waiting.listener.failed(
        waiting.index,
        new PublishError('TimeoutError', `no PubAck within ${this.ackTimeout} ms`),
      );
    }
    if (this.waiting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private settle(token: string): Waiting | undefined {
    const waiting = this.waiting.get(token);
    if (waiting === undefined) return undefined;
    this.waiting.delete(token);
    if (this.roomWaiters.length > 0 && !this.full) for (const wake of this.roomWaiters.splice(0)) wake();
    return waiting;
  }
}
