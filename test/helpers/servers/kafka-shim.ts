import { once } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { GROUP_TRANSLATORS } from './kafka-shim-group.ts';
import { type SaslSession, type SaslUser, saslSession } from './kafka-shim-sasl.ts';

/*
 * Debian 12's librdkafka 2.0.2 mock cluster speaks only the old, non-flexible versions of the Kafka protocol
 * (ApiVersions ≤2, Metadata ≤2, Fetch ≤11…), while @platformatic/kafka implements nothing older than ApiVersions v3
 * and Metadata v9. This shim sits in front of each mock broker and translates the few calls that differ only in
 * encoding (ApiVersions v3 → v0, Metadata v9 → v2); every other request (Produce v7, InitProducerId v4) goes to the
 * mock untouched, so idempotence, sequence checks, leaders and injected errors are the mock's own.
 */

const API_PRODUCE = 0;
const API_METADATA = 3;
const API_VERSIONS = 18;
const API_SASL_HANDSHAKE = 17;
const API_SASL_AUTHENTICATE = 36;
const UNSUPPORTED_SASL_MECHANISM = 33;
const ILLEGAL_SASL_STATE = 34;
const SASL_AUTHENTICATION_FAILED = 58;

/**
 * What the mock cannot do and the shim does in front of it: a TLS listener (the client's TLS is real, the leg
 * from the shim to the mock is plain loopback), and SASL as a broker with one user answers it (see
 * kafka-shim-sasl.ts): until a connection has logged in, only ApiVersions and the SASL requests are answered.
 */
export interface ShimSecurity {
  tls?: { cert: string | Buffer; key: string | Buffer };
  sasl?: SaslUser;
}

/** What the shim advertises: the intersection of what the mock handles and what the client can use. */
const ADVERTISED: Record<number, [number, number]> = {
  [API_PRODUCE]: [7, 7],
  [API_METADATA]: [9, 9],
  [API_VERSIONS]: [3, 3],
  [API_SASL_HANDSHAKE]: [1, 1],
  [API_SASL_AUTHENTICATE]: [2, 2],
  2: [5, 5], // ListOffsets v5: not flexible, passed through
  22: [4, 4], // InitProducerId: v4 is flexible and the mock parses it (librdkafka's own client uses it)
  ...Object.fromEntries(Object.entries(GROUP_TRANSLATORS).map(([k, t]) => [k, [t.client, t.client]])),
};

