import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireProgram } from '../external.ts';
import { type KafkaShim, type ShimSecurity, startKafkaShim } from './kafka-shim.ts';

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'kafka-mock.c');
const HEADER = '/usr/include/librdkafka/rdkafka_mock.h';

/** One message as the brokers hold it, read back by librdkafka's own consumer (not the client under test). */
export interface KafkaMessage {
  partition: number;
  offset: number;
  key: Buffer | undefined;
  value: Buffer | undefined;
  headers: Record<string, string>;
}

export interface KafkaMockCluster {
  /** `host:port` of each broker, as a client's bootstrap list (through the protocol shim, see kafka-shim.ts). */
  readonly bootstrap: string[];
  /** The mock brokers themselves, without the shim. */
  readonly rawBootstrap: string[];
  readonly shim: KafkaShim;
  createTopic(name: string, partitions: number, replicationFactor?: number): Promise<void>;
  /** Moves a partition's leadership (a leader election): clients get NOT_LEADER_OR_FOLLOWER and refresh metadata. */
  leader(topic: string, partition: number, broker: number): Promise<void>;
  /** The next `count` requests of `apiKey` (0 = Produce) anywhere in the cluster fail with `codes` (the last repeats). */
  pushErrors(apiKey: number, count: number, ...codes: number[]): Promise<void>;
  brokerDown(id: number): Promise<void>;
  brokerUp(id: number): Promise<void>;
  /** Every message of `topic`, partition by partition in offset order. */
  messages(topic: string): Promise<KafkaMessage[]>;
  /**
   * Produces `{"n":from}` … `{"n":from+count-1}` into `topic` with librdkafka's own producer (not the client
   * under test), its record batches compressed with `codec`; resolves once every one was acknowledged.
   */
  produce(
    topic: string,
    codec: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd',
    from: number,
    count: number,
  ): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The mock program, compiled once per source version into a cache dir shared by test processes (written
 * under a temporary name, then renamed: two processes compiling at once never run half a binary).
 */
function compiledMock(t: TestContext): string | undefined {
  const gcc = requireProgram(t, 'gcc', 'gcc');
  if (!gcc) return undefined;
  const pkgConfig = requireProgram(t, 'pkg-config', 'pkg-config');
  if (!pkgConfig) return undefined;
  if (!existsSync(HEADER)) {
    const message = `${HEADER} not found: install the Debian package librdkafka-dev (apt-get install librdkafka-dev)`;
    if (process.env.CI === 'true') throw new Error(`${message}; CI must install it in .ci/run`);
    t.skip(message);
    return undefined;
  }
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `fluxo-kafka-mock-${hash}`);
  const binary = join(dir, 'kafka-mock');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const flags = spawnSync(pkgConfig, ['--cflags', '--libs', 'rdkafka'], { encoding: 'utf8' });
  if (flags.status !== 0) throw new Error(`pkg-config rdkafka failed: ${flags.stderr}`);
  const partial = `${binary}.${process.pid}.tmp`;
  const built = spawnSync(gcc, ['-O1', '-Wall', '-o', partial, SOURCE, ...flags.stdout.trim().split(/\s+/)], {
    encoding: 'utf8',
  });
  if (built.status !== 0) throw new Error(`compiling ${SOURCE} failed:\n${built.stderr}`);
  renameSync(partial, binary);
  return binary;
}

/**
 * A Kafka-protocol cluster of `brokers` mock brokers (librdkafka's mock cluster, on 127.0.0.1 ports it picks),
 * driven through the program's stdin; killed when the test ends. Undefined (the test skipped) when gcc or
 * librdkafka-dev is missing outside CI.
 */
