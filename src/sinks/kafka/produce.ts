/** One event as the kafka sink produces it; `partition` is set per attempt from the topic's partition count. */
export interface KafkaMessage {
  topic: string;
  key: Buffer | undefined;
  value: Buffer;
  headers: Record<string, string>;
  timestamp: bigint;
  partition: number;
}

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`, seed 0x9747b28c), so that a key lands on the same
 * partition as with the Java producers and Kafka Streams that share the topic.
 */
export function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) {
    h ^= data[whole]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The Java client's default partition of a key: `toPositive(murmur2(key)) % partitions`. */
export function partitionOf(key: Buffer, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

export interface ProduceOutcome {
  /** `topic:partition` keys the brokers confirmed. */
  delivered: Set<string>;
  /** `topic:partition` keys the brokers answered with an error code (so not written). */
  codes: Map<string, number>;
}

interface PartitionAnswer {
  index: number;
  errorCode: number;
}

/**
 * Reads a failed send of @platformatic/kafka: `produced.offsets` lists the partitions that were written (one
 * request per leader, some may succeed), and each ResponseError in the error tree carries the brokers'
 * per-partition answers. A partition in neither got no answer (a lost connection, a timeout): it may have been
 * written.
 */
export function readProduceError(error: unknown): ProduceOutcome {
  const delivered = new Set<string>();
  const codes = new Map<string, number>();
  const root = error as { produced?: { offsets?: { topic: string; partition: number }[] } };
  for (const o of root?.produced?.offsets ?? []) delivered.add(`${o.topic}:${o.partition}`);
  const seen = new Set<unknown>();
  const walk = (e: unknown) => {
    if (e === null || typeof e !== 'object' || seen.has(e)) return;
    seen.add(e);
    const response = (e as { response?: { responses?: { name: string; partitionResponses?: PartitionAnswer[] }[] } })
      .response;
    for (const topic of response?.responses ?? []) {
      for (const p of topic.partitionResponses ?? []) {
        const key = `${topic.name}:${p.index}`;
        if (p.errorCode === 0) delivered.add(key);
        else codes.set(key, p.errorCode);
      }
    }
    for (const inner of (e as { errors?: unknown[] }).errors ?? []) walk(inner);
    walk((e as { cause?: unknown }).cause);
  };
  walk(error);
  for (const key of codes.keys()) delivered.delete(key);
  return { delivered, codes };
}