export class Reader {
  offset = 0;
  constructor(readonly buf: Buffer) {}
  i8(): number {
    return this.buf.readInt8(this.offset++);
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uvarint(): number {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = this.buf[this.offset++]!;
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v >>> 0;
      shift += 7;
    }
  }
  str(): string | null {
    const n = this.i16();
    if (n < 0) return null;
    const s = this.buf.toString('utf8', this.offset, this.offset + n);
    this.offset += n;
    return s;
  }
  compactStr(): string | null {
    const n = this.uvarint() - 1;
    if (n < 0) return null;
    const s = this.buf.toString('utf8', this.offset, this.offset + n);
    this.offset += n;
    return s;
  }
  raw(n: number): Buffer {
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
  /** int32 length + bytes (null: -1). */
  bytes(): Buffer | null {
    const n = this.i32();
    return n < 0 ? null : this.raw(n);
  }
  compactBytes(): Buffer | null {
    const n = this.uvarint() - 1;
    return n < 0 ? null : this.raw(n);
  }
  /** The element count of a compact array (-1: null). */
  compactCount(): number {
    return this.uvarint() - 1;
  }
  skipTags(): void {
    const n = this.uvarint();
    for (let i = 0; i < n; i++) {
      this.uvarint();
      this.offset += this.uvarint();
    }
  }
}

export class Writer {
  private parts: Buffer[] = [];
  i8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    this.parts.push(b);
    return this;
  }
  i16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  uvarint(v: number): this {
    const bytes: number[] = [];
    let x = v >>> 0;
    while (x > 0x7f) {
      bytes.push((x & 0x7f) | 0x80);
      x >>>= 7;
    }
    bytes.push(x);
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  str(s: string | null): this {
    if (s === null) return this.i16(-1);
    const b = Buffer.from(s);
    this.i16(b.length);
    this.parts.push(b);
    return this;
  }
  compactStr(s: string | null): this {
    if (s === null) return this.uvarint(0);
    const b = Buffer.from(s);
    this.uvarint(b.length + 1);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer | null): this {
    if (b === null) return this.i32(-1);
    return this.i32(b.length).raw(b);
  }
  compactBytes(b: Buffer | null): this {
    if (b === null) return this.uvarint(0);
    return this.uvarint(b.length + 1).raw(b);
  }
  /** A compact array's count (-1: null). */
  compactCount(n: number): this {
    return this.uvarint(n + 1);
  }
  tags(): this {
    return this.uvarint(0);
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  frame(): Buffer {
    const body = Buffer.concat(this.parts);
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length);
    return Buffer.concat([len, body]);
  }
}

interface Pending {
  apiKey: number;
  version: number;
  correlationId: number;
  /** Drop the answer and the connection (loseNextProduceAnswer). */
  lose: boolean;
  /** The shim's own answer (failNextProduce): the request never reached the broker. */
  answer?: Buffer;
  /** What a translated request's answer needs of it. */
  context?: unknown;
}

/** Splits a byte stream into Kafka frames (int32 size + payload). */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const size = buf.readInt32BE(0);
      if (buf.length < 4 + size) return;
      onFrame(buf.subarray(4, 4 + size));
      buf = buf.subarray(4 + size);
    }
  };
}

