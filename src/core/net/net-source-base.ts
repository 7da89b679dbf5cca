import type { AddressInfo } from 'node:net';
import type { Source, SourceContext } from '../component.ts';
import { FluxoError } from '../errors.ts';
import { type Event, EventIdGenerator, ReceiptClock } from '../event.ts';
import { splitAddress } from '../units.ts';

/** The options every listening source has: its transport and the address it listens on. */
export interface NetSourceOptions {
  readonly mode: string;
  readonly address: string;
}

/** How a source receives: opened at start, closed at stop. */
export interface NetTransport {
  open(): Promise<void>;
  endpoint(): string | undefined;
  close(): Promise<void>;
}

/**
 * What every listening source (socket, syslog, over TCP or UDP) shares, so the transports in
 * udp-batch-listener.ts and tcp-stream-listener.ts can serve any of them: the receive time stamped at most
 * once per millisecond (formatting an ISO date per event showed in profiles), event ids, counting the emits in
 * flight so stop() can wait for them, and the listen error users see.
 */
export abstract class NetSourceBase<O extends NetSourceOptions = NetSourceOptions> implements Source {
  readonly host: string;
  readonly port: number;
  stopping = false;
  protected readonly ids = new EventIdGenerator();
  /** The time of receipt stamped on events. */
  protected readonly clock = new ReceiptClock();
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly opts: O,
    readonly ctx: SourceContext,
  ) {
    ({ host: this.host, port: this.port } = splitAddress(opts.address));
  }

  /** The listener (UdpBatchListener, TcpStreamListener) that receives for this source. */
  protected abstract readonly transport: NetTransport;

  start(): Promise<void> {
    return this.transport.open();
  }

  endpoint(): string | undefined {
    return this.transport.endpoint();
  }

  /** Stops receiving, then waits for the emits in flight (the transport may emit what it held). */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      await this.transport.close();
    }
    await this.idle();
  }

  emitTracked(events: Event[], bytes: number, onSettled: () => void): void {
    this.inFlight++;
    this.ctx.emit(events, { bytes }).then(onSettled, (error: unknown) => {
      // Only a stopping pipeline rejects; these protocols have no acknowledgement to withhold anyway.
      this.ctx.logger.debug({ err: String(error) }, 'emit rejected');
      onSettled();
    });
  }

  /** Call from every emit settlement, after any follow-up emit was started. */
  settled(): void {
    if (--this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  protected idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
    });
  }

  listenError(error: Error): FluxoError {
    return new FluxoError(
      'FLUXO_SOURCE_LISTEN',
      `source ${this.ctx.id}: cannot listen on ${this.opts.mode} ${this.opts.address}: ${error.message}`,
      { cause: error },
    );
  }
}

export function formatEndpoint(mode: string, info: AddressInfo): string {
  return info.family === 'IPv6' ? `${mode} [${info.address}]:${info.port}` : `${mode} ${info.address}:${info.port}`;
}