export async function startKafkaMock(
  t: TestContext,
  brokers = 3,
  security: ShimSecurity = {},
): Promise<KafkaMockCluster | undefined> {
  const program = compiledMock(t);
  if (!program) return undefined;
  const child: ChildProcess = spawn(program, [String(brokers)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  const lines: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl.on('close', () => {
    for (const w of waiters.splice(0)) w(undefined);
  });
  const next = async (): Promise<string> => {
    const line = lines.length > 0 ? lines.shift() : await new Promise<string | undefined>((r) => waiters.push(r));
    if (line === undefined) throw new Error(`kafka-mock exited: ${log}`);
    return line;
  };
  // Commands answer in order; one at a time keeps each answer with its command.
  let queue: Promise<unknown> = Promise.resolve();
  const command = <T>(text: string, read: () => Promise<T>): Promise<T> => {
    const run = queue.then(() => {
      child.stdin!.write(`${text}\n`);
      return read();
    });
    queue = run.catch(() => {});
    return run;
  };
  const simple = (text: string) =>
    command(text, async () => {
      const answer = await next();
      if (answer !== 'ok') throw new Error(`kafka-mock "${text}": ${answer}`);
    });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  t.after(stop);
  const first = await next();
  if (!first.startsWith('bootstrap ')) throw new Error(`kafka-mock: unexpected first line "${first}": ${log}`);
  const rawBootstrap = first.slice('bootstrap '.length).split(',');
  const shim = await startKafkaShim(rawBootstrap, security);
  t.after(() => shim.close());
  const hex = (s: string) => (s === '-' ? undefined : Buffer.from(s, 'hex'));
  return {
    bootstrap: shim.bootstrap,
    rawBootstrap,
    shim,
    createTopic: (name, partitions, rf = 1) => simple(`create_topic ${name} ${partitions} ${rf}`),
    leader: (topic, partition, broker) => simple(`leader ${topic} ${partition} ${broker}`),
    pushErrors: (apiKey, count, ...codes) => simple(`push_errors ${apiKey} ${count} ${codes.join(' ')}`),
    brokerDown: (id) => simple(`broker_down ${id}`),
    brokerUp: (id) => simple(`broker_up ${id}`),
    produce: (topic, codec, from, count) =>
      command(`produce ${topic} ${codec} ${from} ${count}`, async () => {
        for (;;) {
          const line = await next();
          if (line.startsWith('warn ')) continue;
          if (line !== `ok ${count}`) throw new Error(`kafka-mock produce ${topic} ${codec}: ${line}`);
          return;
        }
      }),
    messages: (topic) =>
      command(`dump ${topic}`, async () => {
        const out: KafkaMessage[] = [];
        for (;;) {
          const line = await next();
          if (line.startsWith('warn ')) continue;
          if (line.startsWith('ok ')) break;
          if (!line.startsWith('msg ')) throw new Error(`kafka-mock dump ${topic}: ${line}`);
          const [, partition, offset, key, value, ...headers] = line.split(' ') as string[];
          const h: Record<string, string> = {};
          for (const kv of headers) {
            const at = kv.indexOf('=');
            h[kv.slice(0, at)] = hex(kv.slice(at + 1))?.toString() ?? '';
          }
          out.push({
            partition: Number(partition),
            offset: Number(offset),
            key: hex(key!),
            value: hex(value!),
            headers: h,
          });
        }
        out.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
        return out;
      }),
    stop,
  };
}

/** Calls `each` with every record batch the shim saw produced: its request, where it starts and ends. */
function forEachProducedBatch(shim: KafkaShim, each: (request: Buffer, at: number, end: number) => void): void {
  for (const request of shim.produceAttempts) {
    for (let at = 0; at + 61 <= request.length; ) {
      const end = at + 12 + request.readInt32BE(at + 8);
      each(request, at, end);
      at = end;
    }
  }
}

/** The compression codec of every record batch the shim saw produced (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd). */
export function producedCodecs(shim: KafkaShim): Set<number> {
  const out = new Set<number>();
  forEachProducedBatch(shim, (request, at) => out.add(request.readInt16BE(at + 21) & 0x07));
  return out;
}

/**
 * The values of the records in every uncompressed record batch the shim saw produced more than once with the
 * same producer id and base sequence: the resends a broker's idempotence drops (DUPLICATE_SEQUENCE_NUMBER).
 * librdkafka 2.0.2's mock cluster sometimes stores such a resend again, after a leader change; a duplicate in
 * its topic is the producer's fault only when it is not one of these.
 */
export function resentRecordValues(shim: KafkaShim): Set<string> {
  const sends = new Map<string, { count: number; values: string[] }>();
  forEachProducedBatch(shim, (request, at, end) => {
    // producer id / epoch / base sequence / the batch's CRC-32C (which partition's batch it is, by content)
    const key = `${request.readBigInt64BE(at + 43)}/${request.readInt16BE(at + 51)}/${request.readInt32BE(at + 53)}/${request.readUInt32BE(at + 17)}`;
    const compressed = (request.readInt16BE(at + 21) & 0x07) !== 0;
    const seen = sends.get(key) ?? { count: 0, values: compressed ? [] : recordValues(request, at + 61, end) };
    seen.count++;
    sends.set(key, seen);
  });
  const out = new Set<string>();
  for (const { count, values } of sends.values()) if (count > 1) for (const v of values) out.add(v);
  return out;
}

/** The values of the records of one uncompressed batch (Kafka record format v2: varints, zigzag-encoded). */
function recordValues(b: Buffer, start: number, end: number): string[] {
  let at = start;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const byte = b[at++]!;
      v += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
      shift += 7;
    }
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  };
  const values: string[] = [];
  while (at < end) {
    const length = varint();
    const next = at + length;
    at += 1; // attributes
    varint(); // timestamp delta
    varint(); // offset delta
    const keyLength = varint();
    at += Math.max(keyLength, 0);
    const valueLength = varint();
    if (valueLength >= 0) values.push(b.toString('utf8', at, at + valueLength));
    at = next;
  }
  return values;
}