export interface KafkaShim {
  /** host:port of the shim in front of each mock broker, in broker order. */
  readonly bootstrap: string[];
  /** The record batches of every Produce request, in arrival order (one Buffer per request, batches joined). */
  readonly produceAttempts: Buffer[];
  /** Runs before a Produce answer goes back to the client (the answer waits for it). */
  beforeProduceAnswer: (() => Promise<void>) | undefined;
  /**
   * The next Produce request to broker `index` (0-based, any broker when absent) reaches the broker, which
   * writes it, but its answer is dropped with the connection: the client cannot know it was written.
   */
  loseNextProduceAnswer(index?: number): void;
  /**
   * The next `count` (1) Produce requests to broker `index` (any broker when absent) are not passed on: the shim answers
   * it as a broker that wrote nothing would, with `code` for each of its partitions (e.g. 7 REQUEST_TIMED_OUT).
   */
  failNextProduce(code: number, index?: number, count?: number): void;
  /** Holds every broker answer until resume(). */
  stall(): void;
  resume(): void;
  /** Drops every connection and stops listening (a cluster unreachable); up() listens on the same ports again. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

/** Starts one loopback listener per mock broker; `upstream` is the mock's bootstrap list (broker 1 first). */
export async function startKafkaShim(upstream: string[], security: ShimSecurity = {}): Promise<KafkaShim> {
  const servers: (Server | undefined)[] = upstream.map(() => undefined);
  const ports: number[] = upstream.map(() => 0);
  const sockets = new Set<Socket>();
  // mock "host:port" → shim port, so Metadata answers point clients at the shim
  const portFor = new Map<string, number>();
  let stalled = false;
  let held: (() => void)[] = [];
  const produceAttempts: Buffer[] = [];
  let loseAnswerAt: number | undefined;
  let failAt: { code: number; index: number; count: number } | undefined;
  // What group translators remember across requests of this cluster (see SyncGroup in kafka-shim-group.ts).
  const groupState = new Map<string, unknown>();

  const listen = async (i: number) => {
    const [host, port] = upstream[i]!.split(':') as [string, string];
    const accept = (client: Socket) => proxy(client, host, Number(port), i);
    const tls = security.tls;
    const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key }, accept) : createServer(accept);
    server.listen(ports[i], '127.0.0.1');
    await once(server, 'listening');
    servers[i] = server;
    ports[i] = (server.address() as { port: number }).port;
    portFor.set(upstream[i]!, ports[i]!);
  };
  for (let i = 0; i < upstream.length; i++) await listen(i);

  const down = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(
      servers.map((s, i) => {
        servers[i] = undefined;
        return s ? new Promise<void>((resolve) => s.close(() => resolve())) : undefined;
      }),
    );
  };

  const shim: KafkaShim = {
    bootstrap: upstream.map((u) => `127.0.0.1:${portFor.get(u)}`),
    produceAttempts,
    beforeProduceAnswer: undefined,
    loseNextProduceAnswer: (index) => {
      loseAnswerAt = index ?? -1;
    },
    failNextProduce: (code, index, count) => {
      failAt = { code, index: index ?? -1, count: count ?? 1 };
    },
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const pass of held.splice(0)) pass();
    },
    down,
    up: async () => {
      for (let i = 0; i < upstream.length; i++) if (!servers[i]) await listen(i);
    },
    close: async () => {
      held = [];
      await down();
    },
  };

  function proxy(client: Socket, host: string, port: number, index: number): void {
    const broker = tcpConnect(port, host);
    sockets.add(client);
    sockets.add(broker);
    const pending: Pending[] = [];
    let sasl: SaslSession | undefined;
    let authenticated = security.sasl === undefined;
    let hangUpAfterAnswer = false;
    // Answers go back in request order even when one waits for beforeProduceAnswer.
    let answered: Promise<void> = Promise.resolve();
    const end = () => {
      client.destroy();
      broker.destroy();
      sockets.delete(client);
      sockets.delete(broker);
    };
    // Answers the shim makes go out in request order too: once every request before them was answered.
    const flushSynthesized = () => {
      while (pending[0]?.answer !== undefined) {
        const out = pending.shift()!.answer!;
        answered = answered.then(() => {
          if (!client.destroyed) client.write(out);
        });
      }
    };
    /** The answer to a SaslHandshake v1 or SaslAuthenticate v2 (`r` after the correlation id); undefined: hang up. */
    const saslAnswer = (r: Reader, apiKey: number, version: number, correlationId: number): Buffer | undefined => {
      const user = security.sasl!;
      if (apiKey === API_SASL_HANDSHAKE && version === 1) {
        r.str(); // client id
        const mechanism = r.str() ?? '';
        sasl = saslSession(user, mechanism);
        const w = new Writer()
          .i32(correlationId)
          .i16(sasl ? 0 : UNSUPPORTED_SASL_MECHANISM)
          .i32(user.mechanisms.length);
        for (const m of user.mechanisms) w.str(m);
        return w.frame();
      }
      if (apiKey === API_SASL_AUTHENTICATE && version === 2) {
        r.str(); // client id (header v2: a plain nullable string, then tagged fields)
        r.skipTags();
        const authBytes = r.compactBytes() ?? Buffer.alloc(0);
        const w = new Writer().i32(correlationId).tags();
        if (sasl === undefined) {
          w.i16(ILLEGAL_SASL_STATE).compactStr('SaslAuthenticate before SaslHandshake').compactBytes(Buffer.alloc(0));
        } else {
          const step = sasl.step(authBytes);
          if ('error' in step) {
            w.i16(SASL_AUTHENTICATION_FAILED).compactStr(step.error).compactBytes(Buffer.alloc(0));
            hangUpAfterAnswer = true;
          } else {
            w.i16(0).compactStr(null).compactBytes(step.bytes);
            if (step.done) authenticated = true;
          }
        }
        return w.raw(Buffer.alloc(8)).tags().frame();
      }
      return undefined;
    };
    client.on('error', end).on('close', end);
    broker.on('error', end).on('close', end);
    client.on(
      'data',
      framer((frame) => {
        const r = new Reader(frame);
        const apiKey = r.i16();
        const version = r.i16();
        const correlationId = r.i32();
        let lose = false;
        if (apiKey === API_PRODUCE && loseAnswerAt !== undefined && (loseAnswerAt === -1 || loseAnswerAt === index)) {
          loseAnswerAt = undefined;
          lose = true;
        }
        pending.push({ apiKey, version, correlationId, lose });
        if (!authenticated && apiKey !== API_VERSIONS) {
          const answer = saslAnswer(r, apiKey, version, correlationId);
          if (answer === undefined) {
            // A broker closes a connection that sends anything else before it logged in.
            end();
            return;
          }
          pending[pending.length - 1]!.answer = answer;
          flushSynthesized();
          // A failed login: the answer goes out, then the connection closes, as a broker does.
          if (hangUpAfterAnswer) answered = answered.then(() => new Promise((r) => setTimeout(r, 20))).then(end);
          return;
        }
        if (apiKey === API_VERSIONS) {
          // v0 request: header v1 with client id, empty body
          broker.write(new Writer().i16(API_VERSIONS).i16(0).i32(correlationId).str('fluxo-shim').frame());
          return;
        }
        if (apiKey === API_METADATA && version === 9) {
          const clientId = r.str();
          r.skipTags();
          const n = r.uvarint() - 1;
          const w = new Writer().i16(API_METADATA).i16(2).i32(correlationId).str(clientId).i32(n);
          for (let i = 0; i < n; i++) {
            w.str(r.compactStr());
            r.skipTags();
          }
          broker.write(w.frame());
          return;
        }
        const translator = GROUP_TRANSLATORS[apiKey];
        if (translator !== undefined && version === translator.client) {
          const clientId = r.str();
          if (translator.flexible !== false) r.skipTags();
          const w = new Writer().i16(apiKey).i16(translator.broker).i32(correlationId).str(clientId);
          pending[pending.length - 1]!.context = translator.request(r, w, groupState);
          broker.write(w.frame());
          return;
        }
        if (apiKey === API_PRODUCE) {
          const start = r.offset;
          produceAttempts.push(recordBatches(r));
          if (failAt !== undefined && (failAt.index === -1 || failAt.index === index)) {
            const { code } = failAt;
            if (--failAt.count === 0) failAt = undefined;
            r.offset = start;
            pending[pending.length - 1]!.answer = produceError(r, correlationId, code);
            flushSynthesized();
            return;
          }
        }
        const len = Buffer.alloc(4);
        len.writeInt32BE(frame.length);
        broker.write(Buffer.concat([len, frame]));
      }),
    );
    broker.on(
      'data',
      framer((frame) => {
        const req = pending.shift();
        if (!req) return end();
        if (req.lose) {
          answered = answered.then(end);
          return;
        }
        let out: Buffer;
        if (req.apiKey === API_VERSIONS) out = translateApiVersions(frame);
        else if (req.apiKey === API_METADATA && req.version === 9) out = translateMetadata(frame);
        else if (GROUP_TRANSLATORS[req.apiKey]?.client === req.version) {
          const r = new Reader(frame);
          // flexible answers carry response header v1: the correlation id, then tagged fields
          const w = new Writer().i32(r.i32());
          if (GROUP_TRANSLATORS[req.apiKey]!.flexible !== false) w.tags();
          GROUP_TRANSLATORS[req.apiKey]!.response(r, w, shimPort, req.context, groupState);
          out = w.frame();
        } else {
          const len = Buffer.alloc(4);
          len.writeInt32BE(frame.length);
          out = Buffer.concat([len, frame]);
        }
        const hook = req.apiKey === API_PRODUCE ? shim.beforeProduceAnswer : undefined;
        answered = answered.then(async () => {
          if (hook) await hook().catch(() => {});
          const pass = () => {
            if (!client.destroyed) client.write(out);
          };
          if (stalled) held.push(pass);
          else pass();
        });
        flushSynthesized();
      }),
    );
  }

  /** A Produce v7 answer with `code` for every partition of the request `r` is at (after its header). */
  function produceError(r: Reader, correlationId: number, code: number): Buffer {
    r.str();
    r.str();
    r.i16();
    r.i32();
    const topics = r.i32();
    const w = new Writer().i32(correlationId).i32(topics);
    for (let i = 0; i < topics; i++) {
      w.str(r.str());
      const partitions = r.i32();
      w.i32(partitions);
      for (let p = 0; p < partitions; p++) {
        w.i32(r.i32()).i16(code).raw(Buffer.alloc(24, 0xff));
        r.offset += Math.max(r.i32(), 0);
      }
    }
    return w.i32(0).frame();
  }

  /** The records fields of a Produce v7 request (after its header), joined: what a retry must repeat. */
  function recordBatches(r: Reader): Buffer {
    r.str(); // client id
    r.str(); // transactional id
    r.i16(); // acks
    r.i32(); // timeout
    const parts: Buffer[] = [];
    const topics = r.i32();
    for (let i = 0; i < topics; i++) {
      r.str();
      const partitions = r.i32();
      for (let p = 0; p < partitions; p++) {
        r.i32();
        const size = r.i32();
        if (size > 0) parts.push(r.buf.subarray(r.offset, r.offset + size));
        r.offset += Math.max(size, 0);
      }
    }
    return Buffer.concat(parts);
  }
  function shimPort(host: string, port: number): number {
    return portFor.get(`${host}:${port}`) ?? port;
  }

  function translateApiVersions(frame: Buffer): Buffer {
    const r = new Reader(frame);
    const correlationId = r.i32();
    const error = r.i16();
    const n = r.i32();
    const supported = new Map<number, [number, number]>();
    for (let i = 0; i < n; i++) supported.set(r.i16(), [r.i16(), r.i16()]);
    const keys = Object.keys(ADVERTISED)
      .map(Number)
      .filter((k) => k === API_VERSIONS || k === API_METADATA || supported.has(k));
    if (security.sasl) keys.push(API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE);
    // ApiVersions answers always use response header v0, even in flexible versions
    const w = new Writer()
      .i32(correlationId)
      .i16(error)
      .uvarint(keys.length + 1);
    for (const k of keys) {
      const [min, max] = ADVERTISED[k]!;
      w.i16(k).i16(min).i16(max).uvarint(0);
    }
    return w.i32(0).uvarint(0).frame();
  }

  function translateMetadata(frame: Buffer): Buffer {
    const r = new Reader(frame);
    const correlationId = r.i32();
    const w = new Writer().i32(correlationId).uvarint(0).i32(0);
    const brokers = r.i32();
    w.uvarint(brokers + 1);
    for (let i = 0; i < brokers; i++) {
      const id = r.i32();
      const host = r.str() ?? '127.0.0.1';
      const port = r.i32();
      const rack = r.str();
      const shimPort = portFor.get(`${host}:${port}`) ?? port;
      w.i32(id).compactStr('127.0.0.1').i32(shimPort).compactStr(rack).uvarint(0);
    }
    w.compactStr(r.str());
    w.i32(r.i32());
    const topics = r.i32();
    w.uvarint(topics + 1);
    for (let i = 0; i < topics; i++) {
      w.i16(r.i16()).compactStr(r.str() ?? '');
      w.i8(r.i8());
      const partitions = r.i32();
      w.uvarint(partitions + 1);
      for (let p = 0; p < partitions; p++) {
        w.i16(r.i16()).i32(r.i32()).i32(r.i32()).i32(-1);
        for (let list = 0; list < 2; list++) {
          const m = r.i32();
          w.uvarint(m + 1);
          for (let j = 0; j < m; j++) w.i32(r.i32());
        }
        w.uvarint(1).uvarint(0);
      }
      w.i32(-2147483648).uvarint(0);
    }
    return w.i32(-2147483648).uvarint(0).frame();
  }

  return shim;
}
